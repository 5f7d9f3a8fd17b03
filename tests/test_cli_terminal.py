"""What a person sees: yolocli in a real pseudo-terminal, its screen rendered by pyte."""

from __future__ import annotations

import fcntl
import logging
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pyte
import pytest

from tests import awkward
from tests.conftest import DATA, WEIGHTS_CACHE, run_cli
from tests.test_video import photo_frames, write_clip

COLUMNS, ROWS = 120, 200  # tall enough that nothing scrolls away


def run_in_terminal(args: list[str], cwd: Path, timeout: float = 120) -> tuple[list[str], str]:
    """Run ``yolocli ARGS`` with stdout and stderr on one pseudo-terminal; the final screen's
    non-empty lines, and everything that was sent to the terminal."""
    master, slave = pty.openpty()
    # A new pseudo-terminal is 0x0; the bar sizes itself to the terminal, as in real use.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    env = {
        **os.environ,
        "YOLOCLI_HOME": str(WEIGHTS_CACHE),
        "YOLOCLI_OFFLINE": "1",
        "COLUMNS": str(COLUMNS),
        "LINES": str(ROWS),
        "TQDM_MININTERVAL": "0",  # draw the bar at every step, so every record meets one
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "yolocli", *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        env=env,
    )
    os.close(slave)
    screen = pyte.Screen(COLUMNS, ROWS)
    stream = pyte.ByteStream(screen)
    sent = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 1 << 16)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            stream.feed(data)
            sent += data
    finally:
        os.close(master)
        if proc.poll() is None and time.monotonic() >= deadline:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == 0, screen.display
    return [line.rstrip() for line in screen.display if line.strip()], sent.decode()


@pytest.mark.usefixtures("tiny_weights")
def test_records_and_progress_each_keep_their_own_lines(tmp_path: Path) -> None:
    """Bug 1 of the everyday-use pass: records were glued to the bar, old bars stayed."""
    photos = awkward.copies(tmp_path / "batch", 8)
    lines, sent = run_in_terminal(
        ["detect", "batch", "--model", "yolov3-tiny", "--no-save", "-j", "1"], tmp_path
    )
    assert "/8 [" in sent  # there was a bar, with its total
    records = [line for line in lines if line.startswith("batch/")]
    assert len(records) == len(photos), lines
    assert not [line for line in lines if "img/s" in line or "%|" in line], lines  # no bar left
    for line in records:
        assert line.count("batch/") == 1, line
    assert lines[-1].startswith("yolocli: 8 images, "), lines


@pytest.mark.usefixtures("tiny_weights")
@pytest.mark.parametrize(("extra", "total"), [([], 12), (["--max-frames", "5"], 5)])
def test_a_video_has_a_bar_with_a_total_and_its_summary_on_its_own_line(
    tmp_path: Path, extra: list[str], total: int
) -> None:
    """The video bar knows its total (frame count, or --max-frames), and the per-video line
    does not land on the bar."""
    write_clip(tmp_path / "clip.avi", photo_frames(12), "MJPG")
    shutil.copy(DATA / "images" / "coffee.png", tmp_path / "cup.png")
    lines, sent = run_in_terminal(
        ["detect", "cup.png", "clip.avi", "--model", "yolov3-tiny", "--no-save", *extra], tmp_path
    )
    assert f"/{total + 1} [" in sent  # frames, plus the photo
    assert [line for line in lines if not line.startswith("  ")] == [
        "cup.png: 1 object (1 cup), 600x400",
        *[line for line in lines if line.startswith(f"clip.avi: {total} frames, ")],
        *[line for line in lines if line.startswith("yolocli: 1 image, 1 video")],
    ], lines


# ----------------------------------------------------------------------- the closing lines


@pytest.mark.usefixtures("use_real_store")
def test_profile_is_printed_under_quiet(tmp_path: Path) -> None:
    """Bug 5: --profile is asked for by name; -q silences the rest, not it."""
    result = run_cli("detect", str(DATA / "images/coffee.png"), "--model", "yolov3-tiny",
                     "--no-save", "-q", "--profile")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "time per image by stage" in result.stderr
    assert "  engine: " in result.stderr
    assert "yolocli: 1 image" not in result.stderr  # the summary stays quiet


@pytest.mark.usefixtures("use_real_store")
def test_the_rate_counts_only_images_that_ran(tmp_path: Path) -> None:
    """Bug 7: a failed input took no forward pass; it must not make the run look fast."""
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    result = run_cli("detect", str(tmp_path / "broken.jpg"), "--model", "yolov3-tiny",
                     "--no-save")  # fmt: skip
    assert result.exit_code == 1
    summary = result.stderr.splitlines()[-1]
    assert summary.startswith("yolocli: 1 image, 0 objects, 1 failed in "), summary
    assert summary.endswith("(0.0 images/s)"), summary


@pytest.mark.usefixtures("use_real_store")
def test_the_summary_names_where_the_first_output_went(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli("detect", str(DATA / "images/coffee.png"), str(DATA / "images/rocket.jpg"),
                     "--model", "yolov3-tiny", "-o", str(out))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[-1].endswith(f"; outputs in {out}/ (first: {out}/coffee.png)")


def test_batch_is_applied_or_said_to_be_unused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bug 6: --batch N was silently ignored under worker processes."""
    from yolocli.run.pipeline import Options
    from yolocli.run.workers import choose_workers

    said: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("yolocli")
    logger.addHandler(handler)
    try:
        chosen, rule = choose_workers(None, False, "auto", None, Options(batch=8))
        assert (chosen.workers, chosen.batch) == (1, 8)
        assert rule == "auto: --batch 8 batches on one network in this process"
        assert said == []
        chosen, _ = choose_workers(None, False, "2", None, Options(batch=8))
        assert chosen.workers == 2
        assert said == [
            "--batch 8 is not used with --workers 2: each worker process runs one image at a "
            "time (-j 1 batches on one network in this process)"
        ]
    finally:
        logger.removeHandler(handler)
