"""The subcommand registry and the helpers that several commands share."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from ..core.errors import UserError

COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], None]]] = {}


def command(name: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register `run(args)` as the subcommand `name`, with `add_arguments(parser)` declaring its options."""

    def register(run: Callable[[argparse.Namespace], None]):
        COMMANDS[name] = (add_arguments, run)
        return run

    return register


def add_weights_source(p: argparse.ArgumentParser, what: str) -> None:
    """--weights and --model (with --shortcut, --stride-on): a network built with weights not of a resnets run, and
    the normalisation flags for those that carry none."""
    p.add_argument("--weights", help=f"{what}: a .pth/.th/.safetensors file or a release tag (with --model)")
    p.add_argument("--model", help="with --weights: the network to build (see `resnets list`)")
    from ..models.blocks import SHORTCUTS, STRIDE_ON

    p.add_argument("--shortcut", choices=SHORTCUTS, help="with --weights: shortcut option of Sec. 3.3")
    p.add_argument("--stride-on", choices=STRIDE_ON, help="with --weights: bottleneck conv that subsamples")
    add_normalization(p)


def model_options(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k) for k in ("shortcut", "stride_on") if getattr(args, k, None) is not None}


def int_list(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"{flag} {text!r} is not a comma-separated list of integers such as 224,256,384") from None


PRESETS = ("imagenet", "cifar-pixel-mean")
NORMALIZATION_FLAGS = ("normalize", "mean", "std", "mean_of")


def add_normalization(p: argparse.ArgumentParser) -> None:
    """--normalize, --mean, --std and --mean-of: the input normalisation of --weights that carry none."""
    g = p.add_argument_group(
        "normalisation", "for --weights that carry none (a .pth of another implementation); default: ImageNet's"
    )
    g.add_argument(
        "--normalize",
        metavar="{" + ",".join(PRESETS) + "}",
        help="imagenet: ImageNet's per-channel mean and std (torchvision's, pytorch_resnet_cifar10's); "
        "cifar-pixel-mean: the per-pixel mean of the training images of --mean-of DIR, as the paper's CIFAR runs",
    )
    g.add_argument("--mean", metavar="R,G,B", help="per-channel mean of inputs in [0, 1], e.g. 0.4914,0.4822,0.4465")
    g.add_argument("--std", metavar="R,G,B", help="with --mean: per-channel std of inputs in [0, 1] (default: none)")
    g.add_argument(
        "--mean-of", metavar="DIR", help="with --normalize cifar-pixel-mean: the data folder (evaluate: its --data)"
    )


def normalization(args: argparse.Namespace, data: str | None = None):
    """The Normalization that add_normalization's flags give, or None; `data`: --mean-of's default (evaluate's)."""
    from ..weights.files import IMAGENET, channel_normalization, cifar_pixel_mean

    given = [f"--{k.replace('_', '-')}" for k in NORMALIZATION_FLAGS if getattr(args, k) is not None]
    if not given:
        return None
    if args.weights is None:
        raise UserError(f"{given[0]} is for --weights files that carry no normalisation; a checkpoint has its own")
    if args.normalize not in (None, *PRESETS):
        raise UserError(
            f"--normalize {args.normalize!r} is none of {', '.join(PRESETS)}; or pass --mean R,G,B --std R,G,B"
        )
    if args.normalize is not None and (args.mean or args.std):
        raise UserError(f"--normalize {args.normalize} and --mean/--std both say the normalisation; pass one")
    if args.mean_of is not None and args.normalize != "cifar-pixel-mean":
        raise UserError("--mean-of DIR goes with --normalize cifar-pixel-mean; drop it or add that")
    if args.normalize == "imagenet":
        return IMAGENET
    if args.normalize == "cifar-pixel-mean":
        mean_of = args.mean_of or data
        if not mean_of:
            raise UserError("--normalize cifar-pixel-mean needs --mean-of DIR, the data whose training images' mean")
        return cifar_pixel_mean(mean_of)
    if args.mean is None:
        raise UserError("--std needs --mean R,G,B too (the mean is subtracted before dividing)")
    mean, std = _channels(args.mean, "--mean"), None if args.std is None else _channels(args.std, "--std")
    return channel_normalization(mean, std, f"mean {args.mean}" + (f" and std {args.std}" if std else ""))


def _channels(text: str, flag: str) -> tuple[float, ...]:
    """Three comma-separated finite numbers in [0, 1] (as torchvision's ToTensor gives inputs), a std's above 0."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    low = 0.0 if flag == "--mean" else math.ulp(0.0)
    if len(values) != 3 or not all(math.isfinite(v) and low <= v <= 1 for v in values):
        within = "from 0 to 1" if flag == "--mean" else "above 0, at most 1"
        raise UserError(
            f"{flag} {text!r} is not 3 comma-separated numbers R,G,B {within} (inputs are in [0, 1]: divide values "
            "for 0-255 pixels by 255), e.g. 0.485,0.456,0.406"
        )
    return values
