"""Int8 ONNX graphs: ONNX Runtime's static quantization of the checked fp32 export, checked before it is written.

ONNX Runtime's own tools do the work (quant_pre_process, then quantize_static: QDQ format, uint8 activations and
per-channel int8 weights, MinMax ranges; the classifier stays fp32), calibrated on N images of any folder that go
through the same view and normalisation as `resnets evaluate` gives the model (a Predictor's). Before a graph is
written, its top-1 is compared with the fp32 graph's: on a labelled folder (both errors, their difference, the
agreement; refused past `max_drop` points) or on the calibration images (the agreement). The settings and these
figures go into its metadata.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.atomic import atomic_write
from ..core.errors import UserError
from ..data.augment import normalize
from ..data.folder import scan_split
from ..evaluation.evaluate import evaluation_positions
from ..weights.files import TrainedModel
from .inputs import collect_images
from .onnx_cache import cached_entry, cached_onnx, entry_path, graph_digest
from .onnx_runtime import load_onnx
from .predictor import Predictor, to_tensor

CALIBRATION_IMAGES = 512
MAX_DROP = 1.0  # percentage points of top-1 error that quantization may add on a --check folder
CALIBRATION_BATCH = 8  # crops per calibration run
# ONNX Runtime keeps every calibration run's activations until it merges their ranges; merging every 4 runs bounds
# that to 32 crops' (about 3 GB for ResNet-50 at 224 pixels). MinMax ranges do not depend on the grouping.
MERGE_EVERY = 4
CHUNK = 256  # images decoded and scored at once when the graphs are compared
SETTINGS: dict[str, Any] = {  # also the graph's metadata, as JSON
    "tool": "onnxruntime.quantization.quantize_static after quant_pre_process",
    "quant_format": "QDQ",
    # uint8 activations: ONNX Runtime's x86 kernels fuse every U8S8 QDQ Conv and Add (QLinearConv, QLinearAdd, NHWC),
    # while with int8 ones it leaves the residual Adds, and the 20 Convs that feed them, in fp32 (measured: ResNet-50)
    "activation_type": "QUInt8",
    "weight_type": "QInt8",
    "per_channel": True,
    "calibrate_method": "MinMax",
    # The classifier (under 0.1% of a ResNet's multiply-adds) stays fp32: quantizing it flips near-tied classes
    "fp32_ops": ["Gemm", "MatMul"],
}


@dataclass(frozen=True)
class Calibration:
    """The images a graph is calibrated on: `count` of them spread evenly over the sorted image files of `folder`."""

    folder: Path
    files: list[Path]

    def digest(self) -> str:
        """A sha256 of the chosen files' names (relative to the folder) and bytes: the cache key's calibration part."""
        digest = hashlib.sha256()
        for file in self.files:
            digest.update(f"{file.relative_to(self.folder)}\0".encode())
            digest.update(hashlib.sha256(file.read_bytes()).digest())
        return digest.hexdigest()


@dataclass(frozen=True)
class Comparison:
    """The int8 graph against the fp32 graph on `images` images of `on`: top-1 agreement (%), and the top-1 errors (%)
    where the images are labelled."""

    on: str
    images: int
    agreement: float
    fp32_error: float | None = None
    int8_error: float | None = None

    def summary(self) -> str:
        """One line of the figures, as export prints them."""
        if self.fp32_error is None:
            return f"int8 agrees with fp32 on {self.agreement:.2f}% of the {self.images} calibration images"
        assert self.int8_error is not None  # measured with fp32_error
        return (
            f"top-1 error on {self.on} ({self.images} images): fp32 {self.fp32_error:.2f}%, int8 "
            f"{self.int8_error:.2f}% ({self.int8_error - self.fp32_error:+.2f} points); agreement {self.agreement:.2f}%"
        )


def calibration_set(folder: str | Path, count: int = CALIBRATION_IMAGES) -> Calibration:
    """`count` images of `folder` (any image folder, walked recursively), evenly spread over its sorted files."""
    if not (isinstance(count, int) and count >= 1):
        raise UserError(f"--calibration-images {count} must be a positive number of images")
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise UserError(f"--calibration {folder} is not a folder; pass a folder of images to calibrate on")
    files = collect_images([str(root)]).files  # a folder without images is a one-line error there
    return Calibration(root, [files[i] for i in evaluation_positions(len(files), count).tolist()])


def quantize(fp32: Predictor, fp32_file: Path, calibration: Calibration, out: Path, **check) -> Comparison:
    """Write the int8 graph of the fp32 graph `fp32_file` (run by `fp32`) to `out`, once it passes `check_int8`."""
    inputs = calibration_inputs(fp32, calibration.files)
    with tempfile.TemporaryDirectory() as work:
        graph = Path(work) / "int8.onnx"
        quantize_graph(fp32_file, graph, inputs, Path(work))
        int8 = Predictor(load_onnx(graph), **_same_settings(fp32))
        comparison = check_int8(fp32, int8, calibration, out=out, **check)
        _write(graph, out, calibration, comparison)
    return comparison


def cached_int8(trained: TrainedModel, calibration: Calibration, settings: dict, opset: int | None = None) -> Path:
    """The cached int8 graph of `trained` under the Predictor `settings`, beside the cached fp32 export (onnx_cache).

    Keyed by the fp32 graph's key (weights, config, metadata, opset, torch), the calibration images' names and bytes,
    the quantization settings, ONNX Runtime's version and the view that prepares the calibration crops; built once,
    with the calibration images' agreement on stderr.
    """
    fp32_file = cached_onnx(trained, opset)
    fp32 = Predictor(load_onnx(fp32_file), **settings)
    view = [fp32.view_name, fp32.resize, fp32.crop]
    shape = {"graph": graph_digest(trained, opset), "quantization": settings_metadata(calibration), "view": view}
    key = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()

    def build(path: Path) -> None:
        comparison = quantize(fp32, fp32_file, calibration, path)
        print(f"resnets: built the int8 graph {path}; {comparison.summary()}", file=sys.stderr)

    return cached_entry(entry_path(f"{trained.name}-int8", key), key, build)


def calibration_inputs(predictor: Predictor, files: Sequence[Path]) -> list[np.ndarray]:
    """The normalised crops of `files` under the predictor's view, as evaluate makes them, in calibration batches."""
    crops = []
    for file in files:
        image = to_tensor(file)  # an unreadable file is one line naming it
        try:
            predictor.check(image)
        except ValueError as e:
            raise UserError(f"calibration image {file}: {e}") from None
        for stack in predictor.view(image):
            crops.append(normalize(stack, predictor.member.mean, predictor.member.std))
    flat = torch.cat(crops)
    return [flat[i : i + CALIBRATION_BATCH].numpy() for i in range(0, len(flat), CALIBRATION_BATCH)]


def check_int8(
    fp32: Predictor,
    int8: Predictor,
    calibration: Calibration,
    *,
    out: Path,
    check: str | Path | None = None,
    max_drop: float = MAX_DROP,
) -> Comparison:
    """The int8 graph against the fp32 one, on the labelled folder `check` (refused, naming `out`, if its error rises
    by more than `max_drop` points) or else on the calibration images."""
    if check is None:
        agree, _, _ = _top1_counts(fp32, int8, calibration.files, None)
        return Comparison("calibration images", len(calibration.files), 100 * agree / len(calibration.files))
    folder = Path(check).expanduser()
    scan = scan_split(folder.parent, folder.name, classes=fp32.classes)
    agree, right32, right8 = _top1_counts(fp32, int8, scan.files, torch.tensor(scan.labels))
    n = len(scan.files)
    fp32_error, int8_error = 100 * (1 - right32 / n), 100 * (1 - right8 / n)
    result = Comparison(str(check), n, 100 * agree / n, fp32_error, int8_error)
    if int8_error - fp32_error > max_drop:
        raise UserError(
            f"int8 raises the top-1 error on {check} from {fp32_error:.2f}% to {int8_error:.2f}% "
            f"(more than --max-drop {max_drop:g} points); {out} was not written"
        )
    return result


def _top1_counts(fp32: Predictor, int8: Predictor, files: Sequence[Path], labels: torch.Tensor | None):
    """How often the graphs' top-1 classes agree, and how often each is right (0 without labels)."""
    agree = right32 = right8 = 0
    for start in range(0, len(files), CHUNK):
        images = [to_tensor(f) for f in files[start : start + CHUNK]]
        top32, top8 = fp32.scores(images).argmax(1), int8.scores(images).argmax(1)
        agree += int((top32 == top8).sum())
        if labels is not None:
            truth = labels[start : start + CHUNK]
            right32, right8 = right32 + int((top32 == truth).sum()), right8 + int((top8 == truth).sum())
    return agree, right32, right8


def check_max_drop(max_drop: float) -> None:
    """Refuse a --max-drop that is not a finite number of points, zero or more."""
    if not (math.isfinite(max_drop) and max_drop >= 0):
        raise UserError(f"--max-drop {max_drop} must be a number of percentage points, 0 or more")


def quantize_graph(fp32_file: Path, out: Path, inputs: list[np.ndarray], work: Path) -> None:
    """ONNX Runtime's shape inference and graph optimisation, then its static QDQ quantization on `inputs`."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches: Iterator[np.ndarray] = iter(inputs)

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"input": batch}

    import onnx

    prepared = work / "prepared.onnx"
    quant_pre_process(str(fp32_file), str(prepared))
    graph = onnx.load(str(prepared)).graph
    classifier = [node.name for node in graph.node if node.op_type in SETTINGS["fp32_ops"]]
    quantize_static(
        str(prepared),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        calibrate_method=CalibrationMethod.MinMax,
        nodes_to_exclude=classifier,
        extra_options={"max_intermediate_outputs": MERGE_EVERY},
    )


def _same_settings(predictor: Predictor) -> dict:
    """The Predictor settings that run another graph exactly as `predictor` runs its own."""
    return dict(
        view=predictor.view_name,
        resize=predictor.resize,
        crop=predictor.crop,
        batch_size=predictor.batch_size,
        channels_last=False,
        device="cpu",
        source=predictor.source,
        backend="onnxruntime",
    )


def settings_metadata(calibration: Calibration) -> dict:
    """The quantization settings as recorded in an int8 graph's metadata (and its cache key)."""
    import onnxruntime

    return {
        **SETTINGS,
        "calibration_images": len(calibration.files),
        "calibration_sha256": calibration.digest(),
        "onnxruntime": onnxruntime.__version__,
    }


def _write(graph: Path, out: Path, calibration: Calibration, comparison: Comparison) -> None:
    """`graph` with its settings and check figures added to the metadata, written atomically to `out`."""
    import onnx

    proto = onnx.load(str(graph))
    props = {
        "precision": "int8",
        "quantization": json.dumps(settings_metadata(calibration)),
        "quantization_check": json.dumps(asdict(comparison)),
    }
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as f:
        f.write(proto.SerializeToString())
