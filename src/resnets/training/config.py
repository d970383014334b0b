"""The training configuration: a typed dataclass, filled from a recipe file and command-line overrides."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import sys
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..errors import UserError
from ..models import list_models, model_config
from ..releases import RELEASES
from ..runtime import default_workers

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

RECIPES_DIR = Path(__file__).resolve().parents[1] / "configs"
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
AUGMENTATIONS = ("cifar", "imagenet")
LR_SCHEDULES = ("step", "plateau")
# Fewest iterations between two validations that the user did not ask for (a recipe's interval scaled down with a
# shortened schedule, or the default): a 30-iteration smoke run must not validate after every step.
MIN_EVAL_INTERVAL = 50
# What a resumed run cannot change: the network, what it learns from, and the order it sees the data in. A
# checkpoint of one cannot continue as another (plain20's weights are no resnet20's; another batch size or split
# would visit other images at the same iteration).
RUN_IDENTITY = (
    "model",
    "depth",
    "shortcut",
    "stride_on",
    "zero_init_residual",
    "augmentation",
    "val_split",
    "split_seed",
    "seed",
    "batch_size",
)


@dataclass
class TrainConfig:
    """One training run. Defaults are the CIFAR-10 recipe of Sec. 4.2; every field is a `--flag`."""

    model: str = "resnet20"
    depth: int | None = None  # cifar_resnet / cifar_plain: any 6n+2 layers
    shortcut: str | None = None  # Sec. 3.3 option; None keeps the model's default
    stride_on: str | None = None
    zero_init_residual: bool = False
    weights: str | None = None  # start from these weights (fine-tuning): a .pth/.safetensors file or 'torchvision-v1'
    data: str = ""
    out: str = ""
    recipe: str = "cifar10-paper"
    # Optimisation (Sec. 4.2): SGD, mini-batch 128, lr 0.1 divided by 10 at 32k and 48k, stop at 64k.
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    iters: int = 64000
    epochs: float | None = None  # when set, replaces `iters`: this many passes over the training images
    lr_schedule: str = "step"  # 'step': divide at `milestones`; 'plateau' (ImageNet, Sec. 3.4): when val error stalls
    milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of `iters` where the lr is divided
    lr_decay: float = 0.1
    plateau_patience: int = 5  # 'plateau': validations without an improvement before the lr is divided ...
    plateau_min_delta: float = 0.1  # ... where an improvement lowers the best val error by this many points (%)
    warmup_lr: float | None = None  # ResNet-110/1202: start at 0.01 ...
    warmup_until_error: float = 0.8  # ... until the training error is below 80%
    # Data (Sec. 4.2): 45k/5k split, 4-pixel zero padding, random 32x32 crop, horizontal flip.
    val_split: int = 5000
    split_seed: int = 0
    crop_padding: int = 4
    flip: bool = True
    skip_bad_images: bool = False
    # ImageNet data (Sec. 3.4), used with augmentation 'imagenet': shorter side random in [256, 480], random 224
    # crop and flip, per-pixel mean, AlexNet's PCA colour noise; validation on the 224 centre crop of the 256 resize.
    augmentation: str = "cifar"  # 'cifar': the Sec. 4.2 pad-crop-flip above; 'imagenet': Sec. 3.4
    scale_range: tuple[int, ...] = (256, 480)
    crop_size: int = 224
    lighting_std: float = 0.1
    test_resize: int = 256
    val_labels: str | None = None  # labels file of a flat ROOT/val folder (ImageNet's own layout)
    decode_cache: bool = False  # decode every image once into the on-disk cache (small data sets)
    workers: int | None = None  # decoding processes; None: one per CPU core, at most 8
    # Run mechanics.
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool = True
    compile: bool = False
    deterministic: bool = False
    sync_bn: bool = False  # under torchrun: BatchNorm statistics over the global batch, not each rank's share
    eval_every: int = 0  # iterations between validations and checkpoints; 0: once an epoch with `epochs`, else
    # iters/20, at most 1000
    log_every: int = 20
    eval_batch_size: int = 500
    tensorboard: bool = False
    checkpoint_minutes: float = 10.0  # also write last.pt this often between validations (pre-emptible machines)

    def __post_init__(self) -> None:
        hints = _hints()
        for f in fields(self):
            setattr(self, f.name, _coerce(f.name, getattr(self, f.name), hints[f.name]))
        self.validate()

    def validate(self) -> None:
        """Reject out-of-range values with a message naming the field and the allowed range."""
        _positive(self, "batch_size", "iters", "log_every", "eval_batch_size", "plateau_patience", "crop_size")
        _positive(self, "test_resize", "checkpoint_minutes")
        _positive(self, "lr", allow_zero=False)
        _positive(
            self,
            "momentum",
            "weight_decay",
            "val_split",
            "crop_padding",
            "eval_every",
            "split_seed",
            "seed",
            "lighting_std",
            "plateau_min_delta",
            allow_zero=True,
        )
        if self.epochs is not None and self.epochs <= 0:
            raise UserError(f"epochs={self.epochs} must be positive (or left out to count iterations)")
        if self.workers is not None and self.workers < 0:
            raise UserError(f"workers={self.workers} must be 0 (decode in the training process) or more")
        low, high = (self.scale_range + (0, 0))[:2]
        if len(self.scale_range) != 2 or not self.crop_size <= low <= high:
            raise UserError(
                f"scale_range={list(self.scale_range)} must be two shorter sides LOW,HIGH with "
                f"crop_size={self.crop_size} <= LOW <= HIGH"
            )
        if not 0 < self.lr_decay <= 1:
            raise UserError(f"lr_decay={self.lr_decay} must be in (0, 1]")
        if self.momentum >= 1:
            raise UserError(f"momentum={self.momentum} must be below 1")
        if any(not 0 < m < 1 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise UserError(f"milestones={list(self.milestones)} must be increasing fractions of iters in (0, 1)")
        if self.warmup_lr is not None and self.warmup_lr <= 0:
            raise UserError(f"warmup_lr={self.warmup_lr} must be positive (or left out for no warm-up)")
        if not 0 < self.warmup_until_error <= 1:
            raise UserError(f"warmup_until_error={self.warmup_until_error} must be a fraction in (0, 1]")
        self._check_model()
        release = RELEASES.get(self.weights or "")
        for name, value in release.options.items() if release else ():
            if getattr(self, name) not in (None, value):
                raise UserError(
                    f"{name}={getattr(self, name)!r} conflicts with --weights {self.weights}: {release.about}"
                )
        for name, choices in (
            ("device", DEVICES),
            ("precision", PRECISIONS),
            ("shortcut", (None, "A", "B", "C")),
            ("stride_on", (None, "1x1", "3x3")),
            ("augmentation", AUGMENTATIONS),
            ("lr_schedule", LR_SCHEDULES),
        ):
            if getattr(self, name) not in choices:
                raise UserError(f"{name}={getattr(self, name)!r} is not one of {', '.join(c for c in choices if c)}")

    def _check_model(self) -> None:
        """The model name and its options build a network: caught here, before any data is decoded."""
        if self.model not in list_models():
            raise UserError(f"--model {self.model} is not a model; choose one of {', '.join(list_models())}")
        try:
            model_config(self.model, **self.model_options())
        except TypeError:  # a depth missing (cifar_resnet) or given twice (resnet20 has its own)
            if self.depth is None:
                raise UserError(f"--model {self.model} needs --depth N (6n+2: 20, 32, 44, 56, 110, ...)") from None
            raise UserError(
                f"--depth {self.depth} is only for cifar_resnet and cifar_plain; {self.model} has its own depth"
            ) from None
        except ValueError as e:
            raise UserError(f"--model {self.model}: {e}") from None

    @property
    def milestone_iters(self) -> list[int]:
        """The iterations at which the learning rate is divided (32k and 48k of 64k in the paper)."""
        return [round(m * self.iters) for m in self.milestones]

    @property
    def selects_on_validation(self) -> bool:
        """Whether a best checkpoint may be chosen by validation error: only on a held-out part of train.

        With `val_split` 0 the validation images are the data's test split (CIFAR-10's test set, ImageNet's val),
        and choosing a checkpoint by its error there would report a number tuned on the test set.
        """
        return self.val_split > 0

    def eval_interval(self, steps_per_epoch: int) -> int:
        """Iterations between validations: `eval_every`, else one epoch when counting epochs, else iters/20 <= 1000
        but at least 50 iterations or an epoch, whichever is shorter (the final iteration always validates)."""
        if self.eval_every:
            return self.eval_every
        if self.epochs:
            return steps_per_epoch
        return max(min(MIN_EVAL_INTERVAL, steps_per_epoch), min(1000, self.iters // 20))

    def model_options(self) -> dict[str, Any]:
        """The options this run passes to `create_model`, besides num_classes."""
        options: dict[str, Any] = {"zero_init_residual": self.zero_init_residual}
        if self.weights in RELEASES:  # named weights fix the architecture they were trained with
            options.update(RELEASES[self.weights].options)
        options.update(
            {k: getattr(self, k) for k in ("depth", "shortcut", "stride_on") if getattr(self, k) is not None}
        )
        return options

    @property
    def decode_workers(self) -> int:
        """Processes that decode and augment images: `workers`, else one per CPU core, at most 8."""
        return self.workers if self.workers is not None else default_workers()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict of every field."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build from a dict, rejecting unknown keys by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"{source}: unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(known))}")
        return cls(**values)

    def save(self, path: Path) -> None:
        """Write the resolved config as JSON, atomically."""
        with atomic_write(path) as f:
            f.write((json.dumps(self.to_dict(), indent=2) + "\n").encode())


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Check `value` against the field's type; ints are accepted where floats are expected."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if option is type(None) and value is None:
            return None
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise UserError(f"{name}={value} is not a finite number")
            return float(value)
        origin = typing.get_origin(option)
        if origin is tuple and isinstance(value, (list, tuple)):
            item = typing.get_args(option)[0]
            return tuple(_coerce(name, v, item) for v in value)
        if origin is None and option is not float and isinstance(value, option):
            if option is int and isinstance(value, bool):
                continue
            return value
    expected = " or ".join(getattr(o, "__name__", str(o)).replace("NoneType", "none") for o in options)
    raise UserError(f"{name}={value!r} has the wrong type; expected {expected}")


def _positive(config: TrainConfig, *names: str, allow_zero: bool = False) -> None:
    for name in names:
        value = getattr(config, name)
        if value < 0 or (value == 0 and not allow_zero):
            raise UserError(f"{name}={value} must be {'non-negative' if allow_zero else 'positive'}")


def recipe_path(recipe: str) -> Path:
    """A recipe name from `configs/` (e.g. 'cifar10-paper') or a path to a TOML file."""
    path = Path(recipe)
    if path.suffix == ".toml":
        if not path.is_file():
            raise UserError(f"recipe file {path} does not exist")
        return path
    path = RECIPES_DIR / f"{recipe}.toml"
    if not path.is_file():
        names = sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))
        raise UserError(f"unknown recipe {recipe!r}; choose one of {', '.join(names)} or give a .toml file")
    return path


def resolve_config(
    given: dict[str, Any], saved: dict[str, Any] | None = None, source: str = "config.json"
) -> TrainConfig:
    """The one way to a run's configuration: the recipe's values, its per-model rules, then `given` (e.g. the command
    line); or, resuming, the run's `saved` config with `given` on top, where the settings that make the run what it
    is (RUN_IDENTITY) must not change."""
    if saved is None:
        return _from_recipe(given)
    before = TrainConfig.from_dict(saved, source=source)
    config = TrainConfig.from_dict({**saved, **given}, source=source)
    for name in RUN_IDENTITY:
        if getattr(config, name) != getattr(before, name):
            flag = "--" + name.replace("_", "-")
            raise UserError(
                f"{flag} {getattr(config, name)} differs from {getattr(before, name)}, with which the run in "
                f"{Path(source).parent} was trained; resume without {flag}, or start a new run in another --out"
            )
    return config


def _from_recipe(overrides: dict[str, Any]) -> TrainConfig:
    """Recipe values, then the recipe's per-model rules, then `overrides`."""
    recipe = overrides.get("recipe", TrainConfig.recipe)
    path = recipe_path(recipe)
    try:
        values = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"recipe file {path} is not valid TOML: {e}") from None
    values.pop("description", None)
    warmup = values.pop("warmup", {})
    model = overrides.get("model", values.get("model", TrainConfig.model))
    if model in warmup.get("models", []):
        values["warmup_lr"] = warmup["lr"]
        values["warmup_until_error"] = warmup.get("until_error", TrainConfig.warmup_until_error)
    values.update(_rescaled(values, overrides))
    values.update(overrides)
    values["recipe"] = recipe
    return TrainConfig.from_dict(values, source=f"recipe {path}")


def _rescaled(recipe: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The recipe's schedule adapted to an overridden batch size or length, unless those values are given too.

    A batch k times the recipe's multiplies the lr by k and divides the iterations by k (the linear scaling rule of
    Goyal et al., 2017), so a run sees as many images per lr step; `--iters` alone rescales the milestones (they are
    fractions) and a recipe's `eval_every` (never below MIN_EVAL_INTERVAL); `--epochs` counts passes instead of
    iterations.
    """
    scaled: dict[str, Any] = {}
    if "iters" in overrides:
        scaled["epochs"] = None
    base_batch = recipe.get("batch_size", TrainConfig.batch_size)
    batch = overrides.get("batch_size", base_batch)
    if isinstance(batch, int) and batch != base_batch and batch > 0:
        k = batch / base_batch
        for name in ("lr", "warmup_lr"):
            if name not in overrides and recipe.get(name, getattr(TrainConfig, name)) is not None:
                scaled[name] = recipe.get(name, getattr(TrainConfig, name)) * k
        if "iters" not in overrides:
            scaled["iters"] = max(1, round(recipe.get("iters", TrainConfig.iters) / k))
    base_iters = recipe.get("iters", TrainConfig.iters)
    iters = overrides.get("iters", scaled.get("iters", base_iters))
    if recipe.get("eval_every") and "eval_every" not in overrides and isinstance(iters, int) and iters != base_iters:
        scaled["eval_every"] = max(MIN_EVAL_INTERVAL, round(recipe["eval_every"] * iters / base_iters))
    return scaled
