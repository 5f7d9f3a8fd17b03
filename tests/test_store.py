"""The store's decisions and configuration, and the file operations under it, offline."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.faultserver import FaultServer
from yolocli.errors import StoreError
from yolocli.io.files import clean_stale_temporaries, write_atomic
from yolocli.models import store as store_module
from yolocli.models.registry import FileSpec, load_registry
from yolocli.models.store import Action, Store, default_home, local_action

TINY = load_registry().get("yolov3-tiny")


@pytest.mark.parametrize(
    ("exists", "stamp_current", "hash_matches", "action"),
    [
        (False, False, None, Action.FETCH),
        (True, True, None, Action.USE),
        (True, False, None, Action.HASH),
        (True, False, True, Action.USE),
        (True, False, False, Action.REFETCH),
    ],
)
def test_local_action(
    exists: bool, stamp_current: bool, hash_matches: bool | None, action: Action
) -> None:
    assert local_action(exists, stamp_current, hash_matches) is action


@pytest.mark.parametrize(
    ("env", "home"),
    [
        ({"YOLOCLI_HOME": "/data/models", "XDG_CACHE_HOME": "/xdg"}, "/data/models"),
        ({"XDG_CACHE_HOME": "/xdg"}, "/xdg/yolocli"),
        ({"XDG_CACHE_HOME": "relative/ignored"}, str(Path.home() / ".cache" / "yolocli")),
        ({}, str(Path.home() / ".cache" / "yolocli")),
    ],
)
def test_default_home(env: dict[str, str], home: str) -> None:
    assert str(default_home(env)) == home


def test_mirror_replaces_network_origins_but_not_bundled_files() -> None:
    store = Store.from_env({"YOLOCLI_HOME": "/s", "YOLOCLI_MIRROR": "https://m.example/darknet"})
    assert store.origins(TINY.weights) == ("https://m.example/darknet/yolov3-tiny.weights",)
    assert store.path(TINY.cfg).parent != Path("/s")
    assert store.origins(load_registry().get("yolov3").weights) == (
        "https://m.example/darknet/yolov3.weights",
    )


@pytest.mark.parametrize(
    ("value", "offline"), [("1", True), ("yes", True), ("0", False), ("", False)]
)
def test_offline_flag(value: str, offline: bool) -> None:
    assert Store.from_env({"YOLOCLI_OFFLINE": value}).offline is offline


def test_timeout_must_be_a_positive_number() -> None:
    assert Store.from_env({"YOLOCLI_TIMEOUT": "2.5"}).downloader.policy.read_timeout == 2.5
    with pytest.raises(
        StoreError, match="YOLOCLI_TIMEOUT must be a positive number of seconds, not 'soon'"
    ):
        Store.from_env({"YOLOCLI_TIMEOUT": "soon"})


def test_offline_missing_model_is_an_immediate_error_naming_the_variable(tmp_path: Path) -> None:
    store = Store.from_env({"YOLOCLI_HOME": str(tmp_path), "YOLOCLI_OFFLINE": "1"})
    with pytest.raises(StoreError, match="YOLOCLI_OFFLINE is set"):
        store.ensure(TINY.weights)
    assert list(tmp_path.iterdir()) == []


def test_stamp_trusts_an_untouched_file_and_rehashes_a_touched_one(
    tmp_path: Path, tiny_weights: Path
) -> None:
    store = Store.from_env({"YOLOCLI_HOME": str(tmp_path), "YOLOCLI_OFFLINE": "1"})
    installed = tmp_path / TINY.weights.name
    installed.write_bytes(tiny_weights.read_bytes())
    assert store.ensure(TINY.weights) == installed  # hashed once, then stamped
    assert (tmp_path / ".verified" / TINY.weights.name).exists()
    installed.write_bytes(b"\0" * TINY.weights.size)  # same size, new contents and mtime
    with pytest.raises(
        StoreError, match=r"is corrupt \(sha256 mismatch\) and YOLOCLI_OFFLINE is set"
    ):
        store.ensure(TINY.weights)
    assert installed.exists()  # offline, a bad file is reported, not deleted


# -------------------------------------------------------------------------- what the stamp trusts

DATA = os.urandom(50_000)
SMALL = FileSpec("m.weights", len(DATA), hashlib.sha256(DATA).hexdigest(), ("https://x.example/",))


def corrupt_in_place(path: Path) -> None:
    """Flip one byte, then put size and modification time back as they were."""
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_file_changed_in_place_keeping_size_and_mtime_is_rehashed_at_once(
    tmp_path: Path,
) -> None:
    """The stamp records the ctime too, which the kernel sets on every write and no user can
    set back: tampering that restores size and mtime is caught on the next use."""
    store = Store.from_env({"YOLOCLI_HOME": str(tmp_path), "YOLOCLI_OFFLINE": "1"})
    installed = tmp_path / SMALL.name
    installed.write_bytes(DATA)
    assert store.ensure(SMALL) == installed  # hashed once, then stamped
    corrupt_in_place(installed)
    with pytest.raises(StoreError, match=r"is corrupt \(sha256 mismatch\)"):
        store.ensure(SMALL)


def test_an_aged_stamp_means_a_rehash_on_next_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store.from_env({"YOLOCLI_HOME": str(tmp_path), "YOLOCLI_OFFLINE": "1"})
    installed = tmp_path / SMALL.name
    installed.write_bytes(DATA)
    assert store.ensure(SMALL) == installed
    hashed: list[Path] = []
    real = store_module.sha256_file
    monkeypatch.setattr(store_module, "sha256_file", lambda p: hashed.append(p) or real(p))
    assert store.ensure(SMALL) == installed
    assert hashed == []  # a fresh stamp spares the hash
    aged = time.time() - store.stamp_trusted_for - 60
    os.utime(tmp_path / ".verified" / SMALL.name, (aged, aged))
    assert store.ensure(SMALL) == installed
    assert hashed == [installed]


def test_a_forged_stamp_is_not_trusted(tmp_path: Path) -> None:
    """Whoever can write the store can write a stamp, but not sign one: a stamp rewritten for
    tampered bytes (the right size, mtime, ctime and inode) is ignored and the file re-hashed."""
    store = Store.from_env({"YOLOCLI_HOME": str(tmp_path), "YOLOCLI_OFFLINE": "1"})
    installed = tmp_path / SMALL.name
    installed.write_bytes(DATA)
    store.ensure(SMALL)
    corrupt_in_place(installed)
    stamp = tmp_path / ".verified" / SMALL.name
    record = json.loads(stamp.read_text())
    st = installed.stat()
    record.update(size=st.st_size, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns)
    stamp.write_text(json.dumps(record))
    with pytest.raises(StoreError, match=r"is corrupt \(sha256 mismatch\)"):
        store.ensure(SMALL)


def test_a_good_file_with_an_aged_stamp_is_stamped_afresh(tmp_path: Path) -> None:
    store = Store.from_env({"YOLOCLI_HOME": str(tmp_path), "YOLOCLI_OFFLINE": "1"})
    (tmp_path / SMALL.name).write_bytes(DATA)
    store.ensure(SMALL)
    stamp = tmp_path / ".verified" / SMALL.name
    os.utime(stamp, (0, 0))
    store.ensure(SMALL)
    assert time.time() - stamp.stat().st_mtime < store.stamp_trusted_for


# ------------------------------------------------------------------- locating without fetching


def test_locate_says_where_files_are_without_fetching(server: FaultServer, tmp_path: Path) -> None:
    home = tmp_path / "store"
    store = Store.from_env({"YOLOCLI_HOME": str(home), "YOLOCLI_MIRROR": server.url})
    located = store.locate(TINY)
    assert list(located) == ["cfg", "weights", "names"]
    assert located["weights"].path == home / TINY.weights.name
    assert not located["weights"].installed
    assert located["cfg"].installed  # shipped in the package
    assert located["names"].installed
    assert not home.exists()  # nothing created
    assert server.seen == []  # nothing fetched

    home.mkdir()
    (home / (TINY.weights.name + ".part")).write_bytes(b"x" * 1234)
    assert store.locate(TINY)["weights"].partial_bytes == 1234
    (home / TINY.weights.name).write_bytes(b"anything")
    assert store.locate(TINY)["weights"].installed
    assert server.seen == []


# -------------------------------------------------------------------------- temporaries


def test_a_250_character_name_round_trips_through_write_atomic(tmp_path: Path) -> None:
    target = tmp_path / ("a" * 246 + ".jpg")
    write_atomic(target, b"data")
    assert target.read_bytes() == b"data"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize(
    ("name", "age_days", "removed"),
    [
        (".yolocli-{dead}-0123abcd.tmp", 0, True),  # its writer is gone
        (".yolocli-{alive}-0123abcd.tmp", 0, False),  # a write in progress
        (".yolocli-{alive}-0123abcd.tmp", 2, True),  # too old whoever wrote it
        (".yolocli-{dead}-0123abcd.tmp.jpg", 2, False),  # not the exact pattern
        (".yolocli-{dead}-0123ab.tmp", 2, False),
        (".photo.jpg.0123abcd.tmp", 2, False),  # not recognisably ours
        ("photo.jpg", 2, False),
    ],
)
def test_clean_stale_temporaries_removes_only_yolocli_orphans(
    tmp_path: Path, name: str, age_days: float, removed: bool
) -> None:
    path = tmp_path / name.format(dead=dead_pid(), alive=os.getpid())
    path.write_bytes(b"half")
    then = time.time() - age_days * 86400
    os.utime(path, (then, then))
    assert clean_stale_temporaries(tmp_path) == int(removed)
    assert path.exists() is not removed


def test_clean_stale_temporaries_leaves_links_and_folders_alone(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (tmp_path / f".yolocli-{dead_pid()}-0123abcd.tmp").symlink_to(victim)
    (tmp_path / f".yolocli-{dead_pid()}-4567abcd.tmp").mkdir()
    assert clean_stale_temporaries(tmp_path) == 0
    assert victim.read_bytes() == b"keep"
    assert len(list(tmp_path.iterdir())) == 3
