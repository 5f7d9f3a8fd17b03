"""The model store's chain of trust, attacked the way the audit did: poisoned compiled graphs
under rewritten records, graphs naming external data, weights changed in place under a stamp,
a read-only store, a full disk while compiling. Real weights, real engines, the real CLI."""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import signal
import stat
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.conftest import as_nobody, run_cli, spawn
from tests.oracle import photo
from yolocli import engines
from yolocli.detector import Detector
from yolocli.engines.opencv import has_darknet_importer
from yolocli.errors import ModelError
from yolocli.families.darknet.cfg import read_cfg, write_random_weights
from yolocli.families.darknet.compiler import compile_onnx
from yolocli.models.registry import config_dir, load_registry
from yolocli.models.store import Store

TINY = load_registry().get("yolov3-tiny")
IMAGES = Path(__file__).resolve().parent / "data" / "images"


@pytest.fixture
def home(tmp_path: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store of its own, offline, holding a copy of the real yolov3-tiny weights (tests
    tamper with it)."""
    home = tmp_path / "store"
    home.mkdir()
    shutil.copyfile(tiny_weights, home / TINY.weights.name)
    monkeypatch.setenv("YOLOCLI_HOME", str(home))
    monkeypatch.setenv("YOLOCLI_OFFLINE", "1")
    return home


def corrupt_in_place(path: Path) -> None:
    """Change bytes in the middle, then put size and modification time back as they were."""
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2)
        f.write(b"\x7f" * 64)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _boxes(det: Detector) -> np.ndarray:
    return det.detect(photo("motorcycle_left.png")).xyxy


def _record_as_an_attacker_writes_it(graph: Path, data: bytes) -> None:
    """Rewrite the graph and every unsigned fact about it, as write access to the store allows."""
    graph.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    record_path = graph.with_name(graph.name + ".json")
    if record_path.exists():
        record = json.loads(record_path.read_text())
        st = graph.stat()
        record.update(
            sha256=digest,
            bytes=len(data),
            file=[st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev],
        )
        record_path.write_text(json.dumps(record))
    graph.with_name(graph.name + ".sha256").write_text(f"{digest} {len(data)}\n")  # older form


def test_a_poisoned_graph_under_a_rewritten_record_is_never_run(home: Path, tmp_path: Path) -> None:
    """The audit's B1: the graph and its hash rewritten together. The record is signed with a
    key kept outside the store, so the rewrite is noticed and the graph compiled again."""
    store = Store.from_env()
    det = Detector("yolov3-tiny", store=store, backend="onnxruntime")
    expected, graph = _boxes(det), det.compiled()
    good = graph.read_bytes()
    _, network = read_cfg(config_dir() / "yolov3-tiny.cfg")
    write_random_weights(network, tmp_path / "random.weights", seed=7)
    poison = compile_onnx(network, tmp_path / "random.weights").SerializeToString()
    _record_as_an_attacker_writes_it(graph, poison)

    again = Detector("yolov3-tiny", store=store, backend="onnxruntime")
    assert again.compiled() == graph
    assert graph.read_bytes() == good  # compiled afresh from the verified weights
    np.testing.assert_array_equal(_boxes(again), expected)


def test_verify_covers_compiled_graphs_and_removes_a_bad_one(home: Path, tmp_path: Path) -> None:
    graph = Detector("yolov3-tiny", backend="onnxruntime").compiled()
    ok = run_cli("models", "verify")
    assert ok.exit_code == 0, ok.output
    assert f"ok      {graph}" in ok.stdout.splitlines()
    _record_as_an_attacker_writes_it(graph, b"\x08\x07" + graph.read_bytes()[2:])
    bad = run_cli("models", "verify")
    assert bad.exit_code == 1
    assert f"FAILED  {graph}: its record is not signed by this user" in bad.stdout
    assert f"ok      {home / TINY.weights.name}" in bad.stdout
    assert not graph.exists()  # compiled again when next needed
    assert Detector("yolov3-tiny", backend="onnxruntime").compiled() == graph


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "opencv"])
def test_a_graph_with_external_data_is_refused_on_every_engine(
    home: Path, tmp_path: Path, backend: str
) -> None:
    """The audit's B2, made as strong as it gets: even a graph under a record signed with this
    user's key is checked for tensors naming other files before any engine loads it."""
    if not engines.installed(backend):
        pytest.skip(f"{backend} is not installed")
    if backend == "opencv" and has_darknet_importer():
        pytest.skip("OpenCV 4 reads the darknet files, not the graph")
    store = Store.from_env()
    graph = Detector("yolov3-tiny", store=store, backend="onnxruntime").compiled()
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\0" * 4096)
    model = onnx.load(graph)
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", os.path.relpath(secret, graph.parent)
    data = model.SerializeToString()
    graph.write_bytes(data)
    record = json.loads(graph.with_name(graph.name + ".json").read_text())
    record.update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    store._write_record(graph, record, graph.stat())  # signed, as only the key's owner can
    before = os.stat(secret).st_atime_ns
    with pytest.raises(ModelError, match="external data"):
        Detector("yolov3-tiny", store=store, backend=backend)
    assert os.stat(secret).st_atime_ns == before


def test_a_failed_verify_clears_the_stamp_and_the_file_is_then_refused(home: Path) -> None:
    """The audit's B3: verify found the tampering but left the stamp, so the next run
    compiled the tampered bytes."""
    weights = home / TINY.weights.name
    assert run_cli("models", "verify", "yolov3-tiny").exit_code == 0
    stamp = home / ".verified" / TINY.weights.name
    assert stamp.exists()
    corrupt_in_place(weights)
    failed = run_cli("models", "verify", "yolov3-tiny")
    assert failed.exit_code == 1
    assert f"FAILED  {weights}: sha256 mismatch" in failed.stdout
    assert not stamp.exists()
    run = run_cli("detect", str(IMAGES / "rocket.jpg"), "-m", "yolov3-tiny", "-f", "jsonl")
    assert run.exit_code == 1
    assert "is corrupt (sha256 mismatch) and YOLOCLI_OFFLINE is set" in run.stderr


def test_weights_changed_under_a_good_stamp_are_never_compiled(home: Path) -> None:
    """The audit's B4: the cache key used the registry's sha256, not the bytes compiled. Now
    the bytes compiled are hashed first: a mismatch is refused, the stamp dropped, and
    nothing is cached under the good key."""
    store = Store.from_env()
    weights = home / TINY.weights.name
    store.ensure(TINY.weights)
    corrupt_in_place(weights)
    store._write_stamp(TINY.weights, weights)  # a stamp that holds, however it came to be
    assert store.ensure(TINY.weights) == weights
    with pytest.raises(ModelError, match="is not the file that was verified"):
        Detector("yolov3-tiny", store=store, backend="onnxruntime")
    assert not (home / ".verified" / TINY.weights.name).exists()
    assert store.compiled_graphs() == []


def test_remove_clears_the_models_compiled_graphs_and_counts_them(home: Path) -> None:
    for size in (416, 320):
        Detector("yolov3-tiny", size=size, backend="onnxruntime")
    store = Store.from_env()
    graphs = store.compiled_graphs("yolov3-tiny")
    assert len(graphs) == 4  # two compiled graphs, and ONNX Runtime's optimized copy of each
    files = [home / TINY.weights.name, home / ".verified" / TINY.weights.name]
    files += graphs + [g.with_name(g.name + ".json") for g in graphs]
    total = sum(f.stat().st_size for f in files)
    listed = run_cli("models", "list")
    row = next(line for line in listed.stdout.splitlines() if line.startswith("yolov3-tiny "))
    graph_bytes = sum(g.stat().st_size for g in graphs)
    assert re.search(rf"installed +{graph_bytes / 1e6:.1f} MB  YOLOv3-tiny", row), row
    assert "Compiled graphs (one per model, --size and custom cfg used): 4," in listed.stderr
    as_json = json.loads(run_cli("models", "list", "--json").stdout)
    tiny = next(m for m in as_json if m["name"] == "yolov3-tiny")
    assert (tiny["compiled_bytes"], len(tiny["compiled"])) == (graph_bytes, 4)

    result = run_cli("models", "remove", "yolov3-tiny")
    assert result.exit_code == 0
    assert f"removed yolov3-tiny, with 4 compiled graphs ({total / 1e6:.1f} MB freed)" in (
        result.stderr
    )
    assert store.compiled_graphs() == []
    assert list((home / "derived").iterdir()) == [home / "derived" / ".locks"]


def test_clean_and_its_alias_prune_remove_every_compiled_graph(home: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "mine.cfg"
    shutil.copyfile(config_dir() / "yolov3-tiny.cfg", cfg)
    Detector("yolov3-tiny", backend="onnxruntime")
    Detector(cfg=cfg, weights=home / TINY.weights.name, size=320, backend="onnxruntime")
    store = Store.from_env()
    graphs = store.compiled_graphs()
    # each compiled graph, and ONNX Runtime's optimized copy of it
    assert [p.name.split("-")[0] for p in graphs] == ["mine", "mine", "yolov3", "yolov3"]
    dry = run_cli("models", "clean", "--dry-run")
    assert dry.exit_code == 0
    assert dry.stdout.splitlines() == [str(p) for p in graphs]
    assert "would remove 4 compiled graphs" in dry.stderr
    assert store.compiled_graphs() == graphs
    done = run_cli("models", "prune")
    assert done.exit_code == 0, done.output
    assert "removed 4 compiled graphs" in done.stderr
    assert store.compiled_graphs() == []
    assert (home / TINY.weights.name).exists()  # downloads stay
    assert "clean" in run_cli("models", "--help").stdout


def test_a_read_only_store_works(
    open_tmp: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit's W6: a store another user owns (a Docker layer, root's cache), with no
    signing key this user can read, asked for a size not compiled yet: the weights are hashed,
    the graph compiled into a private temporary folder, and nothing is written into the store."""
    home = open_tmp / "store"
    home.mkdir()
    shutil.copyfile(tiny_weights, home / TINY.weights.name)
    owner = Store(root=home, offline=True)
    Detector("yolov3-tiny", store=owner, backend="onnxruntime")  # the owner compiled it once
    for path in (home, *home.rglob("*")):
        mode = path.lstat().st_mode
        path.chmod(0o555 if stat.S_ISDIR(mode) else 0o444)
    before = sorted(p.relative_to(home) for p in home.rglob("*"))
    image = photo("motorcycle_left.png")
    store = Store(root=home, offline=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(open_tmp / "nobody"))  # no key there, none made
    import onnxruntime  # noqa: F401  # loaded as root: this Python is not readable by nobody

    with as_nobody():
        det = Detector("yolov3-tiny", size=320, store=store, backend="onnxruntime")
        found = det.detect(image)
        graph = det.compiled()
    assert len(found) > 0
    assert not graph.is_relative_to(home)
    assert sorted(p.relative_to(home) for p in home.rglob("*")) == before


def _limit_file_size() -> None:
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (4 << 20, 4 << 20))


def test_a_full_disk_while_compiling_says_what_happened(home: Path, tmp_path: Path) -> None:
    """The audit's W7: it said "the partial download is kept ... resume" about a compile."""
    proc = spawn(
        ["detect", str(IMAGES / "rocket.jpg"), "-m", "yolov3-tiny", "-f", "jsonl",
         "--backend", "onnxruntime"],
        env=dict(os.environ),
        cwd=tmp_path,
        preexec_fn=_limit_file_size,
    )  # fmt: skip
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    assert "cannot write the compiled graph yolov3-tiny-416x416-" in err
    assert "in the model store (File too large) nor in the temporary folder" in err
    assert "download" not in err


def test_detect_runs_from_a_read_only_store(
    open_tmp: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same through the command line: "cannot write .locks" was the whole answer."""
    home = open_tmp / "store"
    home.mkdir()
    shutil.copyfile(tiny_weights, home / TINY.weights.name)
    shutil.copyfile(IMAGES / "rocket.jpg", open_tmp / "rocket.jpg")
    monkeypatch.setenv("YOLOCLI_HOME", str(home))
    monkeypatch.setenv("YOLOCLI_OFFLINE", "1")
    monkeypatch.chdir(open_tmp)
    args = ["detect", "rocket.jpg", "-m", "yolov3-tiny", "-f", "jsonl", "--no-save"]
    assert run_cli(*args).exit_code == 0  # as root, so that what it imports is loaded
    for path in [*home.iterdir()]:
        if path.name != TINY.weights.name:
            shutil.rmtree(path)
    for path in (home, *home.rglob("*")):
        path.chmod(0o555 if path.is_dir() else 0o444)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(open_tmp / "nobody"))  # no key there, none made
    with as_nobody():
        result = run_cli(*args, "--size", "352")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["error"] is None
    assert sorted(home.rglob("*")) == [home / TINY.weights.name]


def test_verify_removes_an_older_yolocli_graph_without_failing(home: Path) -> None:
    """A graph an older yolocli left (a bare .sha256 manifest beside it) was never going to be
    used: verify removes it and says so, but that is not a failed check."""
    derived = home / "derived"
    derived.mkdir()
    legacy = derived / "yolov3-tiny-320x320-0123456789abcdef.onnx"
    legacy.write_bytes(b"old graph")
    legacy.with_name(legacy.name + ".sha256").write_text(
        f"{hashlib.sha256(b'old graph').hexdigest()} 9\n"
    )
    result = run_cli("models", "verify")
    assert result.exit_code == 0, result.stdout
    assert f"removed {legacy}: made by an older yolocli" in result.stdout
    assert list(derived.iterdir()) == []
