"""One command's run as a person sees it: progress, counts and the summary on stderr."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from yolocli.cli.common import _is_internal, _isatty, _printable, _progress_wanted


class _Run:
    """Counts, the progress bar and the closing summary of one detect run (all on stderr)."""

    def __init__(
        self, ctx: click.Context, model: str, out_dir: Path | None, total: int | None
    ) -> None:
        import time

        self.ctx = ctx
        self.model = model
        self.out_dir = out_dir
        self.done = self.failed = self.skipped = self.objects = self.input_errors = 0
        self.tiles = 0
        self.frames = self.videos = 0
        self.per_video: dict[int | None, Any] = {}
        self.encoder = ""
        self.engine = ""
        self.recipe = ""  # how the model ran: its darknet flavour and why (for --profile)
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.start = time.perf_counter()
        self.first_output: str | None = None  # the first file written, for the summary
        self.bar: Any = None
        if _progress_wanted(ctx):
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                unit="frame" if ctx.meta.get("yolocli.videos") else "img",
                file=sys.stderr,
                dynamic_ncols=True,
                leave=False,
            )

    def track(self, results: Any) -> Any:
        from collections import Counter

        for result in results:
            if result.input_error:
                self.input_errors += 1  # names no image: not counted as one
            elif result.frame is not None:
                self.frames += 1
                if result.detections is not None:
                    counts = self.per_video.setdefault(result.video_id, Counter())
                    counts.update(result.detections.labels)
            else:
                self.done += 1
                self.videos += result.source.is_video
                if result.video_end and "image" in result.outputs and not self.encoder:
                    from yolocli.io.video import encoder

                    self.encoder = encoder()
            for warning in result.warnings:
                self._say(f"yolocli: warning: {_printable(result.source.name)}: {warning}")
            if result.error:
                self.failed += not result.input_error
                hint = " (rerun with --debug for the traceback)" * _is_internal(result.error)
                self._say(f"yolocli: {_printable(result.source.name)}: {result.error}{hint}")
            elif result.skipped:
                self.skipped += 1
            elif result.detections is not None:
                self.objects += len(result.detections)
                self.tiles += result.tiles
            if self.first_output is None and not result.skipped:
                self.first_output = _first_file(result.outputs)
            for stage, (wall, cpu) in result.timings.items():
                self.wall[stage] = self.wall.get(stage, 0.0) + wall
                if cpu is not None:
                    self.cpu[stage] = self.cpu.get(stage, 0.0) + cpu
            if self.bar is not None and not result.video_end:
                self.bar.update(1)
                if self.failed:
                    self.bar.set_postfix(failed=self.failed, refresh=False)
            yield result

    def video_summary(self, result: Any) -> str:
        """One line for a video (text output): frames, objects per class, its output."""
        from collections import Counter

        counts: Counter[str] = self.per_video.pop(result.video_id, None) or Counter()
        n = sum(counts.values())
        found = ", ".join(f"{k} {_printable(label)}" for label, k in counts.most_common())
        line = f"{_printable(result.source.name)}: {result.frames} frames, {n} objects"
        line += f" ({found})" if found else ""
        for i, counted in enumerate(result.extra.get("lines", [])):  # yolocli track --line
            ways = [f"{way} " + (", ".join(f"{n} {_printable(k)}" for k, n in counted[way].items())
                                 or "0") for way in ("in", "out")]  # fmt: skip
            line += f"; line {i + 1}: {'; '.join(ways)}"
        for i, zone in enumerate(result.extra.get("zones", [])):
            entered = ", ".join(f"{n} {_printable(k)}" for k, n in zone["entered"].items())
            line += f"; zone {i + 1}: entered {entered or 0}"
        if "image" in result.outputs:
            line += f" -> {_printable(result.outputs['image'])}"
        return line + (f" [stopped: {result.error}]" if result.error else "")

    def _say(self, line: str) -> None:
        if self.bar is not None:
            self.bar.clear()
        click.echo(line, err=True)

    @contextlib.contextmanager
    def above_bar(self) -> Iterator[None]:
        """Write records to stdout with the bar out of their way: on a terminal, stdout and
        the bar (on stderr) share the screen, so the bar is cleared first (no record glued
        to it, no stale bars left above) and drawn again below the record."""
        bar = self.bar if self.bar is not None and _isatty(sys.stdout) else None
        if bar is not None:
            bar.clear()
        try:
            yield
        finally:
            if bar is not None:
                sys.stdout.flush()
                bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def finish(self, profile: bool) -> None:
        import time

        self.close()
        elapsed = time.perf_counter() - self.start
        if not self.ctx.meta.get("yolocli.quiet"):
            click.echo(self.summary(elapsed), err=True)
        if profile:  # asked for by name: shown under -q too
            self._profile(elapsed)

    def summary(self, elapsed: float) -> str:
        """The closing line: what was done, how fast, and where the outputs are."""
        images = self.done - self.videos
        # The rate is of work done: failed and skipped inputs took no forward pass.
        count = max(images - self.failed - self.skipped, 0) + self.frames
        rate = count / elapsed if elapsed > 0 else 0.0
        parts = [f"{images} image{'s' * (images != 1)}"] if images or not self.videos else []
        if self.videos:
            parts.append(f"{self.videos} video{'s' * (self.videos != 1)} ({self.frames} frames)")
        parts.append(f"{self.objects} object{'s' * (self.objects != 1)}")
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.input_errors:
            parts.append(f"{self.input_errors} input error{'s' * (self.input_errors != 1)}")
        where = ""
        if self.out_dir is not None and self.first_output is not None:
            where = f"; outputs in {self.out_dir}/ (first: {_printable(self.first_output)})"
        unit = "frames/s" if self.videos else "images/s"
        if self.encoder:
            where += f" (videos: {self.encoder})"
        return f"yolocli: {', '.join(parts)} in {elapsed:.1f} s ({rate:.1f} {unit}){where}"

    def _profile(self, elapsed: float) -> None:
        from yolocli.run.pipeline import STAGES

        processed = max(self.done - self.videos + self.frames - self.failed - self.skipped, 1)
        what = "image or frame" if self.videos else "image"

        def ms(total: float) -> str:
            return f"{total / processed * 1e3:8.1f}"

        lines = [
            f"yolocli: time per {what} by stage ({self.model}, {processed} {what}s):",
            f"  {'stage':<12} {'wall ms':>8} {'cpu ms':>8}",
        ]
        for stage in STAGES:
            if stage in self.wall:
                cpu = ms(self.cpu[stage]) if stage in self.cpu else f"{'-':>8}"
                lines.append(f"  {stage:<12} {ms(self.wall[stage])} {cpu}")
        lines.append(f"  {'wall clock':<12} {ms(elapsed)}")
        lines.append(
            "  (cpu: what a stage costs on its thread; wall also counts waiting for a core."
            " Stages overlap on threads and worker processes; the forward pass runs on the"
            " engine's threads.)"
        )
        if self.tiles > processed:
            lines.append(f"  network passes per image (--slice): {self.tiles / processed:.1f}")
        if self.engine:
            lines.append(f"  engine: {self.engine}")
        if self.recipe:
            lines.append(f"  model runs as {self.recipe}")
        click.echo("\n".join(lines), err=True)


def _first_file(outputs: Any) -> str | None:
    """The first file named in a record's ``outputs``, if any."""
    for value in outputs.values():
        if isinstance(value, list):
            if value:
                return str(value[0])
        elif value:
            return str(value)
    return None
