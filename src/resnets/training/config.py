"""The training configuration: a typed dataclass, filled from a recipe file and command-line overrides."""

from __future__ import annotations

import copy
import dataclasses
import functools
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..core.errors import UserError
from ..core.runtime import default_workers
from ..core.settings import (
    DEVICES,
    PRECISIONS,
    check_fields,
    check_milestones,
    check_unchanged,
    field_types,
    flag,
    setting,
    typed,
)
from ..engine.run import RUN_MECHANICS, write_config
from ..models import list_models, model_config
from ..models.blocks import SHORTCUTS, STRIDE_ON
from ..weights.releases import RELEASES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

RECIPES_DIR = Path(__file__).resolve().parents[1] / "configs"
AUGMENTATIONS = ("cifar", "imagenet")
LR_SCHEDULES = ("step", "plateau")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")  # torch.compile's; reduce-overhead: CUDA graphs
# Fewest iterations between two validations that the user did not ask for (a recipe's interval scaled down with a
# shortened schedule, or the default): a 30-iteration smoke run must not validate after every step.
MIN_EVAL_INTERVAL = 50
# Run mechanics: the only settings that may differ between the sessions of one run (a resume, or an experiment
# run again): a GPU here, a CPU there, the data in another folder. Every other setting makes the run what it is:
# another network, split, batch size, seed or schedule cannot continue its checkpoints (the milestones are fractions
# of --iters, so even a longer --iters would move lr drops already taken).
MECHANICS = RUN_MECHANICS | {"compile", "compile_mode", "deterministic", "eval_batch_size", "tensorboard"}


@dataclass
class TrainConfig:
    """One training run. Defaults are the CIFAR-10 recipe of Sec. 4.2; every field is a `--flag` whose help is its
    metadata (`setting`)."""

    model: str = setting("resnet20", "model", "the network, a name of `resnets list` (e.g. resnet20, resnet50)")
    depth: int | None = setting(None, "model", "cifar_resnet/cifar_plain: any 6n+2 layers; unset: the model's own")
    shortcut: str | None = setting(
        None,
        "model",
        "Sec. 3.3 option: A zero-pads, B projects where shapes change, C projects always; unset: the "
        "model's (A on CIFAR, B on ImageNet)",
        SHORTCUTS,
    )
    stride_on: str | None = setting(
        None,
        "model",
        "the bottleneck conv that subsamples: 1x1 (the paper's) or 3x3 (torchvision v1.5); unset: the model's",
        STRIDE_ON,
    )
    zero_init_residual: bool = setting(False, "model", "start each block's last BN scale at 0 (not in the paper)")
    weights: str | None = setting(
        None,
        "model",
        "fine-tune from these weights: a .pth/.safetensors file or a tag of `resnets list`; unset: "
        "random (He et al. 2015)",
    )
    data: str = setting(
        "", "data", "CIFAR-10's cifar-10-batches-py folder or image folders DIR/train/<class>/*; unset: download it"
    )
    out: str = setting("", "run", "the run folder: config.json, checkpoints, metrics.csv (required)")
    recipe: str = setting(
        "cifar10-paper",
        "schedule",
        "cifar10-paper (Sec. 4.2), imagenet-paper (Sec. 3.4), imagenet-paper-epochs or "
        "a .toml file: the defaults of every other flag",
    )
    batch_size: int = setting(
        128,
        "schedule",
        "images per SGD step, all processes together; k times the recipe's multiplies --lr and "
        "--warmup-lr by k and divides --iters by k, unless they are given (Goyal et al. 2017)",
    )
    lr: float = setting(0.1, "schedule", "initial learning rate; rescaled with --batch-size")
    momentum: float = setting(0.9, "schedule", "SGD momentum, in [0, 1)")
    weight_decay: float = setting(1e-4, "schedule", "L2 weight decay of SGD, on every weight")
    iters: int = setting(64000, "schedule", "SGD iterations of the run; rescaled with --batch-size; replaces --epochs")
    epochs: float | None = setting(
        None, "schedule", "passes over the training images, instead of --iters; unset: count --iters"
    )
    lr_schedule: str = setting(
        "step", "schedule", "step: divide at --milestones; plateau: when the val error stalls (Sec. 3.4)", LR_SCHEDULES
    )
    milestones: tuple[float, ...] = setting(
        (0.5, 0.75), "schedule", "step: fractions of the run at which the lr is multiplied by --lr-decay"
    )
    lr_decay: float = setting(0.1, "schedule", "factor the lr is multiplied by at a milestone or plateau, in (0, 1]")
    plateau_patience: int = setting(5, "schedule", "plateau: validations without an improvement before the lr drops")
    plateau_min_delta: float = setting(
        0.1, "schedule", "plateau: an improvement lowers the best val error by this many points (%)"
    )
    warmup_lr: float | None = setting(
        None,
        "schedule",
        "start at this lr until the training error is below --warmup-until-error (Sec. 4.2, "
        "ResNet-110); rescaled with --batch-size; unset: none, unless the recipe's [warmup] names the model",
    )
    warmup_until_error: float = setting(0.8, "schedule", "the training error (a fraction) that ends the warm-up")
    val_split: int = setting(
        5000,
        "data",
        "training images held out for validation (Sec. 4.2: 45k/5k); 0: validate on the test split "
        "(CIFAR) or DIR/val, and keep no best.pt",
    )
    split_seed: int = setting(0, "data", "seed of which training images are held out")
    crop_padding: int = setting(4, "data", "cifar: zero pixels padded on each side before the random crop (Sec. 4.2)")
    flip: bool = setting(True, "data", "random horizontal flips")
    skip_bad_images: bool = setting(False, "data", "skip and count images that cannot be decoded, instead of stopping")
    augmentation: str = setting(
        "cifar",
        "data",
        "cifar: pad, crop and flip (Sec. 4.2); imagenet: scale, crop, flip, colour noise (Sec. 3.4)",
        AUGMENTATIONS,
    )
    scale_range: tuple[int, ...] = setting(
        (256, 480), "data", "imagenet: the shorter side is resized to a random LOW..HIGH pixels before cropping"
    )
    crop_size: int = setting(224, "data", "imagenet: side of the random training crop and of the val centre crop")
    lighting_std: float = setting(0.1, "data", "imagenet: std of AlexNet's PCA colour noise; 0: none")
    test_resize: int = setting(256, "data", "imagenet: shorter side before the val centre crop")
    val_labels: str | None = setting(
        None,
        "data",
        "labels of a flat DIR/val (ImageNet's layout): `<file> <class>` lines or Kaggle csv; unset: class folders",
    )
    decode_cache: bool = setting(
        False, "precision and speed", "decode every image once into the on-disk cache (small photo sets)"
    )
    workers: int | None = setting(
        None, "precision and speed", "decoding processes; 0: in the training process; unset: one per core, at most 8"
    )
    seed: int = setting(0, "run", "seed of the initial weights, the image order and the augmentation")
    device: str = setting("auto", "precision and speed", "where to train; auto: cuda if there is a GPU", DEVICES)
    precision: str = setting(
        "auto",
        "precision and speed",
        "autocast; auto: bf16 on GPUs and bf16-capable CPUs, fp16 on older GPUs, else fp32",
        PRECISIONS,
    )
    channels_last: bool = setting(True, "precision and speed", "NHWC memory format (faster convolutions)")
    compile: bool = setting(False, "precision and speed", "torch.compile the model")
    compile_mode: str = setting(
        "default",
        "precision and speed",
        "torch.compile's mode with --compile; reduce-overhead replays the step as CUDA graphs (GPU)",
        COMPILE_MODES,
    )
    deterministic: bool = setting(False, "precision and speed", "deterministic kernels (bit-exact resume; slower)")
    sync_bn: bool = setting(
        False, "precision and speed", "under torchrun: BatchNorm statistics over the global batch, not each rank's"
    )
    eval_every: int = setting(
        0,
        "run",
        "iterations between validations and checkpoints; 0: an epoch with --epochs, else --iters/20 "
        "(50 to 1000); a recipe's value is rescaled with --iters",
    )
    log_every: int = setting(20, "run", "iterations between two metrics.csv rows")
    eval_batch_size: int = setting(500, "precision and speed", "images per forward pass when validating")
    tensorboard: bool = setting(False, "run", "also write TensorBoard events into --out")
    checkpoint_minutes: float = setting(
        10.0, "run", "also write last.pt this often between validations (pre-emptible machines)"
    )

    def __post_init__(self) -> None:
        check_fields(self)
        self.validate()

    def validate(self) -> None:
        """Reject out-of-range values with a message naming the flag and the allowed range."""
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
            raise UserError(f"--epochs {self.epochs} must be positive (or left out to count iterations)")
        if self.workers is not None and self.workers < 0:
            raise UserError(f"--workers {self.workers} must be 0 (decode in the training process) or more")
        from ..data.scale_augment import check_scale  # here: resnets.data loads the DataLoader, config stays light

        check_scale(self.scale_range, self.crop_size, names=(flag("scale_range"), flag("crop_size")))
        if not 0 < self.lr_decay <= 1:
            raise UserError(f"--lr-decay {self.lr_decay} must be in (0, 1]")
        if self.momentum >= 1:
            raise UserError(f"--momentum {self.momentum} must be below 1")
        check_milestones(self.milestones)
        if self.warmup_lr is not None and self.warmup_lr <= 0:
            raise UserError(f"--warmup-lr {self.warmup_lr} must be positive (or left out for no warm-up)")
        if not 0 < self.warmup_until_error <= 1:
            raise UserError(f"--warmup-until-error {self.warmup_until_error} must be a fraction in (0, 1]")
        self._check_model()
        release = RELEASES.get(self.weights or "")
        if release is not None:
            for name, value in release.options.items():
                if getattr(self, name) not in (None, value):
                    raise UserError(
                        f"{flag(name)} {getattr(self, name)} conflicts with --weights {self.weights}: {release.about}"
                    )

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
        _check_known(values, source)
        return cls(**values)

    def save(self, path: Path) -> None:
        """Write the resolved config as JSON, atomically."""
        write_config(path, self.to_dict())


def _check_known(values: dict[str, Any], source: str) -> None:
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"{source}: unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(known))}")


def _typed(values: dict[str, Any], source: str) -> dict[str, Any]:
    """A recipe's `values` checked against their fields' types before any arithmetic on them (the rescaling)."""
    _check_known(values, source)
    return {k: _recipe_value(k, v, source, k) for k, v in values.items()}


def _recipe_value(name: str, value: Any, source: str, key: str) -> Any:
    """The recipe's `key = value` for field `name`, of the field's type; an error names the file and the key."""
    try:
        return typed(value, field_types(TrainConfig)[name], f"{key} =")
    except UserError as e:
        raise UserError(f"{source}: {e}") from None


def _positive(config: TrainConfig, *names: str, allow_zero: bool = False) -> None:
    for name in names:
        value = getattr(config, name)
        if value < 0 or (value == 0 and not allow_zero):
            raise UserError(f"{flag(name)} {value} must be {'non-negative' if allow_zero else 'positive'}")


def recipe_path(recipe: str) -> Path:
    """A recipe name from `configs/` (e.g. 'cifar10-paper') or a path to a TOML file."""
    path = Path(recipe)
    if path.suffix == ".toml":
        if not path.is_file():
            from ..data.paths import what_is  # here: the data package is heavy, and this module stays light

            raise UserError(f"recipe file {path} {what_is(path)}; pass a .toml file")
        return path
    path = RECIPES_DIR / f"{recipe}.toml"
    if not path.is_file():
        names = sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))
        raise UserError(f"unknown recipe {recipe!r}; choose one of {', '.join(names)} or give a .toml file")
    return path


def resolve_config(
    given: dict[str, Any], saved: dict[str, Any] | None = None, source: str = "config.json"
) -> TrainConfig:
    """The one way to a run's configuration, for fresh runs, resumes and experiments alike.

    Fresh (`saved` None): the recipe's values, its per-model rules, then `given` (e.g. the command line); CIFAR
    without --data gets the folder the download fills. Continuing the run whose config.json (`source`) holds
    `saved`: `given` on top of it, where only MECHANICS may differ from what the run was trained with.
    """
    if saved is None:
        return _with_default_data(_from_recipe(given))
    before = TrainConfig.from_dict(saved, source=source)
    values = {**saved, **given}
    if "iters" in given and "epochs" not in given:
        values["epochs"] = None  # as in a fresh run, --iters replaces --epochs
    if values.get("epochs") is not None and values["epochs"] == before.epochs:
        values["iters"] = before.iters  # derived from the epochs and the data (epoch_iters), not a choice
    config = TrainConfig.from_dict(values, source=source)
    check_unchanged(config, before, source, MECHANICS)
    return config


def epoch_iters(config: TrainConfig, steps_per_epoch: int) -> TrainConfig:
    """The last step of resolution, once the data is known: a run counted in epochs gets its iterations.

    A new config (the given one is left as it is); config.json records the iterations it was trained for.
    """
    if not config.epochs:
        return config
    return dataclasses.replace(config, iters=max(1, round(config.epochs * steps_per_epoch)))


def _with_default_data(config: TrainConfig) -> TrainConfig:
    """CIFAR without --data: the folder that `resnets train` downloads CIFAR-10 into (data.cifar.default_cifar10)."""
    if config.data or config.augmentation != "cifar":
        return config
    from ..data.cifar import default_cifar10  # here: resnets.data loads the DataLoader, config stays light

    return dataclasses.replace(config, data=str(default_cifar10()))


def recipe_values(recipe: str) -> dict[str, Any]:
    """The TOML values of a recipe (name or file) as written, its description left out (a copy: callers change it)."""
    return copy.deepcopy(_parsed_recipe(recipe_path(recipe)))


@functools.cache
def _parsed_recipe(path: Path) -> dict[str, Any]:
    """A recipe file parsed once per process (the help's defaults and the run's resolution both read it)."""
    try:
        values = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"recipe file {path} is not valid TOML: {e}") from None
    values.pop("description", None)
    return values


def _from_recipe(overrides: dict[str, Any]) -> TrainConfig:
    """Recipe values, then the recipe's per-model rules, then `overrides`."""
    recipe = overrides.get("recipe", TrainConfig.recipe)
    values = recipe_values(recipe)
    warmup = values.pop("warmup", {})
    source = f"recipe {recipe_path(recipe)}"
    values = _typed(values, source)
    model = overrides.get("model", values.get("model", TrainConfig.model))
    if model in warmup.get("models", []):
        if "lr" not in warmup:
            raise UserError(f"{source}: [warmup] names {model} but sets no lr; add lr = ... under [warmup]")
        values["warmup_lr"] = _recipe_value("warmup_lr", warmup["lr"], source, "[warmup] lr")
        until = warmup.get("until_error", TrainConfig.warmup_until_error)
        values["warmup_until_error"] = _recipe_value("warmup_until_error", until, source, "[warmup] until_error")
    values.update(_rescaled(values, overrides))
    values.update(overrides)
    values["recipe"] = recipe
    return TrainConfig.from_dict(values, source=source)


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
    # Values that are no positive int are left as they are, for TrainConfig's checks to name.
    if isinstance(batch, int) and batch != base_batch and batch > 0 and base_batch > 0:
        k = batch / base_batch
        for name in ("lr", "warmup_lr"):
            if name not in overrides and recipe.get(name, getattr(TrainConfig, name)) is not None:
                scaled[name] = recipe.get(name, getattr(TrainConfig, name)) * k
        if "iters" not in overrides:
            scaled["iters"] = max(1, round(recipe.get("iters", TrainConfig.iters) / k))
    base_iters = recipe.get("iters", TrainConfig.iters)
    iters = overrides.get("iters", scaled.get("iters", base_iters))
    rescale_interval = isinstance(iters, int) and iters != base_iters and base_iters > 0
    if recipe.get("eval_every") and "eval_every" not in overrides and rescale_interval:
        scaled["eval_every"] = max(MIN_EVAL_INTERVAL, round(recipe["eval_every"] * iters / base_iters))
    return scaled
