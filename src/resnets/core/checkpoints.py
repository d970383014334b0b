"""Training checkpoints: written atomically, loaded without executing code, newest valid one found on resume."""

from __future__ import annotations

import hashlib
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_write
from .errors import UserError

FORMAT = "resnets-checkpoint-v1"
LAST, BEST = "last.pt", "best.pt"
FINAL = "final.safetensors"  # a finished run's exported weights; once written, its checkpoints may go


def checksum(value: Any) -> str:
    """SHA-256 over every tensor's bytes and every plain value, in a fixed order: detects silent corruption."""
    digest = hashlib.sha256()

    def feed(v: Any) -> None:
        if isinstance(v, torch.Tensor):
            t = v.detach().cpu().contiguous()
            digest.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            # numpy's stubs declare ndarray.__buffer__ for Python 3.12+ only; the array is a buffer on 3.10+ too
            digest.update(t.reshape(-1).view(torch.uint8).numpy())  # type: ignore[arg-type]
        elif isinstance(v, dict):
            for k in sorted(v, key=str):
                digest.update(f"K{k!r}".encode())
                feed(v[k])
        elif isinstance(v, (list, tuple)):
            digest.update(f"L{len(v)}".encode())
            for item in v:
                feed(item)
        else:
            digest.update(f"V{v!r}".encode())

    feed(value)
    return digest.hexdigest()


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically: a crash leaves the previous file, never a partial one."""
    state = {"format": FORMAT, **state}
    try:
        with atomic_write(path) as f:
            torch.save({**state, "checksum": checksum(state)}, f)
    except OSError as e:
        raise UserError(
            f"could not write checkpoint {path} ({e.strerror or e}); the previous checkpoint is intact; "
            "free some space or choose another --out"
        ) from None


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True`: tensors and plain containers only, so no code can run."""
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    state = load_safely(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path} is not a resnets training checkpoint (export weights load with --weights)")
    stored = state.pop("checksum", None)
    if stored != checksum(state):
        raise UserError(f"{path} is corrupted (its checksum does not match its contents); use another checkpoint")
    return state


def load_safely(path: Path) -> Any:
    """`torch.load` with `weights_only=True` (tensors and plain containers: no code runs), errors as one line."""
    kind = file_kind(path)
    if kind == "onnx":
        raise UserError(f"{path} is an ONNX model, not a checkpoint; predict and serve take it as --onnx {path}")
    if kind == "safetensors":
        raise UserError(f"{path} holds safetensors, not a PyTorch checkpoint; name it {path.stem}.safetensors")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on the pickle protocol; a file that fails says why below
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # other objects (classes, functions: code to run), or damaged bytes
        raise UserError(
            f"{path} holds objects other than tensors and plain data, or damaged bytes; refusing to load it "
            f"({_reason(e)})"
        ) from None
    except Exception as e:  # torch's loader fails on damaged bytes with errors of any kind: each is one line
        raise UserError(f"{path} is truncated or corrupted and cannot be loaded ({_reason(e)})") from None


def file_kind(path: Path) -> str | None:
    """What a file's first bytes say it is, where that is not a PyTorch file: "safetensors", "onnx", else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(10)
    except OSError as e:
        raise UserError(f"cannot read {path} ({e.strerror or e})") from None
    if len(head) == 10 and head[8:10] == b'{"' and int.from_bytes(head[:8], "little") < path.stat().st_size:
        return "safetensors"  # an 8-byte header length, then the JSON header
    # An ONNX ModelProto: field 1 (ir_version, a small varint), then a length-delimited field (a name, the graph).
    if path.suffix == ".onnx" or (len(head) >= 3 and head[0] == 0x08 and head[1] < 0x80 and head[2] & 7 == 2):
        return "onnx"
    return None


def _reason(error: Exception) -> str:
    # torch's weights-only errors open with advice to unpickle unsafely; the cause follows the marker
    text = str(error)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines or [type(error).__name__])[0].split(". ")[0][:200]


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
