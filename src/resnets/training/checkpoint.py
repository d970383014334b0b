"""Training checkpoints: written atomically, loaded without executing code, newest valid one found on resume."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write
from ..errors import UserError

FORMAT = "resnets-checkpoint-v1"
LAST, BEST = "last.pt", "best.pt"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically: a crash leaves the previous file, never a partial one."""
    with atomic_write(path) as f:
        torch.save({"format": FORMAT, **state}, f)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True`: tensors and plain containers only, so no code can run."""
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e).splitlines()[0][:200]
        raise UserError(
            f"{path} holds objects other than tensors and plain data; refusing to load it ({reason})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise UserError(
            f"{path} is truncated or corrupted and cannot be loaded ({str(e).splitlines()[0][:200]})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path} is not a resnets training checkpoint (export weights load with --weights)")
    return state


def latest_checkpoint(run: Path) -> tuple[Path, dict[str, Any]] | None:
    """The valid checkpoint in `run` with the most iterations, skipping unreadable ones; None if there is none."""
    found = []
    for path in sorted(run.glob("*.pt")):
        try:
            found.append((path, load_checkpoint(path)))
        except UserError as e:
            print(f"warning: skipping {e}")
    if not found:
        return None
    return max(found, key=lambda item: (item[1]["iteration"], item[0].name == LAST))
