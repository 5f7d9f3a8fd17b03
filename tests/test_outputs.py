"""Output naming, ownership and completion: `yolocli.io.outputs.Outputs` on its own."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yolocli.errors import ImageError, OutputError
from yolocli.io.inputs import Source, expand_sources
from yolocli.io.outputs import JOURNAL, Outputs, Rendered, SaveOptions


def source(rel: str, name: str | None = None) -> Source:
    return Source(name or rel, Path(rel), PurePosixPath(rel))


def test_names_mirror_inputs_but_never_leave_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    spelled = ["shots/a.jpg", "../x.jpg", "./a/../b.jpg", "/abs/path/c.jpg"]
    rels = [s.rel for s in expand_sources(spelled)]
    with Outputs(SaveOptions(out, save_txt=True)) as outputs:
        planned = [outputs.plan(Source(str(r), None, r)) for r in rels]
        weird = outputs.plan(source("../../etc/passwd.png"))
        heic = outputs.plan(source("a/photo.heic"))
    assert [p.image for p in planned] == [out / "a.jpg", out / "x.jpg", out / "b.jpg",
                                          out / "c.jpg"]  # fmt: skip
    assert (weird.image, weird.labels) == (out / "etc/passwd.png", out / "etc/passwd.txt")
    assert (heic.image, heic.labels) == (out / "a/photo.heic.jpg", out / "a/photo.heic.txt")


def test_one_claim_per_input_shared_by_its_outputs(tmp_path: Path) -> None:
    with Outputs(SaveOptions(tmp_path, save_txt=True, save_crops=True)) as outputs:
        a, b, c = (outputs.plan(source(n)) for n in ("a.jpg", "a.png", "A.JPG"))
    assert [(t.image.name, t.labels.name, str(t.crops)) for t in (a, b, c)] == [  # type: ignore[union-attr]
        ("a.jpg", "a.txt", "a"), ("a-2.png", "a-2.txt", "a-2"), ("A-3.JPG", "A-3.txt", "A-3"),
    ]  # fmt: skip


def test_a_file_yolocli_did_not_write_is_never_claimed(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("the user's notes")
    with Outputs(SaveOptions(tmp_path, save_txt=True)) as outputs:
        refused = outputs.plan(source("a.jpg"))
        assert refused.error is not None
        assert refused.error.startswith(f"refusing to replace {tmp_path / 'a.txt'}: yolocli")
        assert refused.image is None
    assert (tmp_path / "a.txt").read_text() == "the user's notes"
    journal = [json.loads(line) for line in (tmp_path / JOURNAL).read_text().splitlines()]
    assert not [e for e in journal if "claim" in e]  # neither a.jpg nor a.txt was claimed


def test_done_before_needs_the_record_and_every_wanted_output(tmp_path: Path) -> None:
    opts = SaveOptions(tmp_path, save_txt=True, skip_existing=True)
    a = source("a.jpg")
    with Outputs(opts) as outputs:
        targets = outputs.plan(a)
        assert targets.image is not None
        assert targets.labels is not None
        targets.image.write_bytes(b"x")
        targets.labels.write_bytes(b"x")
        assert outputs.done_before(a) is None  # files written, but no record yet
        outputs.commit(a, {"image": str(targets.image), "labels": str(targets.labels)})
    with Outputs(opts) as outputs:
        assert outputs.done_before(a) == {"image": str(targets.image),
                                          "labels": str(targets.labels)}  # fmt: skip
    with Outputs(SaveOptions(tmp_path, save_txt=True, save_crops=True, skip_existing=True)) as o:
        assert o.done_before(a) is None  # crops were never made for it
    targets.labels.unlink()
    with Outputs(opts) as outputs:
        assert outputs.done_before(a) is None


def test_a_journal_line_cut_by_a_kill_is_ignored(tmp_path: Path) -> None:
    (tmp_path / JOURNAL).write_text('{"claim": ["a.jpg"]}\n{"done": "a.jpg", "outp')
    (tmp_path / "a.jpg").write_bytes(b"x")
    with Outputs(SaveOptions(tmp_path, skip_existing=True)) as outputs:
        assert outputs.done_before(source("a.jpg")) is None
        assert outputs.plan(source("a.jpg")).error is None  # owned: may be replaced


def test_the_folder_is_locked_and_left_clean_when_nothing_was_written(tmp_path: Path) -> None:
    out = tmp_path / "new" / "out"
    with Outputs(SaveOptions(out)), pytest.raises(OutputError, match="another yolocli run"):
        Outputs(SaveOptions(out)).__enter__()
    assert not (tmp_path / "new").exists()


def write(targets_path: Path | None) -> Path:
    assert targets_path is not None
    targets_path.parent.mkdir(parents=True, exist_ok=True)
    targets_path.write_bytes(b"x")
    return targets_path


def test_a_name_once_given_stays_with_its_input_across_runs(tmp_path: Path) -> None:
    """B8: a.png named "a" in run 1; a.jpg, added later and sorted first, never takes it."""
    out, opts = tmp_path / "out", SaveOptions(tmp_path / "out", save_txt=True)
    png = Source("a.png", tmp_path / "photos/a.png", PurePosixPath("a.png"))
    with Outputs(opts) as outputs:
        first = outputs.plan(png)
        assert first.labels == out / "a.txt"
        write(first.labels).write_text("the cat's labels")
        outputs.commit(png, {"labels": str(first.labels)})
    jpg = Source("a.jpg", tmp_path / "photos/a.jpg", PurePosixPath("a.jpg"))
    with Outputs(opts) as outputs:
        second = [outputs.plan(s) for s in (jpg, png)]
    assert [t.labels for t in second] == [out / "a-2.txt", out / "a.txt"]
    # The same input named another way (from another folder) is the same input.
    with Outputs(opts) as outputs:
        other = Source("photos/a.png", tmp_path / "photos/../photos/a.png", PurePosixPath("a.png"))
        assert outputs.plan(other).labels == out / "a.txt"
        # ... but named twice in one run, it is two inputs, two names.
        assert outputs.plan(other).labels == out / "a-3.txt"


def test_stdin_bytes_and_streams_are_never_done_and_get_fresh_names(tmp_path: Path) -> None:
    """B9: a second image on stdin, or a second session of a stream, is new work."""
    opts = SaveOptions(tmp_path, skip_existing=True)
    stdin = Source("-", None, PurePosixPath("stdin.jpg"), data=b"jpeg")
    stream = Source("rtsp://cam/1", None, PurePosixPath("cam_1"), kind="stream")
    names = []
    for _ in range(2):
        with Outputs(opts) as outputs:
            for item in (stdin, stream):
                targets = outputs.plan(item)
                assert outputs.done_before(item) is None
                assert targets.image is not None
                names.append(targets.image.name)
                outputs.commit(item, {"image": str(write(targets.image))})
    assert names == ["stdin.jpg", "cam_1.mp4", "stdin-2.jpg", "cam_1-2.mp4"]
    journal = (tmp_path / JOURNAL).read_text()
    assert '"done"' not in journal


@pytest.mark.parametrize("planted", ["link", "fifo"])
def test_the_journal_is_never_opened_through_a_link(tmp_path: Path, planted: str) -> None:
    """B6: a link planted at the journal's name would make every run append to its target
    (and a FIFO would hang it)."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    if planted == "link":
        (out / JOURNAL).symlink_to(victim)
    else:
        os.mkfifo(out / JOURNAL)
    with pytest.raises(OutputError, match="symbolic link or not a regular file"):
        Outputs(SaveOptions(out)).__enter__()
    assert victim.read_text() == "precious\n"
    (out / JOURNAL).unlink()
    with Outputs(SaveOptions(out)):  # the refusal released the folder's lock
        pass


def test_a_linked_folder_never_leads_outputs_outside(tmp_path: Path) -> None:
    """B7: out/trip -> elsewhere: trip/b.jpg is refused at planning and at writing."""
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "trip").symlink_to(elsewhere)
    (out / "inside").mkdir()
    (out / "inside/up").symlink_to(out)  # a link that stays inside is fine
    with Outputs(SaveOptions(out, save_txt=True, save_crops=True)) as outputs:
        refused = outputs.plan(source("trip/b.jpg"))
        assert refused.error is not None
        assert "outside the output folder" in refused.error
        assert outputs.plan(source("inside/up/c.jpg")).error is None
        fine = outputs.plan(source("trip2/b.jpg"))
        assert fine.image is not None
        (out / "trip2").symlink_to(elsewhere)  # swapped in after planning
        with pytest.raises(ImageError, match="outside the output folder"):
            outputs.write(source("trip2/b.jpg"), fine, Rendered(image=b"x", labels=b""))
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(
    "outputs",
    [
        {"labels": "/etc/passwd"},
        {"labels": "../outside.txt"},
        {"labels": "never-claimed.txt"},
        {"crops": "a.txt"},  # crops are a list
        {"image": ["a.txt"]},
        {"passwd": "a.txt"},
    ],
)
def test_journal_lines_are_checked_before_they_are_believed(
    tmp_path: Path, outputs: dict[str, object]
) -> None:
    """W12: a "done" entry naming files yolocli never claimed is not trusted."""
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "outside.txt").write_text("x")
    (out / "never-claimed.txt").write_text("x")
    (out / "a.txt").write_text("x")
    a = Source("a.jpg", tmp_path / "a.jpg", PurePosixPath("a.jpg"))
    lines = [{"claim": ["a.txt", "/etc/passwd", "../outside.txt"]}, {"done": str(a.path),
             "outputs": outputs}]  # fmt: skip
    (out / JOURNAL).write_text("".join(json.dumps(line) + "\n" for line in lines))
    with Outputs(SaveOptions(out, save_images=False, save_txt=True, skip_existing=True)) as o:
        assert o.done_before(a) is None
    # and the honest entry is believed
    lines[1]["outputs"] = {"labels": "a.txt"}
    (out / JOURNAL).write_text("".join(json.dumps(line) + "\n" for line in lines))
    with Outputs(SaveOptions(out, save_images=False, save_txt=True, skip_existing=True)) as o:
        assert o.done_before(a) == {"labels": str(out / "a.txt")}


def test_a_journal_that_cannot_be_written_costs_a_warning_not_the_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """W11: the journal's writes fail (a full disk): planning and committing go on, and the
    next run starts its lines on a fresh line after whatever half line was left."""
    out = tmp_path / "out"
    with Outputs(SaveOptions(out, save_txt=True)) as outputs:
        outputs._journal.close()
        outputs._journal = open("/dev/full", "ab", buffering=0)  # noqa: SIM115  # every write: ENOSPC
        for name in ("a.jpg", "b.jpg"):
            targets = outputs.plan(source(name))
            assert targets.error is None
            outputs.commit(source(name), {"labels": str(write(targets.labels))})
    assert len([r for r in caplog.records if "cannot write the journal" in r.message]) == 1
    with open(out / JOURNAL, "a") as f:
        f.write('{"claim": ["half')  # what a full disk leaves
    with Outputs(SaveOptions(out, save_txt=True)) as outputs:
        assert outputs.plan(source("c.jpg")).error is None
    lines = (out / JOURNAL).read_text().splitlines()
    assert json.loads(lines[-1]) == {"claim": ["c.jpg", "c.txt"]}


NAMES = ["a.jpg", "a.png", "A.JPG", "b.jpg", "sub/a.jpg", "sub/a.png", "a"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from(NAMES), max_size=6), min_size=1, max_size=4))
def test_names_are_stable_and_never_shared_whatever_the_runs(runs: list[list[str]]) -> None:
    """B8 as a property: over any sequence of runs into one folder, an input keeps the name
    it was first given, and no two inputs ever share one (case-insensitively)."""
    with tempfile.TemporaryDirectory() as tmp:
        out, names = Path(tmp) / "out", {}
        for run in runs:
            with Outputs(SaveOptions(out, save_txt=True)) as outputs:
                this_run: set[str] = set()
                for name in run:
                    rel = PurePosixPath(PurePosixPath(name).name)
                    targets = outputs.plan(Source(name, Path(tmp) / "in" / name, rel))
                    assert targets.labels is not None
                    stem = targets.labels.relative_to(out).with_suffix("").as_posix()
                    if name in this_run:  # named twice in a run: a second input
                        assert stem.lower() not in {s.lower() for s in names.values()}
                        names[f"{name}#{len(names)}"] = stem
                        continue
                    this_run.add(name)
                    assert names.setdefault(name, stem) == stem
                    targets.labels.write_text(name)
        stems = [s.lower() for s in names.values()]
        assert len(stems) == len(set(stems))


def test_rendering_in_place_gives_the_same_bytes_and_crops_of_the_clean_image(
    tmp_path: Path,
) -> None:
    import cv2
    import numpy as np

    from yolocli import Detections
    from yolocli.families.darknet.letterbox import Letterbox
    from yolocli.io.outputs import render

    rng = np.random.default_rng(5)
    image = rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)
    dets = Detections(
        np.array([[10.0, 12.0, 70.0, 60.0], [40.0, 30.0, 110.0, 85.0]]),
        np.array([0.9, 0.6]),
        np.array([1, 2]),
        names=["a", "b", "c"],
    )
    box = Letterbox(120, 90, 416, 416)
    with Outputs(SaveOptions(tmp_path, save_txt=True, save_crops=True)) as outputs:
        targets = outputs.plan(source("p.png"))
    clean = image.copy()
    copied = render(targets, image, dets, box)
    np.testing.assert_array_equal(image, clean)  # untouched
    drawn = render(targets, image, dets, box, in_place=True)
    assert not np.array_equal(image, clean)  # the annotations are on it
    assert (drawn.image, drawn.labels, drawn.crops) == (copied.image, copied.labels, copied.crops)
    assert drawn.image is not None
    on_file = cv2.imdecode(np.frombuffer(drawn.image, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(on_file, image)  # PNG: the drawn pixels exactly
    first_crop = cv2.imdecode(np.frombuffer(drawn.crops[0][2], np.uint8), cv2.IMREAD_COLOR)
    _, expected = cv2.imencode(".jpg", clean[12:60, 10:70], [cv2.IMWRITE_JPEG_QUALITY, 92])
    np.testing.assert_array_equal(first_crop, cv2.imdecode(expected, cv2.IMREAD_COLOR))
