"""An exported ONNX model run with ONNX Runtime, behind the same interface as the PyTorch model.

`load_onnx` gives a TrainedModel whose network is an `OnnxModel` module, so `Predictor` (and with it evaluate's
test views and normalisation) works on it unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import torch
from torch import nn

from ..core.errors import UserError
from ..data.paths import what_is
from ..models import ResNet
from ..weights.files import Metadata, TrainedModel, checked_classes, checked_normalisation
from .metadata import FORMAT


def new_session(model: bytes | str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session of a model file or serialised model (on `threads` threads; None: ORT's default)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("running an ONNX model needs onnxruntime: pip install 'resnets[deploy]'") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: its warnings about unused initialisers are noise here
    if threads is not None:
        options.intra_op_num_threads = threads
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own exception types; a bad file is a user's mistake
        name = "the exported model" if isinstance(model, bytes) else model
        raise UserError(f"ONNX Runtime cannot load {name}: {str(e).splitlines()[0][:300]}") from None


class OnnxModel(nn.Module):
    """An ONNX Runtime session as a module: float32 NCHW inputs in, the first output (logits) out."""

    def __init__(self, session, source: str, precision: str = "fp32"):
        super().__init__()
        self.session, self.source, self.precision = session, source, precision
        self.input = session.get_inputs()[0]
        self.size = tuple(self.input.shape[-2:])  # fixed: the pooling window was traced at this size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.size:
            raise UserError(
                f"{self.source} takes {self.size[0]}x{self.size[1]} inputs, but the view gives "
                f"{x.shape[-2]}x{x.shape[-1]}; choose a view with that crop (or the full view of images that size)"
            )
        array = x.detach().float().cpu().contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {self.input.name: array})[0]).to(x.device)


def load_onnx(path: Path) -> TrainedModel:
    """An ONNX file written by `resnets export --format onnx`, with its classes and normalisation."""
    if not path.is_file():
        raise UserError(f"ONNX file {path} {what_is(path)}; pass an .onnx file from `resnets export --format onnx`")
    session = new_session(path)
    props = session.get_modelmeta().custom_metadata_map
    if props.get("format") != FORMAT:
        raise UserError(f"{path} has no resnets metadata (mean, std, classes); export it with `resnets export`")
    meta = Metadata(path, props)
    named = meta.get("classes")
    if named == []:
        raise UserError(f"{path} is a features_only backbone; predict needs a classifier")
    classes = checked_classes(path, named, session.get_outputs()[0].shape[-1])  # the logits' width, fixed in the graph
    precision = props.get("precision", "fp32")  # "int8" in the graphs of `export --int8` (inference.quantize)
    model = OnnxModel(session, str(path), precision)
    mean, std = meta.tensor("mean", "mean_shape"), meta.tensor("std", optional=True)
    mean, std = checked_normalisation(path, mean, std, size=model.size, keys=("mean", "std"))
    network = cast(ResNet, model)  # an OnnxModel stands in for the network: Predictor only calls it (see above)
    return TrainedModel(meta.text("model_name"), network, mean, classes, meta.train_config("train_config"), std)
