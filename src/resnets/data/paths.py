"""Finding files safely: walks and globs that end on link loops, name each real file once, and skip what is no file.

A FIFO read as an image would hang, and a glob such as 'loop/**/*.png' over a link to a parent folder would never end
(or name the same image once per level), so every command that takes folders or globs lists them here.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

KINDS = (
    (stat.S_ISDIR, "is a folder"),
    (stat.S_ISREG, "is a file"),
    (stat.S_ISFIFO, "is a FIFO (named pipe)"),
    (stat.S_ISCHR, "is a character device"),
    (stat.S_ISBLK, "is a block device"),
    (stat.S_ISSOCK, "is a socket"),
)


@dataclass(frozen=True)
class Found:
    """Regular files, each real file once, sorted; and the other entries met (FIFOs, sockets, devices, dangling
    links, unreadable folders), which are skipped."""

    files: list[Path]
    others: list[Path]


def what_is(path: Path) -> str:
    """What is at `path`, as words for a message: 'does not exist', 'is a file', 'is a FIFO (named pipe)', ..."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "is a dangling link" if path.is_symlink() else "does not exist"
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    return next((words for test, words in KINDS if test(mode)), "is not a regular file")


def unique_files(paths: Iterable[Path]) -> list[Path]:
    """`paths` without repeats of one real file (the same file under another name or through a link), in order."""
    seen: set[tuple[int, int]] = set()
    unique = []
    for path in paths:
        st = path.stat()
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            unique.append(path)
    return unique


def walk_files(folder: Path) -> Found:
    """The regular files under `folder`, hidden entries left out, each real file once (see _walk)."""
    found = _walk(folder)
    return Found(_named_once(found.files), found.others)


def glob_files(pattern: str) -> Found:
    """The regular files `pattern` matches, as glob's recursive globs ('*', '?', '[ab]' within a name, '**' for any
    folders) but found by _walk: over link loops it ends, and it names each real file once."""
    parts = Path(os.path.expanduser(pattern)).parts
    fixed = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    root, rest = Path(*parts[:fixed]) if fixed else Path("."), parts[fixed:]
    if not root.is_dir():
        return Found([], [])
    found = _walk(root, None if "**" in rest else len(rest) - 1)
    files = [p for p in found.files if _matches(p.relative_to(root).parts, rest)]
    return Found(_named_once(files), [p for p in found.others if _matches(p.relative_to(root).parts, rest)])


def _named_once(files: list[Path]) -> list[Path]:
    """`files` sorted, each real file once under its plainest name: not a link, else the shortest."""
    return sorted(unique_files(sorted(files, key=lambda p: (p.is_symlink(), len(p.parts), p))))


def _walk(folder: Path, max_depth: int | None = None) -> Found:
    """The regular files under `folder` (at most `max_depth` folders down) and the other entries, hidden ones left out.

    Links to folders are followed, but each real folder is entered once, so a link loop ends; folders are taken level
    by level, real ones before links, so a folder is entered by its plainest path. Links to files stay: see
    _named_once.
    """
    entered = {_identity(folder)}
    level, depth = [folder], 0
    files: list[Path] = []
    others: list[Path] = []
    while level:
        deeper = []
        for current in level:
            try:
                entries = _visible(current)
            except OSError:  # unreadable: skipped like the other entries that are no files
                others.append(current)
                continue
            for entry in entries:
                path = Path(entry.path)
                if entry.is_dir():
                    deeper.append((entry.is_symlink(), path))
                elif entry.is_file():
                    files.append(path)
                else:
                    others.append(path)
        level = []
        for _, path in sorted(deeper):
            if (max_depth is None or depth < max_depth) and _identity(path) not in entered:
                entered.add(_identity(path))
                level.append(path)
        depth += 1
    return Found(files, sorted(others))


def _matches(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Whether the path `parts` match the glob `pattern` part by part, '**' standing for any number of parts."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_matches(parts[i:], pattern[1:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and _matches(parts[1:], pattern[1:])


def _identity(folder: Path) -> tuple[int, int]:
    st = folder.stat()
    return st.st_dev, st.st_ino


def _visible(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as it:
        return [e for e in it if not e.name.startswith(".")]
