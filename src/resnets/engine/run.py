"""A run folder: its config.json (written and read here only), the files a run writes beside it, and what an output
made from a run must never replace."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.atomic import atomic_write
from ..core.checkpoints import BEST, FINAL, LAST
from ..core.errors import UserError, parse_json
from .metrics import METRICS_FILE
from .sessions import SESSIONS_FILE

CONFIG_FILE = "config.json"
RUN_FILES = (LAST, BEST, FINAL, METRICS_FILE, SESSIONS_FILE)  # what a run may write beside its config.json
# Run mechanics every trainer shares: settings that may differ between the sessions of one run (a GPU here, a CPU
# there, the data in another folder); every other setting makes the run what it is. Each task adds its own.
RUN_MECHANICS = frozenset(
    {"data", "out", "device", "precision", "channels_last", "log_every", "skip_bad_images", "checkpoint_minutes"}
)


def config_path(run: str | Path) -> Path:
    """The config.json of the run folder `run`."""
    return Path(run) / CONFIG_FILE


def read_config(path: Path, fix: str) -> dict[str, Any]:
    """The values in a run's config.json; unreadable JSON or anything but an object is one line ending with `fix`."""
    try:
        saved = parse_json(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is not valid JSON ({e}); {fix}") from None
    if not isinstance(saved, dict):
        raise UserError(f"{path} is not a resnets run config; {fix}")
    return saved


def saved_config(run: Path) -> dict[str, Any]:
    """The config.json of the run that --resume continues; a missing or unreadable one is an error."""
    path = config_path(run)
    if not path.is_file():
        raise UserError(f"--resume: {run} holds no run (no {path.name}); start it without --resume")
    return read_config(path, "restore it, or start a new run without --resume")


def write_config(path: Path, values: dict[str, Any]) -> None:
    """Write a run's resolved settings as its config.json (`path`), atomically."""
    with atomic_write(path) as f:
        f.write((json.dumps(values, indent=2) + "\n").encode())


def refuse_foreign_config(run: Path, parse: Callable[[dict[str, Any]], Any], command: str, fix: str) -> bool:
    """Whether `run` holds a config.json that `command` wrote (one `parse` accepts); one it did not write is the
    user's, or another trainer's, and is refused (`fix` says how to go on)."""
    path = config_path(run)
    if not path.is_file():
        return False
    try:
        parse(read_config(path, fix))
    except (OSError, ValueError, TypeError, AttributeError, UserError):
        raise UserError(f"{path} was not written by {command}; choose another --out, or {fix}") from None
    return True


def run_inputs(source: str | Path | None) -> list[Path]:
    """What an output made from `source` must never replace, even when forced: the file itself and, where `source` is
    a run folder or a file in one, that run's own files (its config.json, metrics and checkpoints)."""
    if source is None:
        return []
    path = Path(source).expanduser()
    folder = path if path.is_dir() else path.parent
    own = [folder / name for name in (CONFIG_FILE, *RUN_FILES)] if config_path(folder).is_file() else []
    return [p for p in (path, *own) if p.is_file()]
