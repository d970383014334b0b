"""`resnets train`: one run of a recipe, fresh or resumed."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import types
import typing

from ..core.errors import UserError
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
    groups = {name: p.add_argument_group(name, about) for name, about in GROUPS.items()}
    for f in dataclasses.fields(TrainConfig):
        add_config_flag(groups[f.metadata["group"]], f, _default(f, TrainConfig.recipe, values))
    run = groups["run"]
    run.add_argument("--resume", action="store_true", help="continue the run in --out from its newest valid checkpoint")
    run.add_argument("--force", action="store_true", help="replace a config.json in --out that no resnets run wrote")


def add_config_flag(parser, f: dataclasses.Field, default: str | None) -> None:
    """The --flag of TrainConfig field `f` (its type, choices and help from the field); `default` words its default
    (None: the help says what unset means)."""
    from ..training.config import TrainConfig, flag

    hint = typing.get_type_hints(TrainConfig)[f.name]
    union = isinstance(hint, types.UnionType)
    kind = [a for a in typing.get_args(hint) if a is not type(None)][0] if union else hint
    text = f.metadata["help"] + (f" (default: {default})" if default else "")
    text = text.replace("%", "%%")  # argparse formats help with %
    choices = f.metadata["choices"] or None
    if kind is bool:
        parser.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, default=None, help=text)
    elif typing.get_origin(kind) is tuple:
        parse = functools.partial(_items, item=typing.get_args(kind)[0])
        parser.add_argument(flag(f.name), type=parse, default=None, metavar="A,B,...", help=text)
    else:
        metavar = None if choices else {int: "N", float: "X"}.get(kind, f.name.upper())
        parser.add_argument(flag(f.name), type=kind, default=None, choices=choices, metavar=metavar, help=text)


def _default(f: dataclasses.Field, recipe: str, values: dict) -> str | None:
    """The value of `recipe` (whose TOML `values` are given) where it sets the field, else the field's default."""
    if f.default in (None, "") and f.name not in values:
        return None
    value = values.get(f.name, f.default)
    if isinstance(value, bool):
        shown = "on" if value else "off"
    elif isinstance(value, (list, tuple)):
        shown = ",".join(map(str, value))
    else:
        shown = str(value)
    return f"{shown}, the {recipe} recipe's" if f.name in values else shown


def _items(text: str, item: type) -> list:
    """A comma-separated list of `item`s, e.g. --milestones 0.5,0.75."""
    try:
        return [item(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of {item.__name__}s") from None


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
