"""Finding inputs (files, folders, globs, lists, stdin) and naming their outputs."""

from __future__ import annotations

import contextlib
import glob
import io
import os
import socket
from pathlib import Path, PurePosixPath

import pytest

from tests.conftest import as_nobody
from yolocli.io.inputs import (
    MAX_PATH_BYTES,
    Source,
    expand_sources,
    match_glob,
    sniff_image,
)


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


def test_missing_inputs_and_empty_patterns_still_get_a_source(tmp_path: Path) -> None:
    got = list(
        expand_sources(
            [str(tmp_path / "nope.jpg"), str(tmp_path / "*.png"), f"@{tmp_path}/list.txt"]
        )
    )
    assert [s.error for s in got] == [
        "no such file or folder",
        "no file matches this pattern",
        "cannot read the list: no such file or folder",
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


def test_problem_inputs_are_not_images() -> None:
    """What the CLI counts as an input error rather than a failed image."""
    assert Source("x.jpg", Path("x.jpg"), PurePosixPath("x.jpg")).not_an_image is False


def test_inputs_that_yield_no_image_say_so(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    got = list(
        expand_sources(
            [
                str(tmp_path / "nomatch" / "*.jpg"),
                str(tmp_path / "empty"),
                f"@{tmp_path}/missing.txt",
                str(tmp_path / "nope.jpg"),
            ]
        )
    )
    assert [(s.error is not None, s.not_an_image) for s in got] == [
        (True, True),
        (True, True),
        (True, True),
        (True, False),  # a named file that is missing is still one image that failed
    ]


# ------------------------------------------------------------------------ paths that fail


def _bad_paths(root: Path) -> dict[str, str]:
    """Paths whose stat fails even for root, and the fragment their error must hold."""
    (root / "file.jpg").write_bytes(b"x")
    os.symlink("loop.jpg", root / "loop.jpg")
    return {
        str(root / ("n" * 300 + ".jpg")): "name too long",  # ENAMETOOLONG
        str(root / "file.jpg" / "x.jpg"): "not a folder",  # ENOTDIR
        str(root / "loop.jpg" / "x.jpg"): "symbolic links",  # ELOOP
        str(root / "nul\0byte.jpg"): "NUL",  # not even a path the system accepts
    }


def test_every_bad_path_is_one_error_source_and_the_batch_goes_on(tmp_path: Path) -> None:
    bad = _bad_paths(tmp_path)
    tree(tmp_path, "ok.jpg")
    items = [*bad, str(tmp_path / "ok.jpg")]
    got = list(expand_sources(items))
    assert names(got) == items
    for source, fragment in zip(got, bad.values(), strict=False):
        assert source.error is not None
        assert fragment in source.error, (source.name, source.error)
    assert got[-1].error is None


def test_bad_paths_from_a_stdin_list_are_error_sources(tmp_path: Path) -> None:
    bad = _bad_paths(tmp_path)
    listing = "".join(f"{p}\n" for p in bad if "\0" not in p).encode()
    got = list(expand_sources(["-"], stdin=io.BytesIO(listing)))
    assert len(got) == len(bad) - 1
    assert all(s.error for s in got)


def test_locked_folders_are_error_sources_not_an_abort(open_tmp: Path) -> None:
    tree(open_tmp, "in/a.jpg", "in/locked/person.jpg", "in/z.jpg", "b.jpg")
    for d in (open_tmp, open_tmp / "in"):
        for p in d.iterdir():
            p.chmod(0o755 if p.is_dir() else 0o644)
    (open_tmp / "in" / "locked").chmod(0)
    locked = open_tmp / "in" / "locked"
    items = [str(locked / "person.jpg"), str(locked), str(open_tmp / "in"), str(open_tmp / "b.jpg")]
    with as_nobody():
        got = list(expand_sources(items))
    assert [(s.name, s.error, s.not_an_image) for s in got] == [
        (str(locked / "person.jpg"), "permission denied", False),
        (str(locked), "cannot read this folder: permission denied", True),
        (str(open_tmp / "in" / "a.jpg"), None, False),
        (str(open_tmp / "in" / "z.jpg"), None, False),
        (str(locked), "cannot read this folder: permission denied", True),  # found in the walk
        (str(open_tmp / "b.jpg"), None, False),
    ]


# ------------------------------------------------------------------------ links and globs


def test_a_recursive_glob_does_not_follow_a_folder_link_loop(tmp_path: Path) -> None:
    tree(tmp_path, "a.jpg", "sub/b.jpg", "sub/deeper/c.jpg")
    os.symlink("..", tmp_path / "sub" / "up")
    os.symlink("sub", tmp_path / "again")
    got = list(expand_sources([f"{tmp_path}/**/*.jpg"]))
    assert names(got) == [str(tmp_path / n) for n in ("a.jpg", "sub/b.jpg", "sub/deeper/c.jpg")]


@pytest.mark.parametrize(
    "pattern",
    ["*.jpg", "**/*.jpg", "**", "**/", "s*/*.jpg", "*/b.jpg", ".*.jpg", "sub/**/b.jpg", "[ab].jpg",
     "sub/*", "*", "**/**/*.jpg", "nomatch/*.jpg", "./*.jpg", "../*/a.jpg", "sub/../*.jpg",
     "sub/[!x]*"],
)  # fmt: skip
def test_globs_match_like_the_standard_library_where_there_are_no_links(
    tmp_path: Path, pattern: str
) -> None:
    tree(tmp_path, "a.jpg", ".hidden.jpg", "sub/b.jpg", "sub/.h/c.jpg", "sub/deep/d.png")
    with contextlib.chdir(tmp_path):
        assert match_glob(pattern) == sorted(set(glob.glob(pattern, recursive=True)))
    absolute = f"{tmp_path}/{pattern}"
    assert match_glob(absolute) == sorted(set(glob.glob(absolute, recursive=True)))


# ------------------------------------------------------------------------ not regular files


def test_special_files_are_refused_by_name_and_in_walks(tmp_path: Path) -> None:
    tree(tmp_path, "in/a.jpg")
    os.mkfifo(tmp_path / "in" / "pipe.jpg")
    os.mkfifo(tmp_path / "in" / "pipe.txt")  # not an image name: never listed, as before
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "in" / "sock.png"))
    got = list(expand_sources([str(tmp_path / "in"), "/dev/zero", str(tmp_path / "in/pipe.jpg")]))
    assert [(Path(s.name).name, s.error) for s in got] == [
        ("a.jpg", None),
        ("pipe.jpg", "not a regular file (a FIFO)"),
        ("sock.png", "not a regular file (a socket)"),
        ("zero", "not a regular file (a character device)"),
        ("pipe.jpg", "not a regular file (a FIFO)"),
    ]
    sock.close()


# ------------------------------------------------------------------------ stdin


def test_empty_stdin_says_no_input_arrived() -> None:
    (got,) = expand_sources(["-"], stdin=io.BytesIO(b""))
    assert got.error == "nothing arrived on stdin"
    assert got.not_an_image


@pytest.mark.parametrize("null", [False, True])
@pytest.mark.parametrize("stream", ["zeros", "newlines", "/dev/zero", "long line"])
def test_endless_or_binary_stdin_ends_with_one_error(stream: str, null: bool) -> None:
    data = {
        "zeros": b"\0" * (1 << 20),
        "newlines": b"\n" * (1 << 20),
        "long line": b"x" * (MAX_PATH_BYTES + 1) + b"\n" + b"a.jpg\n",
    }
    with contextlib.ExitStack() as stack:
        f = (
            stack.enter_context(open(stream, "rb"))
            if stream.startswith("/")
            else io.BytesIO(data[stream])
        )
        got = list(expand_sources(["-"], stdin=f, null=null))
    assert len(got) == 1
    assert got[0].error is not None
    assert "stdin" in got[0].error
    assert got[0].not_an_image


def test_image_bytes_on_stdin_are_capped() -> None:
    jpeg = b"\xff\xd8\xff\xe0" + b"\0" * 2044
    (small,) = expand_sources(["-"], stdin=io.BytesIO(jpeg), max_bytes=len(jpeg))
    assert small.error is None
    assert small.data == jpeg
    (big,) = expand_sources(["-"], stdin=io.BytesIO(jpeg + b"\0"), max_bytes=len(jpeg))
    assert big.error == "over the 2 KiB limit on one image's bytes"
    assert big.data is None
    assert not big.not_an_image


def test_gif_bytes_on_stdin_are_an_image() -> None:
    assert sniff_image(b"GIF89a\x01\0\x01\0") == ".gif"
