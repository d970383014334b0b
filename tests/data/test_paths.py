"""Walks and globs that end on link loops, name each real file once and skip FIFOs, sockets and devices."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from resnets.data.paths import glob_files, unique_files, walk_files, what_is


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp/a.png, tmp/sub/b.png, tmp/sub/deep/c.jpg, hidden .h.png, a FIFO, a dangling link and two link loops."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub" / "deep").mkdir(parents=True)
    for name in ("a.png", "sub/b.png", "sub/deep/c.jpg", ".h.png"):
        (tmp_path / name).write_bytes(b"x")
    os.mkfifo(tmp_path / "sub" / "pipe.png")
    os.symlink("gone.png", tmp_path / "dangling.png")
    os.symlink("..", tmp_path / "sub" / "up")  # two loops: the walk would branch at every level, forever
    os.symlink(".", tmp_path / "sub" / "self")
    os.symlink("sub/b.png", tmp_path / "link.png")  # another name of b.png
    return tmp_path


def test_a_walk_lists_each_real_file_once_by_its_shortest_name(tree: Path) -> None:
    found = walk_files(Path("."))
    assert found.files == [Path("a.png"), Path("sub/b.png"), Path("sub/deep/c.jpg")]
    assert found.others == [Path("dangling.png"), Path("sub/pipe.png")]


@pytest.mark.parametrize(
    "pattern, files",
    [
        ("**/*.png", ["a.png", "sub/b.png"]),
        ("*.png", ["a.png", "link.png"]),  # sub/b.png, the file it links to, is not matched
        ("**/link.png", ["link.png"]),
        ("sub/*", ["sub/b.png"]),
        ("sub/**", ["sub/b.png", "sub/deep/c.jpg", "sub/up/a.png"]),  # up leads out of sub, once
        ("s?b/d*/*.[jp][pn]g", ["sub/deep/c.jpg"]),
        ("**/*.gif", []),
    ],
)
def test_globs_over_link_loops_end_and_match_as_glob_does(tree: Path, pattern: str, files: list[str]) -> None:
    assert glob_files(pattern).files == [Path(f) for f in files]
    assert glob_files(str(tree / pattern)).files == [tree / f for f in files]


def test_unique_files_drops_other_names_of_one_file(tree: Path) -> None:
    names = [Path("link.png"), Path("sub/b.png"), Path("sub/self/b.png"), Path("a.png"), Path("./a.png")]
    assert unique_files(names) == [Path("link.png"), Path("a.png")]


def test_what_is_names_each_kind_of_entry(tree: Path) -> None:
    server = socket.socket(socket.AF_UNIX)
    server.bind("sock")
    try:
        kinds = [what_is(Path(p)) for p in ("a.png", "sub", "sub/pipe.png", "dangling.png", "nothing", "sock")]
    finally:
        server.close()
    assert kinds == [
        "is a file",
        "is a folder",
        "is a FIFO (named pipe)",
        "is a dangling link",
        "does not exist",
        "is a socket",
    ]
    assert what_is(Path("/dev/null")) == "is a character device"
