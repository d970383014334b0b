"""Trained models in and out: checkpoints, run folders and weight files to models, and safetensors export."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from ..core.atomic import atomic_write
from ..core.checkpoints import BEST, FINAL, LAST, checksum, file_kind, load_checkpoint, load_safely
from ..core.errors import UserError, parse_json
from ..data.imagenet_classes import IMAGENET_WNIDS
from ..data.paths import what_is
from ..models import ResNet, ResNetConfig, create_model

WEIGHTS_FORMAT = "resnets-weights-v1"
HEAD = ("fc.weight", "fc.bias")  # the classifier, which fine-tuning on other classes starts afresh
SHOWN = 5  # keys listed per kind in a mismatch error
MEASURED = ("iteration", "val_error", "train_images")  # what an export keeps of its run, besides the weights
PLAIN = ("format", "model_name", "checksum")  # an export's metadata values that are plain strings, not JSON
# What a classifier checkpoint of `resnets train` holds, and of which type (a detector's holds other keys).
CLASSIFIER_STATE = {"model_name": str, "model_config": dict, "model": dict, "pixel_mean": torch.Tensor}
CLASSIFIER_STATE |= {"classes": list, "train_config": dict, "iteration": int}
# The per-channel normalisation torchvision's ImageNet weights were trained with (inputs in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class TrainedModel:
    """A network with what testing it needs: its input normalisation and class names."""

    name: str
    model: ResNet
    pixel_mean: torch.Tensor
    classes: list[str]  # output i's class is classes[i] (see model_classes); empty when unknown: the data's order
    train_config: dict
    pixel_std: torch.Tensor | None = None  # per-channel divisor after the mean (torchvision weights); None: none
    iteration: int | None = None  # the training iteration of these weights, when they come from a resnets run
    val_error: float | None = None  # top-1 error (%) the run measured on its validation set at that iteration
    train_images: int | None = None  # how many images the run trained on (checkpoints since it was recorded)


def model_classes(named: list[str], num_classes: int) -> list[str]:
    """The class of each output: the names its file gives, else, for weights without names (torchvision's), the 1000
    ImageNet classes in sorted wnid order when there are 1000 outputs; else [] (unknown)."""
    if named:
        return list(named)
    return list(IMAGENET_WNIDS) if num_classes == len(IMAGENET_WNIDS) else []


def checkpoint_file(path: str | Path) -> Path:
    """A run folder resolves to its best.pt, else its last.pt, else its final.safetensors (the final weights: the
    only ones of a run that validated on the test split); a file is itself."""
    found = weight_files(path)
    if found:
        return found[0]
    if Path(path).is_dir():
        raise UserError(f"{path} holds no {BEST}, {LAST} or {FINAL}; is it a training run folder?")
    raise UserError(f"checkpoint {path} {what_is(Path(path))}; pass a run folder or a .pt file")


def weight_files(path: str | Path) -> list[Path]:
    """The weight files of a run folder that exist, in checkpoint_file's order of preference; a file: itself."""
    path = Path(path)
    if path.is_dir():
        return [path / name for name in (BEST, LAST, FINAL) if (path / name).is_file()]
    return [path] if path.is_file() else []  # a device or FIFO is no weight file (and would hang a read)


def load_trained(path: str | Path) -> TrainedModel:
    """Rebuild a model from a run folder, a training checkpoint (.pt) or an exported .safetensors file."""
    file = checkpoint_file(path)
    if file.suffix == ".safetensors" or file_kind(file) == "safetensors":
        return _exported(file, *_read_safetensors(file))
    state = load_checkpoint(file)
    classifier_state(path, file, state)
    model = ResNet(model_config(file, state["model_config"]))
    load_weights(model, state["model"], source=str(file))
    mean, std = checked_normalisation(file, state["pixel_mean"], state.get("pixel_std"))
    return TrainedModel(
        state["model_name"],
        model,
        mean,
        checked_classes(file, state["classes"], model.config.num_classes),
        state["train_config"],
        std,
        state["iteration"],
        state.get("val_error"),
        state.get("train_images"),
    )


def classifier_state(given: str | Path, file: Path, state: dict[str, Any]) -> None:
    """Refuse a checkpoint that is no classifier's: a detector's (naming the command that takes it), or a damaged one.

    Every command that loads a classifier run (export, predict, evaluate, serve, analyze) meets this in load_trained.
    """
    if "detector_config" in state:
        raise UserError(
            f"{given} is a detection run (`resnets detect train`), not a classifier; use it with "
            f"`resnets detect predict --checkpoint {given} IMAGES` or `resnets detect evaluate --checkpoint {given}`"
        )
    wrong = [key for key, kind in CLASSIFIER_STATE.items() if not isinstance(state.get(key), kind)]
    if not wrong and not all(isinstance(v, torch.Tensor) for v in state["model"].values()):
        wrong = ["model"]
    if wrong:
        raise UserError(f"{file} is not a classifier checkpoint of `resnets train` ({', '.join(wrong)} bad or missing)")


def model_config(file: Path, values: Any) -> ResNetConfig:
    """The ResNetConfig a file describes; a bad one is one line naming the file."""
    try:
        return ResNetConfig(**values)
    except (TypeError, ValueError) as e:
        raise UserError(f"{file} describes no valid network ({str(e).splitlines()[0][:200]})") from None


def checked_normalisation(
    file: Path,
    mean: torch.Tensor,
    std: torch.Tensor | None,
    size: tuple[int, ...] | None = None,
    keys: tuple[str, str] = ("pixel_mean", "pixel_std"),
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`mean` ([3, 1, 1] or, per pixel, [3, H, W]; of H, W = `size` if given) and `std` (3 values, positive or None),
    both finite, as float32; a wrong one is one line naming the file and its key (of `keys`)."""
    per_pixel = mean.dim() == 3 and mean.shape[0] == 3 and (size is None or tuple(mean.shape[1:]) == tuple(size))
    if not ((mean.shape == (3, 1, 1) or per_pixel) and bool(mean.isfinite().all())):
        want = "[3, 1, 1]" + (f" or [3, {size[0]}, {size[1]}]" if size else " or [3, H, W]")
        raise UserError(f"{file}: {keys[0]!r} has shape {list(mean.shape)}, not {want} finite values; re-export it")
    if std is not None and not (std.numel() == 3 and bool(std.isfinite().all()) and bool((std > 0).all())):
        raise UserError(f"{file}: {keys[1]!r} is not 3 positive finite values; re-export it")
    return mean.float(), None if std is None else std.float().reshape(3, 1, 1)


def checked_classes(file: Path, classes: Any, num_classes: int) -> list[str]:
    """`classes` if they are names, one per output (or none), as model_classes gives them; else one line."""
    if not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise UserError(f"{file}: 'classes' is not a list of names; re-export it")
    if classes and len(classes) != num_classes:
        raise UserError(f"{file}: 'classes' names {len(classes)} classes for {num_classes} outputs; re-export it")
    return model_classes(classes, num_classes)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors file or a .pth/.pt/.th state dict: bare, or a checkpoint's (see `inner_state`)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file {path} {what_is(path)}; pass a .pth or .safetensors file")
    if path.suffix == ".safetensors" or file_kind(path) == "safetensors":
        return _read_safetensors(path)[0]
    state = load_safely(path)
    state = inner_state(path, state) if isinstance(state, dict) else state
    if not _is_state(state):
        raise UserError(
            f"{path} holds no state dict (parameter names -> tensors); pass a torchvision-format weights file"
        )
    return dict(state)


def inner_state(path: Path, checkpoint: dict) -> Any:
    """A checkpoint's state dict: itself, else its 'state_dict' or 'model' entry, else its one entry of tensors, beside
    others such as 'epoch', 'best_prec1' or an optimizer's state; several such entries are one line naming them."""
    if _is_state(checkpoint):
        return checkpoint
    for key in ("state_dict", "model"):  # a training checkpoint keeps the weights under 'model'
        if isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    found = [key for key, value in checkpoint.items() if _is_state(value)]
    if len(found) > 1:
        names = ", ".join(map(repr, found[:SHOWN]))
        raise UserError(f"{path} holds several state dicts ({names}); save the one to load on its own")
    return checkpoint[found[0]] if found else checkpoint


def _is_state(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(v, torch.Tensor) for v in value.values())


def load_weights(model: ResNet, state: dict[str, torch.Tensor], *, source: str, reset_head: bool = False) -> list[str]:
    """Load `state` key for key; with `reset_head`, an fc of another shape stays fresh and its keys are returned."""
    own = model.state_dict()
    # Files saved before PyTorch 0.4.1 lack BN's num_batches_tracked: a step counter, not a weight, so a missing
    # one is no error (the model keeps its own).
    missing = [k for k in own if k not in state and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in own if k in state and state[k].shape != own[k].shape]
    fresh = [k for k in reshaped if k in HEAD] if reset_head else []
    reshaped = [k for k in reshaped if k not in fresh]
    if missing or unexpected or reshaped:
        parts = [f"{len(missing)} missing keys ({_first(missing)})"] if missing else []
        parts += [f"{len(unexpected)} unexpected keys ({_first(unexpected)})"] if unexpected else []
        shapes = [f"{k} {list(state[k].shape)} in the file, {list(own[k].shape)} in the model" for k in reshaped]
        parts += [f"{len(reshaped)} shape mismatches ({_first(shapes)})"] if reshaped else []
        raise UserError(f"{source} does not fit the model: {'; '.join(parts)}; check --model and its options")
    model.load_state_dict({k: v for k, v in state.items() if k not in fresh}, strict=False)  # checked above
    return fresh


def pretrained_model(
    model_name: str, weights: str, normalization: Normalization | Mapping[str, Any] | None = None, **options: Any
) -> TrainedModel:
    """`model_name` with `weights`: a release tag ('torchvision-v1', downloaded once) or a .pth/.safetensors file,
    another implementation's included (see pretrained.placed); `normalization` for a file that carries none, which
    otherwise gets ImageNet's mean and std, with a warning saying so."""
    from . import pretrained

    normalization = Normalization.of(normalization)
    tagged = pretrained.is_tag(weights)
    if tagged:
        options = pretrained.release_options(weights, options)
        file = pretrained.weights_file(model_name, weights)
    else:
        file = Path(weights)
        if not file.is_file():
            tags = ", ".join(pretrained.RELEASES)
            raise UserError(f"weights {weights} is neither a file nor a weights tag ({tags})")
    if file.suffix == ".safetensors" or file_kind(file) == "safetensors":
        state, metadata = _read_safetensors(file)
        if metadata.get("format") == WEIGHTS_FORMAT:
            if normalization is not None:
                raise UserError(f"{file} carries its own normalisation; drop --normalize, --mean and --std")
            return _exported_as(file, model_name, options, _exported(file, state, metadata))
    else:
        state = read_state_dict(file)
    with torch.device("meta"):  # only the keys and shapes, to place the file's on
        skeleton = create_model(model_name, **options)
    state = pretrained.placed(state, skeleton, str(file))
    if "fc.weight" in state:  # the file decides the class count unless options say otherwise (then: mismatch)
        options = {"num_classes": state["fc.weight"].shape[0], **options}
    model = create_model(model_name, **options)
    load_weights(model, state, source=str(file))
    if normalization is None:
        normalization = IMAGENET if tagged else assumed(file, IMAGENET)
    # The file names no classes; a CIFAR network is tested on the whole 32x32 image, as our CIFAR runs are.
    train_config = {"augmentation": "cifar"} if model.config.stem == "cifar" else {}
    classes = model_classes([], model.config.num_classes)
    return TrainedModel(model_name, model, normalization.mean, classes, train_config, normalization.std)


@dataclass(frozen=True)
class Normalization:
    """What inputs in [0, 1] have subtracted ([3, 1, 1] per channel, [3, H, W] per pixel), then divided by (or not)."""

    mean: torch.Tensor
    std: torch.Tensor | None
    about: str  # in words, for the line saying which was assumed

    def to_json(self) -> dict[str, Any]:
        """Plain values, as serve passes them to its worker processes; `of` reads them back."""
        return {"mean": self.mean.tolist(), "std": None if self.std is None else self.std.tolist(), "about": self.about}

    @classmethod
    def of(cls, value: Normalization | Mapping[str, Any] | None) -> Normalization | None:
        """`value` itself, or the Normalization whose `to_json()` it is."""
        if value is None or isinstance(value, Normalization):
            return value
        std = None if value["std"] is None else torch.tensor(value["std"], dtype=torch.float32)
        return cls(torch.tensor(value["mean"], dtype=torch.float32), std, value["about"])


def channel_normalization(mean: tuple[float, ...], std: tuple[float, ...] | None, about: str) -> Normalization:
    """Per-channel `mean` (and `std`), 3 values each on the [0, 1] scale of the inputs."""
    mean_t = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std_t = None if std is None else torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return Normalization(mean_t, std_t, about)


# torchvision's ImageNet weights and pytorch_resnet_cifar10's CIFAR ones were both trained with it.
IMAGENET = channel_normalization(
    IMAGENET_MEAN, IMAGENET_STD, f"ImageNet's per-channel mean {IMAGENET_MEAN} and std {IMAGENET_STD}"
)


def cifar_pixel_mean(data: str | Path) -> Normalization:
    """The per-pixel mean of the training images of `data` (CIFAR-10's folder, or 32x32 class folders), no std: the
    paper's CIFAR normalisation, computed as `resnets train` computes it."""
    from ..data import load_split, pixel_mean

    return Normalization(pixel_mean(load_split(data, "train").images), None, f"the per-pixel mean of {data}/train")


def assumed(file: Path, normalization: Normalization) -> Normalization:
    """`normalization`, after a warning that `file` carries none and this one is assumed."""
    warnings.warn(
        f"{file} carries no input normalisation; assuming {normalization.about} (evaluate, predict, serve and "
        "export take another as --normalize imagenet|cifar-pixel-mean or --mean R,G,B --std R,G,B)",
        stacklevel=3,  # the caller of pretrained_model
    )
    return normalization


def export_safetensors(trained: TrainedModel, out: Path) -> None:
    """Write the weights (torchvision key names) with the architecture and normalisation as metadata."""
    tensors = {k: v.contiguous() for k, v in trained.model.state_dict().items()}
    metadata = {
        "format": WEIGHTS_FORMAT,
        "model_name": trained.name,
        "model_config": json.dumps(trained.model.config.to_dict()),
        "classes": json.dumps(trained.classes),
        "pixel_mean_shape": json.dumps(list(trained.pixel_mean.shape)),
        "pixel_mean": json.dumps(trained.pixel_mean.flatten().tolist()),
        "train_config": json.dumps(trained.train_config),
    }
    if trained.pixel_std is not None:
        metadata["pixel_std"] = json.dumps(trained.pixel_std.flatten().tolist())
    for key in MEASURED:
        if getattr(trained, key) is not None:
            metadata[key] = json.dumps(getattr(trained, key))
    metadata["checksum"] = checksum({"tensors": tensors, "metadata": metadata})  # verified by _read_safetensors
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as f:
        f.write(save(tensors, metadata=metadata))


def read_metadata(file: Path) -> dict[str, Any]:
    """The metadata of a resnets .safetensors export, JSON values decoded, without reading its tensors."""
    try:
        with safe_open(str(file), "pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{file} is not a readable safetensors file ({str(e).splitlines()[0][:200]})") from None
    meta = Metadata(file, metadata)
    return {k: v if k in PLAIN else meta.get(k) for k, v in metadata.items()}


class Metadata:
    """A file's string metadata (safetensors, ONNX), each value read as JSON and checked as it is read: a missing,
    non-JSON or ill-typed value is one line naming the file and the key."""

    def __init__(self, file: Path, props: Mapping[str, str]):
        self.file, self.props = file, props

    def get(self, key: str, check: Callable[[Any], bool] = lambda v: True, what: str = "JSON", optional=False) -> Any:
        """The value of `key`, decoded; `check` says whether it is `what` (e.g. "a list of numbers")."""
        if self.text(key, optional) is None:
            return None
        try:
            value, ok = parse_json(self.props[key]), True
        except ValueError:
            value, ok = None, False
        if not (ok and check(value)):
            raise UserError(
                f"{self.file}: metadata {key!r} is not {what} ({self.props[key][:40]!r}); "
                "export it again with `resnets export`"
            )
        return value

    @overload
    def text(self, key: str, optional: Literal[False] = False) -> str: ...
    @overload
    def text(self, key: str, optional: bool) -> str | None: ...
    def text(self, key: str, optional: bool = False) -> str | None:
        """The plain string under `key` (None if absent and `optional`)."""
        if self.props.get(key):
            return self.props[key]
        if optional:
            return None
        raise UserError(f"{self.file}: its metadata has no {key!r}; export it again with `resnets export`")

    @overload
    def tensor(self, key: str, shape_key: str | None = None, optional: Literal[False] = False) -> torch.Tensor: ...
    @overload
    def tensor(self, key: str, shape_key: str | None = None, *, optional: bool) -> torch.Tensor | None: ...
    def tensor(self, key: str, shape_key: str | None = None, optional: bool = False) -> torch.Tensor | None:
        """The finite numbers under `key` as a float32 tensor, of the shape stored under `shape_key` if given."""
        values = self.get(key, _numbers, "a list of finite numbers", optional)
        if values is None:
            return None
        shape = self.get(shape_key, _shape, "a shape (positive integers)") if shape_key else [len(values)]
        if math.prod(shape) != len(values):
            raise UserError(
                f"{self.file}: metadata {key!r} holds {len(values)} values, not the {math.prod(shape)} of its shape "
                f"{shape}; export it again with `resnets export`"
            )
        return torch.tensor(values, dtype=torch.float32).reshape(shape)

    def train_config(self, key: str) -> dict:
        """The training config under `key`: an object whose view sizes, if any, are positive integers."""
        return self.get(key, _train_config, "an object with positive integer test_resize and crop_size")


def _train_config(value: Any) -> bool:
    return isinstance(value, dict) and all(_count(value[k]) for k in ("test_resize", "crop_size") if k in value)


def _numbers(value: Any) -> bool:
    return isinstance(value, list) and all(_number(v) and math.isfinite(v) for v in value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _shape(value: Any) -> bool:
    return isinstance(value, list) and all(_count(v) for v in value)


def _read_safetensors(file: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and the metadata of a safetensors file, checked against the checksum an export stores."""
    try:
        tensors = load_file(str(file))
        with safe_open(str(file), "pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{file} is not a readable safetensors file ({str(e).splitlines()[0][:200]})") from None
    stored = metadata.get("checksum")  # exports before the checksum, and other tools' files, have none
    if stored is not None:
        content = {"tensors": tensors, "metadata": {k: v for k, v in metadata.items() if k != "checksum"}}
        if stored != checksum(content):
            raise UserError(f"{file} is corrupted (its checksum does not match its contents); export it again")
    return tensors, metadata


def _exported(file: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> TrainedModel:
    """The model that export_safetensors wrote to `file`, rebuilt from its metadata."""
    if metadata.get("format") != WEIGHTS_FORMAT:
        raise UserError(f"{file} has no resnets metadata; build the model with --model and load it with --weights")
    meta = Metadata(file, metadata)
    config = model_config(file, meta.get("model_config", lambda v: isinstance(v, dict), "an object"))
    model = ResNet(config)
    load_weights(model, tensors, source=str(file))  # missing keys or wrong shapes: one line, not a traceback
    mean, std = checked_normalisation(
        file, meta.tensor("pixel_mean", "pixel_mean_shape"), meta.tensor("pixel_std", optional=True)
    )
    classes = checked_classes(file, meta.get("classes"), config.num_classes)
    measured = {key: meta.get(key, _number, "a number") for key in MEASURED if key in metadata}
    train_config = meta.train_config("train_config")
    return TrainedModel(meta.text("model_name"), model, mean, classes, train_config, std, **measured)


def _exported_as(file: Path, model_name: str, options: dict[str, Any], trained: TrainedModel) -> TrainedModel:
    """`trained` (an export, which says its own architecture) if `model_name` and `options` agree with it."""
    stored = trained.model.config.to_dict()
    conflicts = [f"{k}={v!r}" for k, v in options.items() if stored.get(k, v) != v]
    if trained.name != model_name or conflicts:
        asked = ", ".join([model_name, *conflicts])
        raise UserError(f"{file} is a resnets export of {trained.name}, not {asked}; pass --model {trained.name} only")
    return trained


def _first(items: list[str]) -> str:
    more = f", and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more
