"""Shared pieces of the fault-injection suite: a tiny deterministic run, run as a separate process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from resnets.core.checkpoints import load_checkpoint

TINY_RUN = [
    "--model",
    "resnet20",
    "--batch-size",
    "32",
    "--eval-every",
    "2",
    "--log-every",
    "2",
    "--val-split",
    "100",
    "--precision",
    "fp32",
    "--deterministic",
    "--eval-batch-size",
    "100",
]


def train_command(data: Path, out: Path, iters: int, *extra: str) -> list[str]:
    """`python -m resnets train` for the tiny run."""
    return [
        sys.executable,
        "-m",
        "resnets",
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--iters",
        str(iters),
        *TINY_RUN,
        *extra,
    ]


def run_to_end(data: Path, out: Path, iters: int, *extra: str) -> subprocess.CompletedProcess:
    """Run (or resume) the tiny run in a child process until it ends."""
    return subprocess.run(train_command(data, out, iters, *extra), capture_output=True, text=True, timeout=300)


def assert_same_weights(a: Path, b: Path) -> None:
    """Bit-for-bit equal model weights and optimizer momenta of two checkpoints."""
    sa, sb = load_checkpoint(a), load_checkpoint(b)
    assert sa["iteration"] == sb["iteration"]
    for key, value in sa["model"].items():
        assert torch.equal(value, sb["model"][key]), key
    for key, value in sa["optimizer"]["state"].items():
        assert torch.equal(value["momentum_buffer"], sb["optimizer"]["state"][key]["momentum_buffer"]), key


class Payload:
    """Unpickling this calls Path.touch(marker): harmless, and visible if it ever runs."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)
