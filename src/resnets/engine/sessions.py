"""Each start of a run, recorded in RUN/sessions.jsonl: a run that spans machines says what computed each part."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..core.runtime import describe_device

SESSIONS_FILE = "sessions.jsonl"


def record_session(run: Path, iteration: int, device: torch.device, precision: str) -> None:
    """Append one line: when the run (re)started, at which iteration, where, and in which precision."""
    entry = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "iteration": iteration,
        "device": describe_device(device),
        "precision": precision,
        "torch": torch.__version__,
    }
    with (run / SESSIONS_FILE).open("a") as f:
        f.write(json.dumps(entry) + "\n")


def read_sessions(run: Path) -> list[dict]:
    """The run's recorded starts, oldest first (none for runs from before this file existed)."""
    path = run / SESSIONS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
