"""`resnets train`: one run of a recipe, fresh or resumed."""

from __future__ import annotations

import argparse
import json

from ..errors import UserError
from .registry import command


def _add_train(p: argparse.ArgumentParser) -> None:
    import dataclasses
    import types
    import typing

    from ..training.config import TrainConfig

    p.description = "Train a model with a recipe of the paper; every recipe field can be overridden."
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag, hint = "--" + f.name.replace("_", "-"), hints[f.name]
        union = isinstance(hint, types.UnionType)
        kind = [a for a in typing.get_args(hint) if a is not type(None)][0] if union else hint
        if kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif typing.get_origin(kind) is tuple:
            item = typing.get_args(kind)[0]
            p.add_argument(
                flag,
                type=lambda text, item=item: [item(v) for v in text.split(",") if v],
                default=None,
                metavar="A,B,...",
            )
        else:
            p.add_argument(flag, type=kind, default=None)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest valid checkpoint")
    p.add_argument("--force", action="store_true", help="replace a config.json in --out that no resnets run wrote")


@command("train", _add_train)
def run_train(args: argparse.Namespace) -> None:
    """Train (or resume) a run; writes checkpoints and metrics.csv into --out."""
    from pathlib import Path

    from ..data import download_cifar10
    from ..training.config import resolve_config
    from ..training.distributed import process_group
    from ..training.loop import train

    given = {k: v for k, v in vars(args).items() if v is not None and k not in ("command", "run", "resume", "force")}
    if not given.get("out"):
        raise UserError("train needs --out RUN, the folder for checkpoints and metrics")
    if given.get("data") == "":
        raise UserError("--data is empty; pass --data DIR, or leave --data out to download CIFAR-10")
    config = resolve_config(given, saved_config(Path(given["out"])) if args.resume else None)
    with process_group(config.device) as group:  # under torchrun; a no-op for a single process
        if not config.data and config.augmentation == "imagenet":
            raise UserError(f"recipe {config.recipe} needs --data DIR holding DIR/train/<class>/<image> (as ImageNet)")
        if not config.data:
            with group.main_first():  # one download per node; the other processes find it there
                config.data = str(download_cifar10(default_data_root(), progress=group.is_main))
        train(config, resume=args.resume, force=args.force, group=group)


def saved_config(run) -> dict:
    """The config.json of the run that --resume continues; a missing or unreadable one is an error."""
    path = run / "config.json"
    if not path.is_file():
        raise UserError(f"--resume: {run} holds no run (no {path.name}); start it without --resume")
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"--resume: {path} is not readable JSON ({e}); restore it or start a new run") from None
    if not isinstance(saved, dict):
        raise UserError(f"--resume: {path} is not a resnets run config; restore it or start a new run")
    return saved


def default_data_root():
    """Where downloaded data sets go: $RESNETS_DATA, else ~/.cache/resnets/data."""
    import os
    from pathlib import Path

    return Path(os.environ.get("RESNETS_DATA", Path.home() / ".cache" / "resnets" / "data"))
