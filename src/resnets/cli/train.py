"""`resnets train`: one run of a recipe, fresh or resumed."""

from __future__ import annotations

import argparse
import dataclasses
import functools

from ..core.errors import UserError
from .flags import add_config_flags, field_default, shown_value
from .registry import command

# The argument groups of `resnets train --help`, in this order; each TrainConfig field names its group.
GROUPS = {
    "model": "the network (Sec. 3.3, 4.2, Table 1)",
    "data": "the images and their augmentation (Sec. 3.4, 4.2)",
    "schedule": "the optimisation; defaults are the recipe's",
    "precision and speed": "how fast, not what, the run learns",
    "run": "the run folder, its seed and its checkpoints",
}


def _add_train(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, its help and group from the field's metadata, its default from the recipe."""
    from ..training.config import TrainConfig, recipe_values

    p.description = (
        "Train a model with a recipe of the paper; every recipe field can be overridden. Defaults are the "
        f"{TrainConfig.recipe} recipe's (another --recipe brings its own); a --batch-size k times the recipe's "
        "multiplies --lr and --warmup-lr by k and divides --iters by k, unless those are given too."
    )
    values = recipe_values(TrainConfig.recipe)
    groups = add_config_flags(
        p, TrainConfig, GROUPS, functools.partial(_default, recipe=TrainConfig.recipe, values=values)
    )
    run = groups["run"]
    run.add_argument("--resume", action="store_true", help="continue the run in --out from its newest valid checkpoint")
    run.add_argument("--force", action="store_true", help="replace a config.json in --out that no resnets run wrote")


def _default(f: dataclasses.Field, recipe: str, values: dict) -> str | None:
    """The value of `recipe` (whose TOML `values` are given) where it sets the field, else the field's default."""
    if f.name in values:
        return f"{shown_value(values[f.name])}, the {recipe} recipe's"
    return field_default(f)


@command("train", _add_train)
def run_train(args: argparse.Namespace) -> None:
    """Train (or resume) a run; writes checkpoints and metrics.csv into --out."""
    from pathlib import Path

    from ..data.decode import BadImage
    from ..engine.run import config_path, saved_config
    from ..training.config import resolve_config
    from ..training.loop import train

    given = {k: v for k, v in vars(args).items() if v is not None and k not in ("command", "run", "resume", "force")}
    if not given.get("out"):
        raise UserError("train needs --out RUN, the folder for checkpoints and metrics")
    if given.get("data") == "":
        raise UserError("--data is empty; pass --data DIR, or leave --data out to download CIFAR-10")
    # Without --data, CIFAR's is the folder the trainer downloads into (once per node, under torchrun).
    run = Path(given["out"])
    config = resolve_config(given, saved_config(run) if args.resume else None, source=str(config_path(run)))
    if not config.data:
        raise UserError(f"recipe {config.recipe} needs --data DIR holding DIR/train/<class>/<image> (as ImageNet)")
    try:
        train(config, resume=args.resume, force=args.force)  # enters torchrun's process group, if any
    except BadImage as e:  # this command, unlike evaluate or experiment, can skip them
        raise UserError(f"{e}, or pass --skip-bad-images to skip and count such images") from None
