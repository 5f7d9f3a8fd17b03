"""Output naming, ownership and completion: `yolocli.outputs.Outputs` on its own."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pytest

from yolocli.errors import OutputError
from yolocli.inputs import Source, expand_sources
from yolocli.outputs import JOURNAL, Outputs, SaveOptions


def source(rel: str, name: str | None = None) -> Source:
    return Source(name or rel, Path(rel), PurePosixPath(rel))


def test_names_mirror_inputs_but_never_leave_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    given = ["shots/a.jpg", "../x.jpg", "./a/../b.jpg", "/abs/path/c.jpg"]
    rels = [s.rel for s in expand_sources(given)]
    with Outputs(SaveOptions(out, save_txt=True)) as outputs:
        planned = [outputs.plan(Source(str(r), None, r)) for r in rels]
        weird = outputs.plan(source("../../etc/passwd.png"))
        heic = outputs.plan(source("a/photo.heic"))
    assert [p.image for p in planned] == [out / "shots/a.jpg", out / "x.jpg", out / "b.jpg",
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
    assert journal == []  # neither a.jpg nor a.txt was claimed


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
