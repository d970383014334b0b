"""The checked ONNX export of a trained model, cached so that predict and serve pay the export (seconds) once.

The file lives under the resnets cache folder ($RESNETS_CACHE/onnx/), named by a digest of the weights and of
everything else that shapes the graph or its metadata: model config, input size, normalisation, classes, opset
and the exporter's version. A changed checkpoint or a new torch gets a new file; nothing is ever re-used stale.
Beside each file, NAME.onnx.json records its full key and the SHA-256 of its bytes: an entry that does not match
both (truncated, edited, or another entry's file copied over it) is exported again, never run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from ..core.atomic import atomic_write, check_writable
from ..core.errors import UserError, parse_json
from ..core.paths import default_cache_dir
from ..data.paths import what_is
from ..weights.files import TrainedModel
from .metadata import FORMAT, metadata
from .onnx_export import export_onnx

DEPENDENCIES = ("onnx", "onnxscript", "onnxruntime")  # the dynamo exporter needs onnxscript; running needs ORT


def missing_dependency() -> str | None:
    """The first of the `deploy` extra's packages that cannot be imported, or None when all can."""
    import importlib

    for name in DEPENDENCIES:
        try:
            importlib.import_module(name)
        except ImportError:
            return name
    return None


def graph_digest(trained: TrainedModel, opset: int | None = None) -> str:
    """A sha256 of the weights, the model config, the metadata (input size, normalisation, classes), opset, torch."""
    digest = hashlib.sha256()
    config = trained.model.config
    shape = {
        "format": FORMAT,
        "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else repr(config),
        "metadata": metadata(trained),
        "opset": opset,
        "torch": torch.__version__,
    }
    digest.update(json.dumps(shape, sort_keys=True, default=str).encode())
    for name, tensor in trained.model.state_dict().items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name} {flat.dtype} {list(tensor.shape)}".encode())
        digest.update(memoryview(flat.view(torch.uint8).numpy()))
    return digest.hexdigest()


def cache_path(trained: TrainedModel, opset: int | None = None) -> Path:
    """Where the checked export of `trained` is cached."""
    return entry_path(trained.name, graph_digest(trained, opset))


def cached_onnx(trained: TrainedModel, opset: int | None = None) -> Path:
    """The cached export of `trained`, exported (and checked against PyTorch) first if it is not there yet, or if
    the entry there fails its check against its key (then a one-line warning says it is rebuilt).

    export_onnx writes atomically, and only after its checks pass; serve's worker processes may export at once, and
    the last rename wins with an identical file.
    """
    key = graph_digest(trained, opset)
    return cached_entry(entry_path(trained.name, key), key, lambda path: export_onnx(trained, path, opset=opset))


def cached_entry(path: Path, key: str, build: Callable[[Path], object]) -> Path:
    """The cache entry `path` of `key`, built first by `build(path)` (which writes it atomically, once checked) if it
    is missing or fails its check against its key (then a one-line warning says it is rebuilt); its record after."""
    damage = entry_damage(path, key)
    if damage is None:
        return path
    for part in (path, _record(path)):  # no file is renamed over a folder, and a FIFO would hang the next read
        if (part.exists() or part.is_symlink()) and not part.is_file():
            raise UserError(f"{part} {what_is(part)}, not an ONNX cache file; remove it, or set RESNETS_CACHE")
    check_writable(path.parent, f"the ONNX cache {path.parent} (set RESNETS_CACHE to another folder)")
    if path.exists():
        warnings.warn(f"the cached ONNX export {path} {damage}; exporting it again", stacklevel=3)
    build(path)
    with atomic_write(_record(path)) as f:
        f.write(json.dumps({"key": key, "sha256": _file_digest(path)}).encode())
    return path


def entry_damage(path: Path, key: str) -> str | None:
    """Why the cache entry `path` cannot be used for `key` (missing, unrecorded, another key's, changed), or None."""
    if not path.is_file():
        return "is missing"
    try:
        record = parse_json(_record(path).read_text()) if _record(path).is_file() else {}
        recorded = (record["key"], record["sha256"])
    except (OSError, ValueError, TypeError, KeyError):
        return f"has no valid record {_record(path).name}"
    if recorded[0] != key:
        return "was exported from other weights or settings"
    if recorded[1] != _file_digest(path):
        return "is damaged (its bytes differ from those recorded)"
    return None


def entry_path(name: str, key: str) -> Path:
    """Where the cache entry of `key` for the model `name` lives ($RESNETS_CACHE/onnx/)."""
    return default_cache_dir() / "onnx" / f"{name}-{key[:24]}.onnx"


def _record(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
