"""One trainer per run folder: an exclusive lock file holding the owner's pid, cleared when its process is gone."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..core.errors import UserError

LOCK = "train.lock"


@contextmanager
def run_lock(run: Path, take: bool = True) -> Iterator[None]:
    """Hold RUN/train.lock for the block (when `take`: rank 0 under torchrun); a second trainer is refused.

    A folder this call created is removed again if the run left nothing in it (a run that failed at once).
    """
    if not take:
        yield
        return
    created = not run.exists()
    if run.exists() and not run.is_dir():
        raise UserError(f"--out {run} is a file, not a folder; choose another --out")
    try:
        run.mkdir(parents=True, exist_ok=True)
        _acquire(run / LOCK)
    except PermissionError as e:
        raise UserError(f"cannot write into --out {run} ({e.strerror}); choose a folder you can write") from None
    except OSError as e:
        raise UserError(f"cannot create --out {run} ({e.strerror or e}); choose another --out") from None
    try:
        yield
    finally:
        (run / LOCK).unlink(missing_ok=True)
        if created and not any(run.iterdir()):
            run.rmdir()


def _acquire(path: Path) -> None:
    """Create `path` exclusively with our pid and host; replace it once if its owner is no longer running."""
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _owner(path)
            if owner is not None:
                raise UserError(owner) from None
            path.unlink(missing_ok=True)  # stale: its process has ended
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()} {socket.gethostname()}\n")
        return
    raise UserError(f"could not take the lock {path}; another trainer keeps creating it")


def _owner(path: Path) -> str | None:
    """Why `path` still locks the run (a one-line refusal), or None when it is stale."""
    try:
        pid_text, _, host = path.read_text().strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return None  # empty or garbled: a trainer died while writing it
    if host != socket.gethostname():
        return (
            f"another trainer (pid {pid} on {host}) is training into {path.parent}; wait for it, choose "
            f"another --out, or delete {path} if no trainer runs there"
        )
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, under another user
    return f"another trainer (pid {pid}) is training into {path.parent}; wait for it or choose another --out"
