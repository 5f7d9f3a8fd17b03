"""Video files, cameras and network streams: frames in, annotated video out.

A video input is read as `Frame` items (index in the source, time in seconds, BGR image) by
`frames`; a file is read in order, as fast as the consumer takes frames, and a live source (a
camera, an rtsp/rtmp/http stream) is read by a thread of its own that keeps only the newest
frame (or, with ``buffer``, every frame in a bounded queue), so a slow network never adds
latency. A stream that drops is reopened with bounded backoff (`Reconnect`).

`VideoSink` writes annotated frames to a file that players and browsers open: H.264 in MP4
through the ffmpeg binary that the optional ``imageio-ffmpeg`` package ships (the ``video``
extra), else MPEG-4 Part 2 (``mp4v``) in MP4 through OpenCV, which its wheel always writes
but browsers do not play. Either way it is written under a temporary name and renamed when
complete, so a final name never holds half a video.

`detect_video` is the library's one-call form: ``(frame_index, time, frame, Detections)`` for
each frame of one source.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import shutil
import stat
import subprocess
import threading
import time
import weakref
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from yolocli.detections import Detections
from yolocli.errors import ImageError
from yolocli.io.files import temporary_name
from yolocli.run import signals

log = logging.getLogger(__name__)

# "frames": a folder or glob of images read as one video, in name order (`yolocli track`).
Kind = Literal["image", "video", "camera", "stream", "frames"]
SOURCE_TYPES = ("auto", "file", "camera", "stream")

# Read as videos when found in folders and globs; a file named directly is also a video when
# its first bytes say so (`sniff_video`), whatever its name.
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv", ".flv"}
)
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "rtmps://", "http://", "https://")
_CAMERA_DEVICE = re.compile(r"/dev/video\d+")

# A frame rate a container may claim but no real video has: treated as unknown.
MAX_FPS = 1000.0
DEFAULT_FPS = 25.0  # for the output video when the source does not say (most live streams)


def is_video_name(name: str | os.PathLike[str]) -> bool:
    return os.path.splitext(os.fspath(name))[1].lower() in VIDEO_EXTENSIONS


def is_stream_url(item: str) -> bool:
    return item.lower().startswith(STREAM_SCHEMES)


def sniff_video(head: bytes) -> bool:
    """True if ``head`` (a file's first 12 bytes or more) starts a video container."""
    return (
        head[4:8] == b"ftyp"  # MP4, MOV, M4V, 3GP
        or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
        or head[:4] == b"\x1a\x45\xdf\xa3"  # Matroska, WebM
        or head[:4] == b"\x00\x00\x01\xba"  # MPEG program stream
        or head[:3] == b"FLV"
    )


def classify(item: str, source_type: str = "auto") -> Kind | None:
    """What an input names, from its text alone: a camera, a stream, or None (a path: a file,
    folder, glob or list, decided by looking at it).

    The rule for a bare number: ``0`` is camera 0 unless a file or folder named ``0`` exists
    (then that is read); ``source_type`` "camera" or "file" settles it either way. A
    ``/dev/videoN`` path is a camera; an rtsp/rtmp/http(s) URL is a stream.
    """
    if source_type == "camera":
        return "camera"
    if source_type == "stream":
        return "stream"
    if source_type == "file":
        return None
    if is_stream_url(item):
        return "stream"
    if _CAMERA_DEVICE.fullmatch(item):
        return "camera"
    if item.isdigit() and not os.path.lexists(item):
        return "camera"
    return None


def is_camera_device(path: str | os.PathLike[str], mode: int) -> bool:
    """A character device named like a V4L2 camera (``/dev/video0``)."""
    return stat.S_ISCHR(mode) and os.path.basename(os.fspath(path)).startswith("video")


def output_stem(name: str, kind: Kind) -> str:
    """A file-name stem for a camera or stream's outputs: ``camera0``,
    ``127.0.0.1_8080_cam.mjpg`` (no folder parts, no characters a file system dislikes)."""
    if kind == "camera":
        digits = re.sub(r"\D", "", os.path.basename(name)) or "0"
        return f"camera{digits}"
    text = re.sub(r"^[a-z]+://", "", name, flags=re.IGNORECASE)
    text = re.sub(r"^[^@/]*@", "", text)  # never credentials in a file name
    text = text.split("?")[0]
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return clean[:120] or "stream"


# -- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reconnect:
    """How a dropped live stream is reopened: ``attempts`` reopenings in all for one source
    (not per drop: a source that keeps dropping is given up on), waiting ``delay`` seconds
    before the first, doubling up to ``max_delay``. ``stall`` is how long opening the source
    or waiting for its next frame may take before that counts as a drop (FFmpeg's own
    default is 30 s)."""

    attempts: int = 5
    delay: float = 0.5
    max_delay: float = 8.0
    stall: float = 10.0

    def delays(self) -> list[float]:
        return [min(self.delay * 2**i, self.max_delay) for i in range(self.attempts)]


@dataclass
class Frame:
    """One decoded frame: its index in the source (counting skipped ones), seconds from the
    start (the container's timestamp for a file, the clock for a live source), and the
    (H, W, 3) BGR image. ``fps`` is the source's frame rate (None: not known)."""

    index: int
    time: float
    image: npt.NDArray[np.uint8]
    fps: float | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReadOptions:
    """Which frames of a video to read, and how live sources behave."""

    stride: int = 1  # every Nth frame
    max_frames: int | None = None  # stop after this many frames processed
    buffer: bool = False  # live sources: keep every frame (True) or only the newest
    reconnect: Reconnect = field(default_factory=Reconnect)
    frame_rate: float = 30.0  # a folder of frames: frame i is at i / frame_rate seconds


def open_capture(target: str, kind: Kind, stall: float | None = None) -> cv2.VideoCapture:
    """An opened `cv2.VideoCapture` for ``target``; `ImageError` saying why not. ``stall``:
    seconds opening it and each read may wait on the network (FFmpeg sources)."""
    if kind == "camera":
        index = target if not target.isdigit() else int(target)
        cap = cv2.VideoCapture(index)
    else:
        params = []
        if stall is not None:
            ms = max(1, round(stall * 1000))
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
        if kind == "stream":
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # asks the backend for little latency
    if not cap.isOpened():
        cap.release()
        what = {"camera": "camera", "stream": "stream"}.get(kind, "video")
        raise ImageError(f"cannot open this {what} (OpenCV's FFmpeg backend cannot read it)")
    return cap


def fps_of(cap: cv2.VideoCapture) -> float | None:
    fps = float(cap.get(cv2.CAP_PROP_FPS))
    return fps if 0 < fps <= MAX_FPS else None


def frames(target: str, kind: Kind, options: ReadOptions | None = None) -> Generator[Frame]:
    """The frames of one video file, camera or stream, in order, as decoded.

    A file that ends before the frame count its container declares (truncated or corrupt)
    yields every frame that decodes, then raises `ImageError` naming the problem; a live
    source that cannot be reopened within its `Reconnect` budget does the same. A "stream"
    whose container declares a frame count (a video file or an image served over HTTP, a
    file given with ``--source-type stream``) is finite: it is read once, to its end, like
    a file, never reopened.
    """
    opts = options or ReadOptions()
    if opts.stride < 1:
        raise ValueError(f"stride must be >= 1, got {opts.stride}")
    if kind == "frames":
        yield from _sequence(target, opts)
        return
    stall = opts.reconnect.stall if kind != "camera" else None
    cap = open_capture(target, kind, stall)
    if kind == "camera" or (kind == "stream" and not _finite(cap)):
        yield from _live(target, kind, opts, cap)
        return
    try:
        fps = fps_of(cap)
        declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        index = produced = 0
        while opts.max_frames is None or produced < opts.max_frames:
            if index % opts.stride:
                if not cap.grab():  # skipped frames are not converted to images
                    break
                index += 1
                continue
            ok, image = cap.read()
            if not ok:
                break
            msec = float(cap.get(cv2.CAP_PROP_POS_MSEC))
            t = msec / 1000 if msec > 0 or index == 0 else index / (fps or DEFAULT_FPS)
            yield Frame(index, t, np.asarray(image, np.uint8), fps)
            index += 1
            produced += 1
        finished = opts.max_frames is not None and produced >= opts.max_frames
        if index == 0:
            raise ImageError("no frame of this video could be decoded (corrupt or not a video?)")
        if not finished and declared > 0 and index < declared - max(1, declared // 100):
            raise ImageError(
                f"the video ends after {index} of the {declared} frames it declares "
                "(truncated or corrupt): the frames before were processed"
            )
    finally:
        cap.release()


def _natural(path: str) -> list[Any]:
    """A sort key where digit runs compare as numbers: frame2 before frame10."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path)]


def sequence_paths(target: str) -> list[str]:
    """The image files of a folder (recursively) or a glob pattern, in name order, numbers
    by value (``frame2.jpg`` before ``frame10.jpg``)."""
    from yolocli.io.inputs import is_image_name, match_glob  # inputs imports this module

    if os.path.isdir(target):
        found = [
            os.path.join(folder, name)
            for folder, _, names in os.walk(target)
            for name in names
            if is_image_name(name)
        ]
    else:
        found = [p for p in match_glob(target) if is_image_name(p) and os.path.isfile(p)]
    return sorted(found, key=_natural)


def _sequence(target: str, opts: ReadOptions) -> Iterator[Frame]:
    """A folder or glob of images as frames: frame i (its place in name order) at time
    i / ``opts.frame_rate``. A frame that cannot be read is skipped, with a warning."""
    if not opts.frame_rate > 0:
        raise ValueError(f"frame_rate must be > 0, got {opts.frame_rate}")
    paths = sequence_paths(target)
    if not paths:
        raise ImageError("no images in this folder or pattern")
    produced = 0
    warnings: list[str] = []
    for index in range(0, len(paths), opts.stride):
        if opts.max_frames is not None and produced >= opts.max_frames:
            return
        image = cv2.imread(paths[index], cv2.IMREAD_COLOR)
        if image is None:
            warnings.append(f"frame {index} ({paths[index]}) cannot be read: skipped")
            continue
        t = index / opts.frame_rate
        yield Frame(index, t, np.asarray(image, np.uint8), opts.frame_rate, warnings)
        warnings = []
        produced += 1


def _finite(cap: cv2.VideoCapture) -> bool:
    """True if the opened source declares how many frames it has (live ones declare none,
    or a negative count)."""
    return float(cap.get(cv2.CAP_PROP_FRAME_COUNT)) > 0


_GONE = object()
# every live source's reader thread, and the event that tells it to stop
_READERS: weakref.WeakKeyDictionary[threading.Thread, threading.Event] = weakref.WeakKeyDictionary()


def readers_alive() -> bool:
    """True while a live source's reader thread is running."""
    return any(t.is_alive() for t in list(_READERS))


def stop_readers(timeout: float) -> bool:
    """Tell every live source's reader thread to stop, and wait up to ``timeout`` seconds in
    all for them to end; True if none is left.

    A process must not start interpreter shutdown while one runs: shutdown ends a daemon
    thread wherever it is, and one inside FFmpeg's C++ read aborts the whole process
    ("FATAL: exception not rethrown", exit 134). A reader in a read of a stalled source ends
    within the stall timeout; `yolocli.cli.app.main` exits without shutdown if one outlives this.
    """
    deadline = time.monotonic() + timeout
    for event in list(_READERS.values()):
        event.set()
    for thread in list(_READERS):
        thread.join(max(0.0, deadline - time.monotonic()))
    return not readers_alive()


def _live(target: str, kind: Kind, opts: ReadOptions, cap: cv2.VideoCapture) -> Iterator[Frame]:
    """A live source read on its own thread; see `frames`."""
    fps = fps_of(cap)
    slots: queue.Queue[Any] = queue.Queue(maxsize=64 if opts.buffer else 1)
    stop = threading.Event()
    start = time.monotonic()

    def put(item: Any) -> None:
        while not stop.is_set():
            if not opts.buffer and item is not _GONE:
                with contextlib.suppress(queue.Empty):
                    slots.get_nowait()  # the newest frame replaces an unread one
            try:
                slots.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def read() -> None:
        nonlocal cap
        index, notes = 0, list[str]()
        delays = iter(opts.reconnect.delays())  # the budget of the whole source
        try:
            while not stop.is_set():
                ok, image = cap.read()
                if not ok:
                    cap.release()
                    if stop.is_set():
                        return
                    reopened, notes = _reopen(target, kind, opts.reconnect, delays, stop, index)
                    if reopened is None:
                        put(ImageError(notes[0]))
                        return
                    cap = reopened
                    continue
                if index % opts.stride == 0:
                    elapsed = time.monotonic() - start
                    put(Frame(index, elapsed, np.asarray(image, np.uint8), fps, notes))
                    notes = []
                index += 1
        except BaseException as err:  # handed to the consumer
            put(err)
        finally:
            cap.release()
            put(_GONE)

    reader = threading.Thread(target=read, name="yolocli-live", daemon=True)
    _READERS[reader] = stop
    reader.start()
    produced = 0
    try:
        while opts.max_frames is None or produced < opts.max_frames:
            item = slots.get()
            if item is _GONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
            produced += 1
    finally:
        stop.set()
        # a read blocks at most the stall timeout; the reader then sees stop and ends
        reader.join(timeout=(opts.reconnect.stall if kind == "stream" else 5) + 1)


def _reopen(
    target: str,
    kind: Kind,
    policy: Reconnect,
    delays: Iterator[float],
    stop: threading.Event,
    frames_read: int,
) -> tuple[cv2.VideoCapture | None, list[str]]:
    """A reopened capture and a note saying so, or None and the sentence giving up.
    ``delays`` is what is left of the source's budget: each attempt spends one."""
    stall = policy.stall if kind != "camera" else None
    for delay in delays:
        if stop.wait(delay):
            break
        try:
            cap = open_capture(target, kind, stall)
        except ImageError:
            continue
        log.info("%s: reopened after a drop", target)
        return cap, [f"the {kind} dropped after frame {frames_read - 1} and was reopened"]
    what = "camera" if kind == "camera" else "stream"
    waits = "" if kind == "camera" else f"; a read or an open waits {policy.stall:g} s at most"
    return None, [
        f"the {what} was lost after {frames_read} frames and did not come back "
        f"({policy.attempts} attempts to reopen it in all{waits})"
    ]


# -- writing ----------------------------------------------------------------------------------


def encoder() -> str:
    """The encoder `VideoSink` uses here, in words (for the summary line)."""
    return "H.264 (imageio-ffmpeg)" if _ffmpeg_exe() else "MPEG-4 Part 2 'mp4v' (OpenCV)"


def _ffmpeg_exe() -> str | None:
    try:
        import imageio_ffmpeg  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    try:
        exe: str = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        return None
    return exe if shutil.which(exe) or os.path.exists(exe) else None


class VideoSink:
    """An MP4 video written frame by frame on a thread of its own, at ``fps``, each frame
    (H, W, 3) BGR of the first frame's size; renamed to ``path`` by `close`, removed by
    `abort`. H.264 needs even sides: an odd width or height gets one padding column or row."""

    def __init__(self, path: Path, fps: float, width: int, height: int) -> None:
        self.path = path
        self.fps = fps
        self.size = (width, height)
        path.parent.mkdir(parents=True, exist_ok=True)
        # The container is chosen from the name: the temporary ends in .mp4
        # (files.clean_stale_temporaries knows that form too).
        self.tmp = path.with_name(temporary_name() + ".mp4")
        self.frames = 0
        self._queue: queue.Queue[npt.NDArray[np.uint8] | None] = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._cv: cv2.VideoWriter | None = None
        exe = _ffmpeg_exe()
        if exe is not None:
            self._proc = subprocess.Popen(
                [exe, "-hide_banner", "-loglevel", "error", "-y",
                 "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}",
                 "-r", f"{fps:.6g}", "-i", "-",
                 "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",
                 "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
                 "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4", str(self.tmp)],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                process_group=0,  # Ctrl-C reaches us, not the encoder: we finalize the file
            )  # fmt: skip
        else:
            self._cv = cv2.VideoWriter(
                str(self.tmp), cv2.CAP_FFMPEG, cv2.VideoWriter.fourcc(*"mp4v"), fps, self.size
            )
            if not self._cv.isOpened():
                raise ImageError(f"cannot write the video {path}: no encoder for MP4")
        self.encoder = encoder()
        self._thread = threading.Thread(target=self._run, name="yolocli-video-out", daemon=True)
        self._thread.start()

    def write(self, image: npt.NDArray[np.uint8]) -> None:
        if self._error is not None:
            raise ImageError(f"cannot write the video {self.path}: {self._error}")
        if (image.shape[1], image.shape[0]) != self.size:
            image = np.asarray(cv2.resize(image, self.size), np.uint8)  # a stream resized
        signals.put(self._queue, np.ascontiguousarray(image))  # Ctrl-C seen while it waits
        self.frames += 1

    def _run(self) -> None:
        while True:
            image = self._queue.get()
            if image is None:
                return
            if self._error is not None:
                continue
            try:
                if self._proc is not None:
                    assert self._proc.stdin is not None
                    self._proc.stdin.write(image.tobytes())
                else:
                    assert self._cv is not None
                    self._cv.write(image)
            except (OSError, cv2.error) as err:
                self._error = err

    def _finish(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._proc is not None:
            assert self._proc.stdin is not None
            assert self._proc.stderr is not None
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
            err = self._proc.stderr.read().decode(errors="replace").strip()
            if self._proc.wait() != 0 and self._error is None:
                self._error = RuntimeError(err.splitlines()[-1] if err else "ffmpeg failed")
            self._proc.stderr.close()
        elif self._cv is not None:
            self._cv.release()

    def close(self) -> Path:
        """Finish the file and give it its name; `ImageError` if it could not be written."""
        self._finish()
        if self._error is not None or self.frames == 0:
            self.abort()
            raise ImageError(f"cannot write the video {self.path}: {self._error or 'no frames'}")
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._thread.is_alive():
            self._finish()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)


# -- the library's one-call form ----------------------------------------------------------------


def detect_video(
    detector: Any, source: str, options: ReadOptions | None = None, source_type: str = "auto"
) -> Iterator[tuple[int, float, npt.NDArray[np.uint8], Detections]]:
    """``(frame_index, time, frame, detections)`` for each frame of a video file, camera
    (``"0"``, ``/dev/video0``) or stream URL, decoded on a thread ahead of the network.

    ``detector`` is a `yolocli.detector.Detector`. Raises `ImageError` when the source cannot be
    opened, and after the last good frame of a truncated video or a lost stream.
    """
    kind = classify(source, source_type) or "video"
    for frame in _ahead(frames(source, kind, options), depth=4):
        yield frame.index, frame.time, frame.image, detector.detect(frame.image)


def _ahead(items: Iterator[Frame], depth: int) -> Iterator[Frame]:
    """``items`` produced on a thread, at most ``depth`` ahead of the consumer."""
    box: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        box.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as err:
            box.put(err)
        box.put(_GONE)

    thread = threading.Thread(target=produce, name="yolocli-video-in", daemon=True)
    thread.start()
    try:
        while True:
            item = box.get()
            if item is _GONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                box.get_nowait()


def expected_frames(target: str, kind: Kind, options: ReadOptions) -> int | None:
    """How many frames `frames` will yield for ``target``, if known in advance: a file's
    declared frame count (after ``stride``, capped by ``max_frames``), or ``max_frames`` for a
    live source; None when nothing says (a live source without a limit, a container that
    declares no count). For a progress bar's total: never trusted for anything else."""
    if kind in ("camera", "stream"):
        return options.max_frames
    try:
        cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG)
        declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
        cap.release()
    except cv2.error:
        declared = 0
    if declared <= 0:
        return options.max_frames
    count = -(-declared // options.stride)
    return count if options.max_frames is None else min(count, options.max_frames)
