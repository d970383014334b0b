"""The checked ONNX export of a trained model, cached so that predict and serve pay the export (seconds) once.

The file lives under the resnets cache folder ($RESNETS_CACHE/onnx/), named by a digest of the weights and of
everything else that shapes the graph or its metadata: model config, input size, normalisation, classes, opset
and the exporter's version. A changed checkpoint or a new torch gets a new file; nothing is ever re-used stale.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch

from ..data.cache import default_cache_dir
from ..weights import TrainedModel
from .onnx_export import FORMAT, export_onnx, metadata

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
    return default_cache_dir() / "onnx" / f"{trained.name}-{graph_digest(trained, opset)[:24]}.onnx"


def cached_onnx(trained: TrainedModel, opset: int | None = None) -> Path:
    """The cached export of `trained`, exported (and checked against PyTorch) first if it is not there yet.

    export_onnx writes atomically, and only after its checks pass, so a file found here is a checked one; serve's
    worker processes may export at once, and the last rename wins with an identical file.
    """
    path = cache_path(trained, opset)
    if not path.is_file():
        export_onnx(trained, path, opset=opset)
    return path
