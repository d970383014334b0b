"""Each start of a run, recorded in RUN/sessions.jsonl: a run that spans machines says what computed each part."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch

SESSIONS_FILE = "sessions.jsonl"
CPU_FEATURES = ("amx_bf16", "avx512_bf16", "avx512f", "avx2")  # the ones that decide bf16's and fp32's speed


def machine(device: torch.device) -> str:
    """The device in words: a GPU's name, or the CPU's model with its widest vector instructions and threads."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    features = [f for f in CPU_FEATURES if f in flags]
    return f"{model} ({', '.join(features) or 'no AVX2'}), {torch.get_num_threads()} threads"


def record_session(run: Path, iteration: int, device: torch.device, precision: str) -> None:
    """Append one line: when the run (re)started, at which iteration, where, and in which precision."""
    entry = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "iteration": iteration,
        "device": machine(device),
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
