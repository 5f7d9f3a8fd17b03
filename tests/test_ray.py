"""`yolocli.ray` and ``detect --ray``: the cluster's records are the single machine's.

Real Ray throughout: a local cluster in this process (``ray.init(num_cpus=2)``, shared by the
module), a two-node cluster (`ray.cluster_utils.Cluster`, separate processes) reached by
address from a separate yolocli process, and S3 against moto's real server on 127.0.0.1.
Skipped where Ray (the ``ray`` extra) or moto (``test-ray``) is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATA, WEIGHTS_CACHE, run_cli

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

MODEL = ("-m", "yolov3-tiny", "--conf", "0.2")


def _records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _store_env() -> dict[str, str]:
    return {"YOLOCLI_HOME": str(WEIGHTS_CACHE), "YOLOCLI_OFFLINE": "1"}


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, tiny_weights: Path) -> Path:
    """Six photos, two more in a subfolder, and one truncated JPEG (an error record)."""
    root = tmp_path_factory.mktemp("photos")
    for image in sorted((DATA / "images").iterdir()):
        shutil.copy(image, root / image.name)
    (root / "more").mkdir()
    shutil.copy(DATA / "images" / "rocket.jpg", root / "more" / "b.jpg")
    shutil.copy(DATA / "images" / "coffee.png", root / "more" / "a.png")
    data = (DATA / "images" / "grace_hopper.jpg").read_bytes()
    (root / "more" / "cut.jpg").write_bytes(data[: len(data) // 2])
    return root


@pytest.fixture(scope="module")
def reference(photos: Path) -> list[dict[str, Any]]:
    """The single-machine run's records (yolocli's own default run) on ``photos``."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in _store_env().items():
            mp.setenv(key, value)
        got = run_cli("detect", str(photos), *MODEL, "-f", "jsonl", "--no-save", "-q")
    assert got.exit_code == 1  # the truncated image
    records = _records(got.stdout)
    assert len(records) == 9
    assert [r["error"] is not None for r in records].count(True) == 1
    return records


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    """moto's S3 server on 127.0.0.1, and the environment that points AWS clients at it."""
    pytest.importorskip("moto.server", reason="moto[server] (the test-ray extra) is missing")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.2)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def local_ray(s3: dict[str, str]) -> Iterator[None]:
    """One local Ray cluster of 2 CPUs in this process, for the module (it is slow to start);
    its workers see the S3 server's environment."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {**s3, **_store_env()}.items():
            mp.setenv(key, value)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            yield
        finally:
            ray.shutdown()


@pytest.fixture
def ray_env(local_ray: None, s3: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {**s3, **_store_env()}.items():
        monkeypatch.setenv(key, value)


def _ray_cli(*args: str) -> Any:
    # ``--ray auto`` finds the cluster this process is connected to (local_ray)
    return run_cli("detect", *args, *MODEL, "--ray", "auto")


# -- a real multi-node cluster, reached by address from another process -------------------------


def test_two_node_cluster_by_address_gives_the_single_machine_records(
    photos: Path, reference: list[dict[str, Any]], tmp_path: Path
) -> None:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        # ray.cluster_utils runs without the token authentication that `ray start` turns on
        env = {**os.environ, **_store_env(), "RAY_AUTH_MODE": "disabled"}
        env.pop("RAY_ADDRESS", None)
        got = subprocess.run(
            [sys.executable, "-m", "yolocli", "detect", str(photos), *MODEL, "-f", "jsonl",
             "--no-save", "--ray", cluster.address, "--profile"],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    finally:
        cluster.shutdown()
    assert got.returncode == 1, got.stderr
    assert _records(got.stdout) == reference
    assert "2 actor(s)" in got.stderr  # one per CPU of the two nodes
    assert "cut.jpg: a corrupt or truncated JPG image" in got.stderr


# -- local mode ---------------------------------------------------------------------------------


def test_local_cluster_gives_the_single_machine_records_in_every_format(
    ray_env: None, photos: Path, reference: list[dict[str, Any]]
) -> None:
    got = _ray_cli(str(photos), "-f", "jsonl", "--no-save")
    assert got.exit_code == 1
    assert _records(got.stdout) == reference
    csv_local = run_cli("detect", str(photos), *MODEL, "-f", "csv", "--no-save", "-q")
    csv_ray = _ray_cli(str(photos), "-f", "csv", "--no-save", "-q")
    assert csv_ray.stdout == csv_local.stdout


def test_unordered_gives_the_same_records(
    ray_env: None, photos: Path, reference: list[dict[str, Any]]
) -> None:
    got = _ray_cli(str(photos), "-f", "jsonl", "--no-save", "--unordered", "-q")

    def key(r: dict[str, Any]) -> str:
        return str(r["image"])

    assert sorted(_records(got.stdout), key=key) == sorted(reference, key=key)


def test_outputs_journal_and_skip_existing(ray_env: None, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    local = run_cli("detect", str(photos), *MODEL, "-f", "jsonl", "--save-txt", "-o",
                    str(tmp_path / "local"), "-q")  # fmt: skip
    first = _ray_cli(str(photos), "-f", "jsonl", "--save-txt", "-o", str(out))
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert {"more/b.jpg", "more/b.txt", ".yolocli-journal"} <= set(names)
    for rel in ("coffee.png", "more/b.txt", "motorcycle_left.txt"):  # the same bytes
        assert (out / rel).read_bytes() == (tmp_path / "local" / rel).read_bytes()
    strip = [{**r, "outputs": {}} for r in _records(local.stdout)]
    assert [{**r, "outputs": {}} for r in _records(first.stdout)] == strip
    again = _ray_cli(str(photos), "-f", "jsonl", "--save-txt", "-o", str(out), "--skip-existing")
    records = _records(again.stdout)
    assert [r.get("skipped", False) for r in records] == [r["error"] is None for r in records]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_records_to_has_the_cluster_write_them(
    ray_env: None, photos: Path, reference: list[dict[str, Any]], tmp_path: Path, fmt: str
) -> None:
    dest = tmp_path / "records"
    got = _ray_cli(str(photos), "--no-save", "--records-to", str(dest), "--records-format", fmt)
    assert got.exit_code == 0, got.stderr  # the cluster's failures are in the records
    assert got.stdout == ""
    if fmt == "jsonl":
        rows = [r for shard in sorted(dest.iterdir()) for r in _records(shard.read_text())]
    else:
        import pyarrow.parquet as pq

        rows = pq.read_table(dest).to_pylist()
        for row in rows:
            row["outputs"] = json.loads(row["outputs"])
            if not row["warnings"]:
                del row["warnings"]
    by_name = {r["image"]: r for r in reference}
    assert len(rows) == len(reference)
    for row in rows:
        assert row == by_name[row["image"]]


def test_an_actor_killed_mid_job_duplicates_and_loses_nothing(
    ray_env: None, photos: Path, reference: list[dict[str, Any]], tmp_path: Path
) -> None:
    from tests.ray_helpers import MARKER, DiesOnce, items_for
    from yolocli.detector import plan
    from yolocli.io.outputs import Outputs, SaveOptions
    from yolocli.models.store import Store
    from yolocli.postprocess import Postprocess
    from yolocli.ray import RayRun
    from yolocli.run.pipeline import Options

    marker = Path(MARKER)
    marker.touch()
    the_plan = plan("yolov3-tiny", store=Store.from_env(), postprocess=Postprocess(conf=0.2))
    run = RayRun(the_plan, Outputs(SaveOptions()), Options(), actors=1, batch_size=2,
                 udf=DiesOnce)  # fmt: skip
    results = list(run.run(items_for(photos)))
    assert not marker.exists()  # it did die
    got = [dict(r.record("yolov3-tiny")) for r in results]
    assert got == reference


def test_your_own_pipeline_from_read_binary_files(
    ray_env: None, photos: Path, reference: list[dict[str, Any]]
) -> None:
    """The Python route (the module's example): bytes read by Ray Data's own read tasks
    (``detect --ray`` has its actors read them instead), the same records."""
    import yolocli.ray as yray
    from yolocli.detector import plan
    from yolocli.io.inputs import expand_sources
    from yolocli.models.store import Store
    from yolocli.postprocess import Postprocess

    the_plan = plan("yolov3-tiny", store=Store.from_env(), postprocess=Postprocess(conf=0.2))
    paths = [str(s.path) for s in expand_sources([str(photos)]) if s.path is not None]
    rows = yray.detect(yray.read(paths), the_plan)
    records = yray.to_records(rows, "yolov3-tiny", the_plan.info.class_names)
    got = [json.loads(row["text"]) for row in records.take_all()]
    assert sorted(got, key=lambda r: r["image"]) == sorted(reference, key=lambda r: r["image"])


# -- object storage: moto's real S3 server ------------------------------------------------------


def test_s3_source_and_out(
    ray_env: None, s3: dict[str, str], photos: Path, reference: list[dict[str, Any]]
) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=s3["AWS_ENDPOINT_URL"])
    client.create_bucket(Bucket="shots")
    for path in sorted(p for p in photos.rglob("*") if p.is_file()):
        client.upload_file(str(path), "shots", f"photos/{path.relative_to(photos).as_posix()}")
    client.put_object(Bucket="shots", Key="photos/notes.txt", Body=b"not an image")

    got = _ray_cli("s3://shots/photos", "-f", "jsonl", "--save-txt", "-o", "s3://shots/out")
    assert got.exit_code == 1, got.stderr
    records = _records(got.stdout)
    local = f"{photos}/"
    assert [r["image"] for r in records] == [
        r["image"].replace(local, "s3://shots/photos/") for r in reference
    ]
    for mine, theirs in zip(records, reference, strict=True):
        assert {**mine, "image": "", "outputs": {}} == {**theirs, "image": "", "outputs": {}}
    b = next(r for r in records if r["image"].endswith("more/b.jpg"))
    assert b["outputs"] == {
        "image": "s3://shots/out/more/b.jpg",
        "labels": "s3://shots/out/more/b.txt",
    }
    listed = client.list_objects_v2(Bucket="shots", Prefix="out/")["Contents"]
    keys = {o["Key"] for o in listed}
    assert {"out/more/b.jpg", "out/more/b.txt", "out/coffee.png", "out/.yolocli-journal"} <= keys
    label = client.get_object(Bucket="shots", Key="out/motorcycle_left.txt")["Body"].read()
    assert label.startswith(b"3 ")  # the motorbike, as a YOLO label line

    again = _ray_cli("s3://shots/photos", "-f", "jsonl", "--save-txt", "-o", "s3://shots/out",
                     "--skip-existing")  # fmt: skip
    assert [r.get("skipped", False) for r in _records(again.stdout)] == [
        r["error"] is None for r in reference
    ]
