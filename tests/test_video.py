"""Video files and streams: a record per frame, an annotated video, truncation, drops, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import DATA, WEIGHTS_CACHE, run_cli, settle, spawn
from tests.faultserver import FaultServer
from tests.mjpegserver import MjpegServer
from yolocli.errors import ImageError
from yolocli.io import video

TINY = ["--model", "yolov3-tiny", "--conf", "0.2"]
PHOTOS = ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"]
SIZE = (160, 128)  # width, height of the test clips: small, even


def photo_frames(n: int) -> list[np.ndarray]:
    photos = [cv2.resize(cv2.imread(str(DATA / "images" / p)), SIZE) for p in PHOTOS]
    return [photos[i % len(photos)] for i in range(n)]


def write_clip(path: Path, frames: list[np.ndarray], fourcc: str, fps: float = 10) -> Path:
    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, (w, h))
    assert out.isOpened(), f"this OpenCV cannot write {fourcc} into {path.suffix}"
    for frame in frames:
        out.write(frame)
    out.release()
    return path


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


@pytest.fixture
def env(tiny_weights: Path) -> dict[str, str]:
    return {**os.environ, "YOLOCLI_HOME": str(WEIGHTS_CACHE), "YOLOCLI_OFFLINE": "1"}


# ------------------------------------------------------------------------------- what is what


@pytest.mark.parametrize(
    ("item", "source_type", "kind"),
    [
        ("0", "auto", "camera"),
        ("3", "auto", "camera"),
        ("/dev/video0", "auto", "camera"),
        ("rtsp://cam.local/live", "auto", "stream"),
        ("HTTP://127.0.0.1:8080/cam.mjpg", "auto", "stream"),
        ("rtmp://host/app", "auto", "stream"),
        ("clip.mp4", "auto", None),
        ("photos/", "auto", None),
        ("0", "file", None),
        ("clip.mp4", "stream", "stream"),
        ("1", "camera", "camera"),
    ],
)
def test_classify(item: str, source_type: str, kind: str | None) -> None:
    assert video.classify(item, source_type) == kind


def test_a_file_named_0_is_a_file_not_a_camera(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "0").write_bytes(b"x")
    assert video.classify("0") is None
    assert video.classify("0", "camera") == "camera"


@pytest.mark.parametrize(
    ("head", "is_video"),
    [
        (b"\x00\x00\x00\x20ftypisom", True),
        (b"RIFF\x00\x00\x00\x00AVI LIST", True),
        (b"\x1a\x45\xdf\xa3\x01\x00\x00\x00", True),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", False),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0d", False),
        (b"photos/a.jpg\n", False),
    ],
)
def test_sniff_video(head: bytes, is_video: bool) -> None:
    assert video.sniff_video(head) is is_video


@pytest.mark.parametrize(
    ("name", "kind", "stem"),
    [
        ("0", "camera", "camera0"),
        ("/dev/video2", "camera", "camera2"),
        ("http://user:pw@127.0.0.1:8080/cam.mjpg?x=1", "stream", "127.0.0.1_8080_cam.mjpg"),
        ("rtsp://", "stream", "stream"),
    ],
)
def test_output_stem(name: str, kind: video.Kind, stem: str) -> None:
    assert video.output_stem(name, kind) == stem


def test_folders_list_videos_beside_photos(tmp_path: Path) -> None:
    from yolocli.io.inputs import expand_sources

    write_clip(tmp_path / "b.avi", photo_frames(2), "MJPG")
    cv2.imwrite(str(tmp_path / "a.png"), photo_frames(1)[0])
    (tmp_path / "notes.txt").write_text("x")
    found = [(Path(s.name).name, s.kind) for s in expand_sources([str(tmp_path)])]
    assert found == [("a.png", "image"), ("b.avi", "video")]


# ------------------------------------------------------------------------- frames and records


def test_lossless_frames_give_the_detections_of_the_same_frame_as_png(
    tmp_path: Path, use_real_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    frames = photo_frames(4)
    write_clip(tmp_path / "clip.avi", frames, "FFV1")
    cap = cv2.VideoCapture("clip.avi")
    for i, frame in enumerate(frames):  # lossless: the same pixels come back
        ok, got = cap.read()
        assert ok
        assert np.array_equal(got, frame)
        cv2.imwrite(f"frame{i}.png", got)
    cap.release()
    result = run_cli("detect", "clip.avi", *TINY, "-f", "jsonl", "--no-save")
    assert result.exit_code == 0, result.stderr
    recs = records(result.stdout)
    assert [r["frame"] for r in recs] == [0, 1, 2, 3, None]
    assert [r["time"] for r in recs[:4]] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert recs[-1]["frames"] == 4
    pngs = run_cli(
        "detect", *(f"frame{i}.png" for i in range(4)), *TINY, "-f", "jsonl", "--no-save"
    )
    assert pngs.exit_code == 0, pngs.stderr
    assert sum(len(r["detections"]) for r in recs) > 0
    for frame_rec, png_rec in zip(recs[:4], records(pngs.stdout), strict=True):
        assert frame_rec["detections"] == png_rec["detections"]
        assert (frame_rec["width"], frame_rec["height"]) == (png_rec["width"], png_rec["height"])


def test_detect_clip_writes_a_record_per_frame_and_a_video_that_reads_back(
    tmp_path: Path, use_real_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_clip(tmp_path / "clip.mp4", photo_frames(12), "mp4v")
    result = run_cli("detect", "clip.mp4", *TINY, "-f", "jsonl", "--save-txt")
    assert result.exit_code == 0, result.stderr
    recs = records(result.stdout)
    assert [r["frame"] for r in recs] == [*range(12), None]
    assert all(r["image"] == "clip.mp4" for r in recs)
    assert recs[3]["outputs"] == {"labels": "detections/clip_000003.txt"}
    assert recs[-1]["outputs"] == {"image": "detections/clip.mp4"}
    cap = cv2.VideoCapture("detections/clip.mp4")
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == SIZE
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(10)
    assert not [
        p
        for p in Path("detections").iterdir()
        if p.name.startswith(".yolocli-") and "tmp" in p.name
    ]
    # A rerun with --skip-existing trusts the finished video: one record, skipped.
    again = run_cli("detect", "clip.mp4", *TINY, "-f", "jsonl", "--save-txt", "--skip-existing")
    assert [r.get("skipped") for r in records(again.stdout)] == [True]


def test_sliced_frames_give_what_sliced_photos_give(
    tmp_path: Path, use_real_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--slice works on video frames as on photos: the same pixels, the same detections."""
    monkeypatch.chdir(tmp_path)
    frames = [cv2.resize(f, (480, 384)) for f in photo_frames(2)]
    write_clip(tmp_path / "clip.avi", frames, "FFV1")
    for i, frame in enumerate(frames):
        cv2.imwrite(f"frame{i}.png", frame)
    sliced = ["--slice", "256", *TINY, "-f", "jsonl", "--no-save"]
    clip = records(run_cli("detect", "clip.avi", *sliced).stdout)
    pngs = records(run_cli("detect", "frame0.png", "frame1.png", *sliced).stdout)
    assert [r["frame"] for r in clip] == [0, 1, None]
    assert [r["detections"] for r in clip[:2]] == [r["detections"] for r in pngs]
    assert sum(len(r["detections"]) for r in pngs) > 0


def test_vid_stride_and_max_frames(
    tmp_path: Path, use_real_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_clip(tmp_path / "clip.avi", photo_frames(10), "MJPG")
    result = run_cli("detect", "clip.avi", *TINY, "-f", "jsonl", "--no-save",
                     "--vid-stride", "3", "--max-frames", "3")  # fmt: skip
    assert [r["frame"] for r in records(result.stdout)] == [0, 3, 6, None]


def test_text_output_is_a_summary_per_video(
    tmp_path: Path, use_real_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_clip(tmp_path / "clip.avi", photo_frames(4), "MJPG")
    result = run_cli("detect", "clip.avi", *TINY)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("clip.avi: 4 frames, ")
    assert lines[0].endswith("-> detections/clip.mp4")
    assert "1 video (4 frames)" in result.stderr


def test_a_truncated_video_keeps_its_good_frames_says_why_and_fails(
    tmp_path: Path, use_real_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = write_clip(tmp_path / "full.avi", photo_frames(20), "FFV1").read_bytes()
    Path("cut.avi").write_bytes(data[: len(data) * 6 // 10])
    cv2.imwrite("after.png", photo_frames(1)[0])
    result = run_cli("detect", "cut.avi", "after.png", *TINY, "-f", "jsonl", "--no-save")
    assert result.exit_code == 1
    recs = records(result.stdout)
    frames = [r for r in recs if r["image"] == "cut.avi" and r["frame"] is not None]
    assert 0 < len(frames) < 20
    assert all(r["error"] is None for r in frames)
    closing = next(r for r in recs if r["image"] == "cut.avi" and r["frame"] is None)
    assert "truncated or corrupt" in closing["error"]
    assert recs[-1]["image"] == "after.png"
    assert recs[-1]["error"] is None
    problem = [line for line in result.stderr.splitlines() if "cut.avi" in line]
    assert len(problem) == 1


def test_a_file_that_is_no_video_is_one_error(
    tmp_path: Path, use_real_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("junk.mp4").write_bytes(b"\x00\x00\x00\x20ftypisom" + b"\x00" * 100)
    result = run_cli("detect", "junk.mp4", *TINY, "-f", "jsonl", "--no-save")
    assert result.exit_code == 1
    (rec,) = records(result.stdout)
    assert rec["frame"] is None
    assert "cannot open this video" in rec["error"]


# ---------------------------------------------------------------------------------- streams


def jpegs(n: int) -> list[bytes]:
    return [cv2.imencode(".jpg", f)[1].tobytes() for f in photo_frames(n)]


def test_mjpeg_stream_reopened_after_a_drop(
    tmp_path: Path, use_real_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with MjpegServer(jpegs(16), drop_after=5) as server:
        result = run_cli(
            "detect", server.url, *TINY, "-f", "jsonl", "--buffer", "--max-frames", "12"
        )
    assert result.exit_code == 0, result.stderr
    recs = records(result.stdout)
    assert [r["frame"] for r in recs] == [*range(12), None]
    assert server.connections == 2
    assert "dropped after frame 4 and was reopened" in result.stderr
    assert (
        recs[-1]["outputs"]["image"]
        == "detections/127.0.0.1_" + server.url.split(":")[2].replace("/", "_")[:-5] + ".mjpg.mp4"
    )
    assert cv2.VideoCapture(recs[-1]["outputs"]["image"]).get(cv2.CAP_PROP_FRAME_COUNT) == 12


def test_a_stream_that_does_not_come_back_is_one_line_and_the_run_goes_on(
    tmp_path: Path, use_real_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cv2.imwrite("after.png", photo_frames(1)[0])
    with MjpegServer(jpegs(10), drop_after=4) as server:
        server.drop_after = 4
        result = run_cli("detect", server.url, "after.png", *TINY, "-f", "jsonl", "--buffer",
                         "--no-save", "--reconnect", "0")  # fmt: skip
    assert result.exit_code == 1
    recs = records(result.stdout)
    assert [r["frame"] for r in recs[:-1]] == [0, 1, 2, 3, None]
    assert "was lost after 4 frames" in recs[-2]["error"]
    assert recs[-1]["image"] == "after.png"
    assert len([line for line in result.stderr.splitlines() if "was lost" in line]) == 1


def test_live_sources_keep_only_the_newest_frame() -> None:
    with MjpegServer(jpegs(30), fps=100) as server:
        opts = video.ReadOptions(reconnect=video.Reconnect(attempts=0))
        got: list[int] = []

        def consume() -> None:
            for frame in video.frames(server.url, "stream", opts):
                got.append(frame.index)
                time.sleep(0.05)  # a slow consumer: frames in between are dropped

        with pytest.raises(ImageError, match="was lost"):
            consume()
    assert got == sorted(got)
    assert len(got) < 30


# -------------------------------------------------------------------- memory, pipes, signals


def peak_rss_kib(args: list[str], env: dict[str, str], cwd: Path) -> int:
    proc = subprocess.Popen([sys.executable, "-m", "yolocli", *args], env=env, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, proc.stderr.read() if proc.stderr else ""
    return usage.ru_maxrss


def test_memory_stays_flat_over_a_long_video(tmp_path: Path, env: dict[str, str]) -> None:
    # 12 KiB a decoded frame: holding all 10,000 would take 117 MiB, far past the margin.
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    write_clip(tmp_path / "short.avi", [noise] * 100, "MJPG")
    write_clip(tmp_path / "long.avi", [noise] * 10_000, "MJPG")
    args = ["detect", *TINY, "--size", "32", "-f", "jsonl", "--no-save"]  # a cheap network
    short = peak_rss_kib([*args, "short.avi"], env, tmp_path)
    long = peak_rss_kib([*args, "long.avi"], env, tmp_path)
    assert long - short < 30 * 1024, f"{short} KiB for 100 frames, {long} KiB for 10,000"


def test_head_closes_the_pipe_and_ctrl_c_finishes_the_video(
    tmp_path: Path, env: dict[str, str]
) -> None:
    write_clip(tmp_path / "clip.avi", photo_frames(400), "MJPG")
    head = subprocess.run(
        f"{sys.executable} -m yolocli detect clip.avi {' '.join(TINY)} -f jsonl -o piped"
        " | head -n 2; echo \"${PIPESTATUS[0]}\"",
        shell=True, executable="/bin/bash", cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    lines = head.stdout.splitlines()
    assert len(lines) == 3
    assert lines[-1] == "141"
    assert (
        not (tmp_path / "piped" / "clip.mp4").exists()
        or cv2.VideoCapture(str(tmp_path / "piped" / "clip.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) > 0
    )

    proc = spawn(["detect", "clip.avi", *TINY, "-f", "jsonl"], env=env, cwd=tmp_path)
    assert proc.stdout is not None
    for _ in range(3):
        proc.stdout.readline()
    proc.send_signal(signal.SIGINT)
    _, err = settle(proc, 60)
    assert proc.returncode == 130, err
    cap = cv2.VideoCapture(str(tmp_path / "detections" / "clip.mp4"))
    assert 3 <= cap.get(cv2.CAP_PROP_FRAME_COUNT) < 400  # finalized, playable
    assert cap.read()[0]
    assert not [p for p in (tmp_path / "detections").iterdir() if p.name.endswith(".tmp.mp4")]


def test_kill_9_leaves_no_video_at_its_final_name(tmp_path: Path, env: dict[str, str]) -> None:
    write_clip(tmp_path / "clip.avi", photo_frames(400), "MJPG")
    proc = spawn(["detect", "clip.avi", *TINY, "-f", "jsonl"], env=env, cwd=tmp_path)
    assert proc.stdout is not None
    for _ in range(3):
        proc.stdout.readline()
    proc.kill()
    proc.wait()
    out = tmp_path / "detections"
    assert not (out / "clip.mp4").exists()
    # The next run removes the orphan and writes the whole video.
    again = subprocess.run([sys.executable, "-m", "yolocli", "detect", "clip.avi", *TINY,
                            "--max-frames", "5", "-f", "jsonl"],
                           cwd=tmp_path, env=env, capture_output=True, text=True)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert [p.name for p in out.iterdir() if not p.name.startswith(".yolocli-journal")] == [
        "clip.mp4"
    ]


def test_h264_output_when_imageio_ffmpeg_is_installed(tmp_path: Path) -> None:
    iio = pytest.importorskip("imageio_ffmpeg")
    frames = photo_frames(6)
    sink = video.VideoSink(tmp_path / "out.mp4", 10, *SIZE)
    for frame in frames:
        sink.write(frame)
    assert sink.close() == tmp_path / "out.mp4"
    probe = subprocess.run([iio.get_ffmpeg_exe(), "-hide_banner", "-i", str(tmp_path / "out.mp4")],
                           capture_output=True, text=True)  # fmt: skip
    assert "h264" in probe.stderr
    assert f"{SIZE[0]}x{SIZE[1]}" in probe.stderr
    assert cv2.VideoCapture(str(tmp_path / "out.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 6


def test_detect_video_yields_index_time_frame_and_detections(
    tmp_path: Path, use_real_store: Path
) -> None:
    from yolocli.detector import Detector
    from yolocli.postprocess import Postprocess

    frames = photo_frames(3)
    clip = write_clip(tmp_path / "clip.mkv", frames, "FFV1")
    detector = Detector("yolov3-tiny", postprocess=Postprocess(conf=0.2))
    got = list(video.detect_video(detector, str(clip)))
    assert [(i, t) for i, t, _, _ in got] == [(0, 0.0), (1, 0.1), (2, 0.2)]
    for (_, _, frame, dets), original in zip(got, frames, strict=True):
        assert np.array_equal(frame, original)
        assert dets.records() == detector.detect(original).records()


def test_with_worker_processes_a_video_runs_here_in_order(
    tmp_path: Path, env: dict[str, str]
) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), photo_frames(1)[0])
    write_clip(tmp_path / "b.avi", photo_frames(3), "MJPG")
    cv2.imwrite(str(tmp_path / "c.png"), photo_frames(2)[1])
    proc = subprocess.run(
        [sys.executable, "-m", "yolocli", "detect", "-", *TINY, "-j", "2", "-f", "jsonl"],
        input="a.png\nb.avi\nc.png\n", cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = [(r["image"], r.get("frame")) for r in records(proc.stdout)]
    assert got == [
        ("a.png", None),
        *(("b.avi", i) for i in range(3)),
        ("b.avi", None),
        ("c.png", None),
    ]
    assert (tmp_path / "detections" / "b.mp4").is_file()


# ------------------------------------------- live and remote sources: ends, budgets, signals


@pytest.mark.skipif(
    cv2.__version__ < "5",
    reason="OpenCV 4.14's FFmpeg fails on an AVI from the test server ('Error reading HTTP "
    "response: End of file': no frame decoded); CI's OpenCV 5 run covers this",
)
def test_a_finite_video_over_http_is_read_once_to_its_end(
    tmp_path: Path, use_real_store: Path, server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit's B11: each end of file counted as a drop, and every reopen reset the budget,
    so a 100-frame clip was fetched 490 times in 60 s. A source that declares its frame count
    is finite: read once, to its end."""
    monkeypatch.chdir(tmp_path)
    server.serve("clip.avi", write_clip(tmp_path / "c.avi", photo_frames(12), "MJPG").read_bytes())
    result = run_cli("detect", server.url + "clip.avi", *TINY, "-f", "jsonl", "--no-save",
                     "--max-frames", "40")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert [r["frame"] for r in records(result.stdout)] == [*range(12), None]
    assert len(server.requests_for("clip.avi")) < 5  # FFmpeg may seek; it never loops


def test_an_image_url_is_read_once(
    tmp_path: Path, use_real_store: Path, server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    server.serve("a.jpg", jpegs(1)[0], "image/jpeg")
    result = run_cli("detect", server.url + "a.jpg", *TINY, "-f", "jsonl", "--no-save",
                     "--max-frames", "5")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert [r["frame"] for r in records(result.stdout)] == [0, None]
    assert len(server.requests_for("a.jpg")) == 1


def test_a_file_given_as_a_stream_ends_at_its_end(
    tmp_path: Path, use_real_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_clip(tmp_path / "clip.avi", photo_frames(7), "MJPG")
    result = run_cli("detect", "clip.avi", "--source-type", "stream", *TINY, "-f", "jsonl",
                     "--no-save", "--max-frames", "30")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert [r["frame"] for r in records(result.stdout)] == [*range(7), None]


def test_the_reconnect_budget_is_per_source_not_per_drop(
    tmp_path: Path, use_real_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with MjpegServer(jpegs(100), drop_every=3) as server:
        result = run_cli("detect", server.url, *TINY, "-f", "jsonl", "--no-save", "--buffer",
                         "--reconnect", "2", "--max-frames", "30")  # fmt: skip
    assert result.exit_code == 1
    recs = records(result.stdout)
    assert server.connections == 3
    assert len(recs) == 3 * 3 + 1
    assert (
        "was lost after 9 frames and did not come back (2 attempts to reopen it in all"
        in (recs[-1]["error"])
    )


def test_a_stalled_stream_gives_up_after_its_budget_and_later_inputs_run(
    tmp_path: Path, use_real_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit's W16: a server that stalls after every reconnect held a run for 400 s (30 s
    of FFmpeg's timeout a time) and the inputs after it never ran."""
    monkeypatch.chdir(tmp_path)
    cv2.imwrite("after.png", photo_frames(1)[0])
    started = time.monotonic()
    with MjpegServer(jpegs(100), stall_after=2) as server:
        result = run_cli("detect", server.url, "after.png", *TINY, "-f", "jsonl", "--no-save",
                         "--buffer", "--reconnect", "1", "--stall-timeout", "1")  # fmt: skip
    took = time.monotonic() - started
    assert result.exit_code == 1
    recs = records(result.stdout)
    assert "was lost after 4 frames" in recs[-2]["error"]
    assert "a read or an open waits 1 s at most" in recs[-2]["error"]
    assert recs[-1]["image"] == "after.png"
    assert recs[-1]["error"] is None
    assert took < 20


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "head"])
def test_stopping_a_live_stream_exits_cleanly_with_its_closing_record(
    tmp_path: Path, env: dict[str, str], how: str
) -> None:
    """The audit's B10: Ctrl-C, SIGTERM or `| head -1` on a live MJPEG stream aborted the
    process (SIGABRT, "FATAL: exception not rethrown") in 6 runs of 6: interpreter shutdown
    killed the reader thread inside FFmpeg. Now the reader is stopped first; the exit status
    is the signal's, the video is finished and the closing record written."""
    with MjpegServer(jpegs(3000), fps=50) as server:
        args = ["detect", server.url, *TINY, "-f", "jsonl", "-o", "out"]
        if how == "head":
            piped = subprocess.run(
                f"{sys.executable} -m yolocli {' '.join(args)} | head -n 1 >/dev/null;"
                ' echo "${PIPESTATUS[0]}"',
                shell=True, executable="/bin/bash", cwd=tmp_path, env=env, capture_output=True,
                text=True, timeout=120,
            )  # fmt: skip
            status, err, recs = int(piped.stdout.strip()), piped.stderr, []
        else:
            proc = spawn(args, env=env, cwd=tmp_path)
            assert proc.stdout is not None
            for _ in range(3):
                proc.stdout.readline()
            proc.send_signal(getattr(signal, how))
            out, err = settle(proc, 60)
            status, recs = proc.returncode, records(out)
    assert status == {"SIGINT": 130, "SIGTERM": 143, "head": 141}[how], err
    assert "FATAL" not in err
    # A stream is never "done" (a later run reads it afresh): the journal keeps the claim on
    # its video's name, so the file stays yolocli's, and the video is finished and plays.
    journal = [json.loads(line) for line in (tmp_path / "out" / ".yolocli-journal").open()]
    claimed = [path for entry in journal for path in entry.get("claim", [])]
    assert len(claimed) == 1
    assert not any("done" in entry for entry in journal)
    video_out = tmp_path / "out" / claimed[0]
    assert cv2.VideoCapture(str(video_out)).get(cv2.CAP_PROP_FRAME_COUNT) >= 1
    if how != "head":
        assert recs[-1]["frame"] is None
        assert recs[-1]["error"] is None
        assert recs[-1]["frames"] >= 2
