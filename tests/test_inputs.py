"""Finding inputs (files, folders, globs, lists, stdin) and naming their outputs."""

from __future__ import annotations

import io
from pathlib import Path, PurePosixPath

import pytest

from yolocli.inputs import Source, expand_sources, output_path, sniff_image


def tree(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def names(sources: list[Source]) -> list[str]:
    return [s.name for s in sources]


def test_folders_are_walked_recursively_sorted_and_filtered(tmp_path: Path) -> None:
    tree(tmp_path, "b.PNG", "a.jpg", "notes.txt", "z/c.webp", "y/d.TIFF", "y/e.jpeg", "out/old.jpg")
    got = list(expand_sources([str(tmp_path)], out_dir=tmp_path / "out"))
    assert names(got) == [
        str(tmp_path / n) for n in ("a.jpg", "b.PNG", "y/d.TIFF", "y/e.jpeg", "z/c.webp")
    ]
    assert [str(s.rel) for s in got] == ["a.jpg", "b.PNG", "y/d.TIFF", "y/e.jpeg", "z/c.webp"]


@pytest.mark.parametrize(
    ("given", "rel"),
    [("shots/a.jpg", "shots/a.jpg"), ("../x.jpg", "x.jpg"), ("./a/../b.jpg", "b.jpg"),
     ("/abs/path/c.jpg", "c.jpg")],
)  # fmt: skip
def test_output_paths_mirror_inputs_but_never_leave_out(given: str, rel: str) -> None:
    (source,) = expand_sources([given])
    assert str(source.rel) == rel
    out = Path("/results")
    target = output_path(out, source.rel)
    assert target.is_relative_to(out)


def test_output_path_is_sanitized_whatever_it_is_given() -> None:
    out = Path("/results")
    assert output_path(out, PurePosixPath("../../etc/passwd.png")) == out / "etc" / "passwd.png"
    assert output_path(out, PurePosixPath("a/photo.heic")) == out / "a" / "photo.heic.jpg"
    assert output_path(out, PurePosixPath("a/photo.jpg"), suffix=".txt") == out / "a" / "photo.txt"


def test_missing_inputs_and_empty_patterns_still_get_a_source(tmp_path: Path) -> None:
    got = list(
        expand_sources(
            [str(tmp_path / "nope.jpg"), str(tmp_path / "*.png"), f"@{tmp_path}/list.txt"]
        )
    )
    assert [s.error for s in got] == [
        "no such file or folder",
        "no file matches this pattern",
        "cannot read the list: No such file or directory",
    ]


def test_stdin_paths_handle_crlf_blank_lines_and_no_final_newline(tmp_path: Path) -> None:
    stream = io.BytesIO(b"a.jpg\r\n\nsub/b.png\nlast.jpg")
    assert names(list(expand_sources(["-"], stdin=stream))) == ["a.jpg", "sub/b.png", "last.jpg"]
    stream = io.BytesIO(b"with\nnewline.jpg\0second.jpg\0")
    assert names(list(expand_sources(["-"], stdin=stream, null=True))) == [
        "with\nnewline.jpg",
        "second.jpg",
    ]


@pytest.mark.parametrize(
    ("head", "ext"),
    [(b"\xff\xd8\xff\xe0\0\x10JFIF", ".jpg"), (b"\x89PNG\r\n\x1a\n\0\0", ".png"),
     (b"RIFF\x10\0\0\0WEBPVP8 ", ".webp"), (b"BM\x36\0\x01\0\0\0\0\0\x36\0", ".bmp"),
     (b"II*\0\x08\0\0\0", ".tif"), (b"BMW/cars/x.jpg\n", None), (b"photos/a.jpg\n", None)],
)  # fmt: skip
def test_sniff_tells_image_bytes_from_a_path_list(head: bytes, ext: str | None) -> None:
    assert sniff_image(head) == ext
