"""Crash-safe file writing: write to a temporary file beside the target, then rename it into place."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .errors import UserError


@contextmanager
def atomic_write(path: Path) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces `path` when the block succeeds and is deleted when it raises.

    A process killed at any moment leaves either the old file or the new one, never a partial one;
    fsync before the rename makes that hold across a power loss too.
    """
    # Same directory as the target, so os.replace is a rename within one file system (atomic).
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files owner-only; give them the usual permissions
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def check_output(
    path: Path, *, force: bool = False, ours: Callable[[Path], bool] | None = None, label: str = "--out"
) -> None:
    """Refuse `path` as an output where it is a folder, cannot be written, or is an existing file that `ours` does
    not recognise as this command's own (unless `force`): nothing a user wrote is replaced unasked."""
    if path.is_dir():
        raise UserError(f"{label} {path} is a folder; pass a file name inside it, e.g. {path / ('out' + path.suffix)}")
    if path.exists() and not force and not (ours and ours(path)):
        raise UserError(f"{label} {path} already exists; choose another name, or pass --force to replace it")
    check_writable(path.parent, f"{label} {path}")


def check_output_folder(folder: Path, writes: Iterable[str], *, ours: bool, fix: str, label: str = "--out") -> None:
    """Refuse `folder` as an output when it holds a file of one of the names this command `writes` and the folder is
    not `ours` (no earlier output of this command owns it): a user's own metrics.csv or best.pt is never replaced
    unasked. `fix` tells how to go on anyway (e.g. "pass --force to replace them"); the caller skips this to force."""
    if ours or not folder.is_dir():
        return
    found = sorted(name for name in writes if (folder / name).exists())
    if found:
        raise UserError(
            f"{label} {folder} already holds {', '.join(found)}, which this command would replace; "
            f"choose another {label}, or {fix}"
        )


def check_outside(folder: Path, inputs: Iterable[Path], label: str = "--out") -> None:
    """Refuse an output `folder` inside (or equal to) any of the `inputs` folders: results never mix into the data."""
    target = folder.resolve()
    for given in inputs:
        source = given.resolve()
        if source.is_dir() and (target == source or source in target.parents):
            raise UserError(f"{label} {folder} is inside the input folder {given}; choose a {label} outside it")


def check_not_input(path: Path, inputs: Iterable[Path], label: str = "--out") -> None:
    """Refuse an output `path` that is one of the `inputs` (the same file by any name: links, '..'), even with
    --force: an input is never replaced by what is made from it."""
    for given in inputs:
        if path.exists() and given.exists() and os.path.samefile(path, given):
            raise UserError(f"{label} {path} is the input {given}; an input is never replaced, choose another {label}")


def check_writable(folder: Path, label: str) -> None:
    """Prove that `folder` (or the nearest folder above it that exists, where the rest would be created) takes a new
    file, before any work is done for it, leaving nothing behind; errors start with `label`. A real file is tried, as
    os.access says yes to root on read-only or virtual file systems."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())  # '.' or '/' at the latest
    if not existing.is_dir():
        raise UserError(f"{label}: {existing} is a file, not a folder; choose a writable place")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise UserError(f"{label}: cannot write into {existing} ({e.strerror or e}); choose a writable place") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
