"""ONNX export of a trained model, checked with the ONNX checker and against PyTorch in ONNX Runtime.

The graph takes the same normalised float32 NCHW input as the PyTorch model (RGB in [0, 1], minus the mean,
divided by the std); the preprocessing constants, the input size and the class names are in `metadata_props`.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.atomic import atomic_write
from ..core.errors import UserError
from ..data.augment import normalize
from ..weights.files import TrainedModel
from .metadata import input_size, metadata
from .onnx_runtime import new_session

TOLERANCE = 1e-4  # largest |ONNX Runtime - PyTorch| allowed on any fp32 output
CHECK_BATCH = 3  # images in the check batch: not the traced batch, so a batch frozen into the graph fails it
TRACE_BATCH = 2  # the dynamo exporter specialises sizes 0 and 1, so a dynamic batch is traced at 2
# torch 2.13's exporter writes opsets from 18 up; asked for a lower one it writes 18 anyway, since its converter
# has no ONNX adapters down for our graphs (Pad, Relu). The highest is the newest the installed onnx knows.
MIN_OPSET = 18


@dataclass(frozen=True)
class ExportCheck:
    """What the export verified: the largest output difference from PyTorch, on a batch of `batch` images."""

    max_difference: float
    batch: int
    outputs: list[str]


def opset_range() -> tuple[int, int]:
    """The lowest and highest ONNX opset that export writes."""
    try:
        import onnx
    except ImportError:
        raise UserError("ONNX export needs onnx: pip install 'resnets[deploy]'") from None
    return MIN_OPSET, onnx.defs.onnx_opset_version()


def check_opset(opset: int | None) -> None:
    """Refuse an opset that export cannot write (None: the exporter's default), before any work is done."""
    low, high = opset_range()
    if opset is not None and not low <= opset <= high:
        raise UserError(f"--opset {opset} is not supported: the exporter writes opsets {low} to {high}")


def export_onnx(
    trained: TrainedModel,
    out: Path,
    *,
    opset: int | None = None,
    dynamic_batch: bool = True,
    images: torch.Tensor | None = None,
    tolerance: float = TOLERANCE,
) -> ExportCheck:
    """Export to `out`, check it and compare ONNX Runtime with PyTorch on a batch; nothing is written if a check fails.

    `images`: the uint8 batch [N, 3, H, W] of the comparison (default: seeded random pixels); they are normalised
    as evaluate normalises them. A fixed batch (`dynamic_batch` False) is one image.
    """
    import onnx

    check_opset(opset)
    # torch's stubs list no memory_format for Module.to, which takes it (and returns the module)
    model = trained.model.cpu().float().eval().to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    h, w = input_size(trained)
    batch = CHECK_BATCH if dynamic_batch else 1
    if images is None:
        images = torch.randint(0, 256, (batch, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    if tuple(images.shape[-2:]) != (h, w) or (not dynamic_batch and len(images) != 1):
        raise UserError(f"the check batch must be [{batch if not dynamic_batch else 'N'}, 3, {h}, {w}] uint8 images")
    inputs = normalize(images, trained.pixel_mean, trained.pixel_std)
    with torch.no_grad():
        expected = _outputs(model(inputs))
    names = [f"stage{i + 1}" for i in range(len(expected))] if trained.model.config.features_only else ["logits"]
    proto = _export(model, (TRACE_BATCH if dynamic_batch else 1, 3, h, w), names, opset, dynamic_batch)
    written = [entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")]
    if opset is not None and written != [opset]:  # never report success for an opset other than the one asked
        got = ", ".join(map(str, written)) or "none"
        raise UserError(f"the exporter wrote opset {got}, not --opset {opset}; {out} was not written")
    for key, value in metadata(trained).items():
        proto.metadata_props.add(key=key, value=value)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as e:
        raise UserError(f"the exported graph fails the ONNX checker: {str(e).splitlines()[0]}") from None
    data = proto.SerializeToString()
    got = new_session(data).run(names, {"input": inputs.numpy()})
    difference = max(_difference(torch.from_numpy(g), e) for g, e in zip(got, expected))
    if not difference <= tolerance:  # also catches NaN
        raise UserError(
            f"ONNX Runtime's outputs differ from PyTorch's by {difference:.3g} (> {tolerance:g}) on a batch of "
            f"{len(images)}; the export is wrong, {out} was not written"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as f:
        f.write(data)
    return ExportCheck(difference, len(images), names)


def _difference(got: torch.Tensor, expected: torch.Tensor) -> float:
    """The largest absolute difference, where a NaN or infinity that PyTorch gives too is no difference: a model with
    non-finite outputs is the model's fault, not the export's, and predict reports it alike on either backend."""
    same = (got == expected) | (got.isnan() & expected.isnan())
    return float(torch.where(same, 0.0, (got - expected).abs()).max())


def _outputs(result: torch.Tensor | list[torch.Tensor]) -> list[torch.Tensor]:
    return list(result) if isinstance(result, (list, tuple)) else [result]


def _export(model: torch.nn.Module, shape: tuple[int, ...], names: list[str], opset: int | None, dynamic: bool):
    """The ONNX ModelProto of `model` traced at input `shape`.

    The dynamo exporter (torch.export), since in torch 2.13 the TorchScript one (dynamo=False) cannot export a
    dynamic batch at all: GlobalAvgPool's kernel is the feature map's size, which it turns into a runtime Gather
    that avg_pool2d's ONNX symbolic refuses; exported without dynamic axes it freezes the batch size instead. The
    dynamo graph passes the checks above (ResNet-20/-50 differ from PyTorch by about 1e-6/2e-5 on fp32 logits).
    """
    example = torch.zeros(shape)
    dynamic_shapes = ({0: torch.export.Dim("batch", min=1)},) if dynamic else None
    with warnings.catch_warnings(), _quiet("torch.onnx", "torch.export", "onnxscript"):
        warnings.simplefilter("ignore")  # the exporter's deprecation chatter; the checks below are what count
        try:
            program = torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                input_names=["input"],
                output_names=names,
                dynamic_shapes=dynamic_shapes,
                opset_version=opset,
                verbose=False,
            )
        except ImportError as e:
            raise UserError(f"ONNX export needs {e.name or 'onnx'}: pip install 'resnets[deploy]'") from None
        except Exception as e:  # the exporter raises many kinds; one line is what a user can act on
            raise UserError(f"ONNX export failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from None
    assert program is not None  # None comes from the TorchScript exporter (dynamo=False) only
    return program.model_proto


class _quiet:
    """Silence the named loggers below ERROR for a block (the exporter logs every step at WARNING and INFO)."""

    def __init__(self, *names: str):
        self.loggers = [logging.getLogger(name) for name in names]

    def __enter__(self):
        self.levels = [logger.level for logger in self.loggers]
        for logger in self.loggers:
            logger.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        for logger, level in zip(self.loggers, self.levels):
            logger.setLevel(level)
