"""Object-store URIs (``s3://``, ``gs://``, any file system pyarrow knows) as inputs and outputs.

Used by the cluster run (`yolocli.ray`): a URI names a file or a folder ("prefix") there, listed
in the order `yolocli.io.inputs.walk_folder` lists a local folder (a folder's files by name, then
its subfolders by name), so a bucket and its local copy give records in the same order. Output
files go below an ``--out`` URI with the names, the journal and the never-replace rule of
`yolocli.io.outputs.Outputs`; the journal is one object, rewritten as the run goes and at its end
(object stores cannot append), so ``--skip-existing`` resumes from what it last saved.

pyarrow, which reads and writes these URIs, comes with the ``ray`` extra.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from yolocli.errors import ImageError, OutputError, YolocliError
from yolocli.io.inputs import IMAGE_EXTENSIONS, Source, is_image_name, safe_rel
from yolocli.io.outputs import JOURNAL, Rendered, Saved, SaveOptions, Targets, _safe_label
from yolocli.io.records import OutputsRecord
from yolocli.run.timing import Clock

log = logging.getLogger(__name__)


# The journal object is rewritten after this many new entries or seconds, whichever is first.
JOURNAL_EVERY = 200
JOURNAL_SECONDS = 10.0


def filesystem(uri: str) -> tuple[Any, str]:
    """(pyarrow file system, path inside it) for ``uri``; `YolocliError` if pyarrow cannot."""
    try:
        import pyarrow.fs as pafs
    except ImportError:
        raise YolocliError("object-store URIs need pyarrow: pip install 'yolocli[ray]'") from None
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as err:
        raise YolocliError(f"{uri}: cannot open this file system: {err}") from None
    return fs, path.rstrip("/")


@dataclass(frozen=True)
class Listed:
    """One input found behind a URI: its `Source` (``name`` the full URI) and what to read."""

    source: Source
    path: str  # inside the file system
    size: int


def list_uri(uri: str) -> tuple[Any, list[Listed]]:
    """The image files ``uri`` names (a file, or every image below a folder, in walk order).

    Never raises for a missing or empty location: that is one error `Source`, like a local
    folder with no images (`yolocli.io.inputs`)."""
    import pyarrow.fs as pafs

    fs, root = filesystem(uri)
    base = uri.rstrip("/")
    try:
        info = fs.get_file_info(root)
        if info.type == pafs.FileType.File:
            rel = safe_rel([PurePosixPath(root).name])
            return fs, [Listed(Source(base, None, rel), root, info.size or 0)]
        entries = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    except OSError as err:
        error = f"cannot list this location: {err}"
        return fs, [Listed(Source(base, None, safe_rel(["unlisted"]), error=error,
                                  not_an_image=True), root, 0)]  # fmt: skip
    found = []
    for entry in entries:
        if entry.type != pafs.FileType.File or not is_image_name(entry.base_name):
            continue
        rel = PurePosixPath(entry.path[len(root) :].lstrip("/"))
        found.append((walk_key(rel), entry.path, rel, entry.size or 0))
    found.sort(key=lambda item: item[0])
    listed = [
        Listed(Source(f"{base}/{rel.as_posix()}", None, safe_rel(rel.parts)), path, size)
        for _, path, rel, size in found
    ]
    if not listed:
        error = "no images here" if info.type != pafs.FileType.NotFound else "no such location"
        listed = [Listed(Source(base, None, safe_rel(["empty"]), error=error, not_an_image=True),
                         root, 0)]  # fmt: skip
    return fs, listed


def walk_key(rel: PurePosixPath) -> tuple[tuple[int, str], ...]:
    """Sort key giving `yolocli.io.inputs.walk_folder`'s order: in each folder, its files by
    name, then its subfolders by name."""
    *folders, name = rel.parts
    return (*((1, f) for f in folders), (0, name))


@dataclass
class UriOutputs:
    """`yolocli.io.outputs.Outputs` for an output folder behind a URI: same names, same journal,
    the same refusal to replace a file yolocli did not write; files written with pyarrow.

    What exists there is listed once on entering; the journal object is rewritten every
    `JOURNAL_EVERY` entries or `JOURNAL_SECONDS` and on leaving.
    """

    uri: str
    options: SaveOptions
    _fs: Any = None
    _root: str = ""
    _existing: set[str] = field(default_factory=set)
    _owned: set[str] = field(default_factory=set)
    _stems: set[str] = field(default_factory=set)
    _done: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lines: list[str] = field(default_factory=list)
    _unsaved: int = 0
    _saved_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> UriOutputs:
        import pyarrow.fs as pafs

        self._fs, self._root = filesystem(self.uri)
        try:
            self._fs.create_dir(self._root, recursive=True)
            entries = self._fs.get_file_info(
                pafs.FileSelector(self._root, recursive=True, allow_not_found=True)
            )
            self._existing = {
                e.path[len(self._root) :].lstrip("/")
                for e in entries
                if e.type == pafs.FileType.File
            }
            if JOURNAL in self._existing:
                with self._fs.open_input_stream(self._key(JOURNAL)) as f:
                    self._lines = f.read().decode("utf-8", "surrogateescape").splitlines()
        except OSError as err:
            raise OutputError(f"cannot use the output location {self.uri}: {err}") from None
        for line in self._lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("claim"), list):
                self._owned.update(p for p in entry["claim"] if isinstance(p, str))
            done, outputs = (entry.get("done"), entry.get("outputs")) if isinstance(
                entry, dict) else (None, None)  # fmt: skip
            if isinstance(done, str) and isinstance(outputs, dict):
                self._done[done] = outputs
        self._saved_at = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self._save_journal(force=True)

    def _key(self, rel: str) -> str:
        return f"{self._root}/{rel}"

    def _uri(self, rel: str) -> str:
        return f"{self.uri.rstrip('/')}/{rel}"

    # -- naming and the journal: the calling thread, in input order --------------------------

    def plan(self, source: Source) -> Targets:
        """Claim ``source``'s name (as `Outputs.plan` does); paths are relative to the URI."""
        opts = self.options
        rel = safe_rel(source.rel.parts)
        if rel.suffix.lower() in IMAGE_EXTENSIONS:
            stem, suffix = self._claim_stem(rel.with_suffix("")), rel.suffix
        else:
            stem, suffix = self._claim_stem(rel), ".jpg"
        image = Path(f"{stem}{suffix}") if opts.save_images else None
        labels = Path(f"{stem}.txt") if opts.save_txt else None
        crops = Path(stem) if opts.save_crops else None
        foreign = self._foreign([p.as_posix() for p in (image, labels) if p is not None])
        return Targets(error=foreign) if foreign else Targets(image, labels, crops)

    def _claim_stem(self, stem: PurePosixPath) -> str:
        candidate, n = str(stem), 1
        while candidate.lower() in self._stems:
            n += 1
            candidate = f"{stem}-{n}"
        self._stems.add(candidate.lower())
        return candidate

    def _foreign(self, rels: list[str]) -> str | None:
        for rel in rels:
            if rel not in self._owned and rel in self._existing:
                return (
                    f"refusing to replace {self._uri(rel)}: yolocli did not write it (it is not "
                    f"in {self._uri(JOURNAL)}); move it away or choose another output location"
                )
        new = [rel for rel in rels if rel not in self._owned]
        if new:
            self._owned.update(new)
            self._append({"claim": new})
        return None

    def done_before(self, source: Source) -> OutputsRecord | None:
        """As `Outputs.done_before`: done in an earlier run, and every output still there."""
        if not self.options.skip_existing:
            return None
        entry = self._done.get(source.name)
        kinds = self.options.kinds
        if entry is None or not kinds <= entry.keys():
            return None
        out: dict[str, Any] = {}
        for kind in kinds:
            value = entry[kind]
            files = value if isinstance(value, list) else [value]
            if not all(isinstance(f, str) and f in self._existing for f in files):
                return None
            out[kind] = [self._uri(f) for f in value] if isinstance(value, list) else (
                self._uri(value))  # fmt: skip
        return out  # type: ignore[return-value]

    def commit(self, source: Source, outputs: OutputsRecord) -> None:
        prefix = self.uri.rstrip("/") + "/"
        relative: dict[str, Any] = {}
        for kind, value in outputs.items():
            if isinstance(value, list):
                relative[kind] = [v.removeprefix(prefix) for v in value]
            else:
                relative[kind] = str(value).removeprefix(prefix)
        self._append({"done": source.name, "outputs": relative})

    def _append(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._lines.append(json.dumps(entry, ensure_ascii=True))
            self._unsaved += 1
        self._save_journal()

    def _save_journal(self, force: bool = False) -> None:
        with self._lock:
            due = self._unsaved >= JOURNAL_EVERY or (
                time.monotonic() - self._saved_at >= JOURNAL_SECONDS
            )
            if self._fs is None or not self._unsaved or not (force or due):
                return
            data = ("\n".join(self._lines) + "\n").encode("utf-8", "surrogateescape")
            self._unsaved, self._saved_at = 0, time.monotonic()
        try:
            with self._fs.open_output_stream(self._key(JOURNAL)) as f:
                f.write(data)
        except OSError as err:
            log.warning("cannot save the journal %s: %s", self._uri(JOURNAL), err)

    # -- writing -------------------------------------------------------------------------------

    def write(self, source: Source, targets: Targets, rendered: Rendered) -> Saved:
        """Write what `yolocli.io.outputs.render` made (each object appears whole or not at all)."""
        saved = Saved(timings=dict(rendered.timings))
        clock = Clock(saved.timings)
        if targets.image is not None and rendered.image is not None:
            saved.outputs["image"] = self._put(targets.image.as_posix(), rendered.image)
        if targets.labels is not None and rendered.labels is not None:
            saved.outputs["labels"] = self._put(targets.labels.as_posix(), rendered.labels)
        if targets.crops is not None:
            rels = [
                f"crops/{_safe_label(label)}/{targets.crops.as_posix()}_{i}.jpg"
                for label, i, _ in rendered.crops
            ]
            foreign = self._foreign(rels)
            if foreign is not None:
                raise ImageError(foreign)
            saved.outputs["crops"] = [
                self._put(rel, data) for rel, (_, _, data) in zip(rels, rendered.crops, strict=True)
            ]
        clock.lap("write")
        return saved

    def _put(self, rel: str, data: bytes) -> str:
        with self._fs.open_output_stream(self._key(rel)) as f:
            f.write(data)
        with self._lock:
            self._existing.add(rel)
        return self._uri(rel)
