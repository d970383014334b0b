"""load_predictor: the Predictor of a run, a weights file or an ONNX file, on the backend that runs it exactly and
fastest (PyTorch, ONNX Runtime fp32, or an int8 graph)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.errors import UserError
from ..evaluation.options import BACKENDS
from ..evaluation.protocol import check_model_flags
from ..weights.files import Normalization, load_trained, pretrained_model
from .metadata import input_size
from .onnx_cache import cached_onnx, missing_dependency
from .onnx_runtime import load_onnx
from .predictor import Predictor
from .quantize import CALIBRATION_IMAGES, cached_int8, calibration_set


def load_predictor(
    checkpoint: str | Path | None = None,
    *,
    model: str | None = None,
    weights: str | None = None,
    onnx: str | Path | None = None,
    options: dict[str, Any] | None = None,
    backend: str = "auto",
    normalization: Normalization | Mapping | None = None,
    calibration: str | Path | None = None,
    calibration_images: int | None = None,
    **settings: Any,
) -> Predictor:
    """A Predictor for a run folder or checkpoint file, `model` built with `weights`, or an ONNX file.

    `settings` go to Predictor (view, device, precision, batch_size, ...); `options` build `model` (shortcut, ...);
    `normalization` is that of `weights` that carry none (a Normalization, or its `to_json()`; see pretrained_model).
    `backend` "auto" runs a checkpoint or weights with ONNX Runtime where that is exact and installed (see
    `_onnx_unfit`), since it measured fastest of the fp32-exact paths on CPU (docs/performance.md);
    "torch" always runs PyTorch; "onnx" insists on ONNX Runtime. `precision="int8"`: an `export --int8` file's graph,
    or one quantized on `calibration_images` (512) images of the folder `calibration`, cached (inference.quantize).
    """
    if backend not in BACKENDS:
        raise UserError(f"--backend {backend!r} is not one of {', '.join(BACKENDS)}")
    given = [name for name, value in (("--checkpoint", checkpoint), ("--onnx", onnx), ("--weights", weights)) if value]
    if len(given) != 1:
        raise UserError("pass exactly one of --checkpoint RUN_OR_FILE, --onnx FILE, or --model NAME --weights W")
    check_model_flags(weights, model, options or {})
    int8 = _int8_request(settings, backend, onnx, calibration, calibration_images)
    if onnx is not None:
        return _onnx_predictor(Path(onnx), backend, int8, settings)
    if checkpoint is not None:
        trained, source = load_trained(checkpoint), str(checkpoint)
    else:
        assert model is not None and weights is not None  # the one source given, with --model (check_model_flags)
        try:
            trained = pretrained_model(model, weights, normalization, **(options or {}))
        except ValueError as e:
            raise UserError(str(e)) from None
        source = f"{weights} ({model})"
    predictor = Predictor(trained, source=source, **settings)  # checks the model and settings, resolves the view
    if int8:
        return _int8_predictor(predictor, calibration, calibration_images, settings)
    if backend == "torch":
        return predictor
    reason = _onnx_unfit(predictor, settings.get("precision", "fp32"))
    if reason is not None:
        if backend == "onnx":
            raise UserError(f"--backend onnx: {reason}; drop --backend onnx to run PyTorch")
        return predictor
    try:
        path = cached_onnx(trained)
    except UserError as e:  # a graph that fails export's checks is not the correct path; PyTorch still is
        if backend == "onnx":
            raise
        warnings.warn(f"{source}: running PyTorch, since {e}", stacklevel=2)
        return Predictor(trained, source=source, **settings)  # afresh: the export left the model contiguous
    return Predictor(load_onnx(path), source=source, **_onnx_settings(settings))


def _int8_request(settings: dict, backend: str, onnx, calibration, calibration_images) -> bool:
    """Whether int8 is asked for (then `settings` runs fp32 crops), refusing flags that do not fit together."""
    if settings.get("precision") != "int8":
        if calibration is not None or calibration_images is not None:
            raise UserError("--calibration and --calibration-images apply to --precision int8; add it, or drop them")
        return False
    settings["precision"] = "fp32"  # the crops go to the int8 graph as fp32; ONNX Runtime quantizes them
    if backend == "torch":
        raise UserError("--precision int8 runs an int8 ONNX graph in ONNX Runtime; drop --backend torch")
    if onnx is None and calibration is None:
        raise UserError(
            "--precision int8 needs --calibration DIR (a folder of images to calibrate on), or --onnx FILE of an "
            "`export --int8` graph"
        )
    if onnx is not None and (calibration is not None or calibration_images is not None):
        raise UserError(f"--onnx {onnx} is already calibrated; drop --calibration and --calibration-images")
    return True


def _onnx_predictor(path: Path, backend: str, int8: bool, settings: dict[str, Any]) -> Predictor:
    """The Predictor of an ONNX file; `int8`: refused unless the file is an int8 graph."""
    if backend == "torch":
        raise UserError("--onnx FILE runs with ONNX Runtime; drop --backend torch (or pass --checkpoint)")
    if settings.get("precision", "fp32") not in ("fp32", "auto"):
        raise UserError("an ONNX model runs at the precision it was exported in; drop --precision")
    trained = load_onnx(path)
    if int8 and trained.model.precision != "int8":
        raise UserError(f"{path} is an fp32 graph; export it with --int8, or drop --precision int8")
    return Predictor(trained, source=str(path), **_onnx_settings(settings))


def _int8_predictor(predictor: Predictor, calibration, count: int | None, settings: dict[str, Any]) -> Predictor:
    """The Predictor of the cached int8 graph of `predictor`'s model, calibrated on `count` images of `calibration`."""
    reason = _onnx_unfit(predictor, "fp32")
    if reason is not None:
        raise UserError(f"--precision int8: {reason}")
    images = calibration_set(calibration, CALIBRATION_IMAGES if count is None else count)
    onnx_settings = {**_onnx_settings(settings), "source": predictor.source}
    path = cached_int8(predictor.trained, images, onnx_settings)
    return Predictor(load_onnx(path), **onnx_settings)


def _onnx_settings(settings: dict[str, Any]) -> dict[str, Any]:
    return {**settings, "precision": "fp32", "channels_last": False, "device": "cpu", "backend": "onnxruntime"}


def _onnx_unfit(predictor: Predictor, precision: str) -> str | None:
    """Why ONNX Runtime cannot give this predictor's scores exactly and fast, or None when it can.

    The exported graph is fp32 on the CPU, at one input size (its pooling window is traced at it): so a CUDA device,
    autocast (bf16/fp16/auto) and views with crops of other sizes (multiscale, or `full` without a fixed-size
    per-pixel mean) stay with PyTorch.
    """
    missing = missing_dependency()
    if missing is not None:
        return f"ONNX Runtime needs {missing}: pip install 'resnets[deploy]'"
    if predictor.device.type != "cpu":
        return f"the network runs on {predictor.device}, and ONNX Runtime here runs on the CPU"
    if precision != "fp32":
        return f"--precision {precision} asks for autocast, and the ONNX graph is fp32"
    size = input_size(predictor.trained)
    if predictor.crop_size() != size:
        return f"the {predictor.view_name} view's crops are not all the model's {size[0]}x{size[1]} input"
    return None
