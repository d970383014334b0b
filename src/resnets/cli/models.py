"""`resnets list` and `resnets summary`: the zoo and its complexity."""

from __future__ import annotations

import argparse
import json

from ..core.errors import UserError
from .registry import command, model_options


def _add_list(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Print every model name, one per line, with the weights tags it has: resnets-cifar10 (shipped, with the "
        "error it measured) and torchvision-v1 (downloaded on first use)."
    )


@command("list", _add_list)
def run_list(args: argparse.Namespace) -> None:
    """List every model name and its pretrained weights."""
    from ..models import list_models
    from ..weights.releases import RELEASES

    names = list_models()
    width = max(map(len, names))
    for name in names:
        tags = [_weights_label(tag, name) for tag, release in RELEASES.items() if name in release.models()]
        print(f"{name:{width}}  {'; '.join(tags)}".rstrip())


def _weights_label(tag: str, model: str) -> str:
    """The tag, and for a resnets release the error its run measured, on which images, at which iteration."""
    from ..analysis.runs import validation_label
    from ..training.config import TrainConfig
    from ..weights.files import read_metadata
    from ..weights.pretrained import weights_file
    from ..weights.releases import RELEASES

    metadata = read_metadata(weights_file(model, tag)) if RELEASES[tag].packaged else {}
    if "val_error" not in metadata:
        return tag
    config = TrainConfig.from_dict(metadata["train_config"])
    return f"{tag} ({validation_label(config)} {metadata['val_error']:.2f}% at {metadata['iteration']:,} iterations)"


def _add_summary(p: argparse.ArgumentParser) -> None:
    p.description = "Parameters and multiply-adds per stage, as the paper counts them."
    p.add_argument("model", nargs="?", help="model name (see `resnets list`)")
    p.add_argument("--all", action="store_true", help="every network of the paper next to its reported figures")
    p.add_argument("--input-size", type=int, help="image side in pixels (default: 224 ImageNet, 32 CIFAR)")
    p.add_argument("--shortcut", choices=("A", "B", "C"), help="shortcut option of Sec. 3.3")
    p.add_argument("--stride-on", choices=("1x1", "3x3"), help="bottleneck conv that subsamples")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--markdown", action="store_true", help="with --all: a markdown table")


@command("summary", _add_summary)
def run_summary(args: argparse.Namespace) -> None:
    """Parameters and multiply-adds per stage, as the paper counts them."""
    from ..models.complexity import model_complexity
    from ..models.summary import format_stages, paper_table

    if args.all:
        print(paper_table(model_options(args), markdown=args.markdown))
        return
    if not args.model:
        raise UserError("summary needs a MODEL name (see `resnets list`) or --all")
    if args.input_size is not None and args.input_size < 1:
        raise UserError(f"--input-size {args.input_size} must be a positive number of pixels")
    try:
        c = model_complexity(args.model, args.input_size, **model_options(args))
    except ValueError as e:
        raise UserError(str(e)) from None
    print(json.dumps(c.to_dict(), indent=2) if args.json else format_stages(c))
