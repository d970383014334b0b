"""Where and in which precision a run computes (CUDA when present, bf16 where the hardware has it), on how many
decoding processes, and how it keeps its memory."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import signal
from pathlib import Path

import torch

from .errors import UserError

# glibc's malloc hands freed blocks above its trim threshold back to the kernel and serves large requests with
# fresh mmaps, so every training step page-faults its activations in again: 2,500-5,500 faults (4 KiB each) per
# ResNet-20 fp32 step at batch 128, measured. Kept instead: requests below 32 MiB (glibc's largest mmap threshold)
# come from the heap, and up to 1 GiB of freed heap stays mapped for the next step.
MMAP_THRESHOLD_BYTES = 32 * 2**20
TRIM_THRESHOLD_BYTES = 2**30
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (glibc's malloc.h)


def keep_freed_memory(device: torch.device) -> bool:
    """For a run on the CPU: make malloc keep freed memory for reuse instead of returning it to the kernel; False
    for other devices (their activations are not malloc's) and where malloc is not glibc's."""
    if device.type != "cpu":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    # The mmap threshold first: a fixed trim threshold alone also fixes the mmap threshold at its 128 KiB start,
    # and then every activation is a fresh mmap (25x the page faults of a ResNet-20 step, measured).
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))


def leave_ctrl_c_to_the_main_process() -> None:
    """In a worker process: ignore SIGINT. A terminal's Ctrl-C reaches the whole process group; the main process
    answers it (a training run saves a checkpoint and stops its workers), and a worker that died of it first would
    print a KeyboardInterrupt traceback of its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    """'auto' is bf16 on GPUs and CPUs with native bf16 (AVX512-BF16 or AMX), fp16 on older GPUs, else fp32."""
    if name != "auto":
        if name == "fp16" and device.type == "cpu":
            raise UserError("--precision fp16 needs a CUDA GPU; on the CPU use bf16 or fp32")
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported() else "fp32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass (weights and optimizer stay fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def default_workers() -> int:
    """Decoding processes when not given: one per CPU core, at most 8 (more rarely helps one GPU)."""
    return min(8, os.cpu_count() or 1)


CPU_FEATURES = ("amx_bf16", "avx512_bf16", "avx512f", "avx2")  # the ones that decide bf16's and fp32's speed


def describe_device(device: torch.device) -> str:
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
