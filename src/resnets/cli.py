"""The `resnets` command line: one subcommand per job, each a thin layer over the Python API."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

from .errors import UserError

COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], None]]] = {}


def command(name: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register `run(args)` as the subcommand `name`, with `add_arguments(parser)` declaring its options."""

    def register(run: Callable[[argparse.Namespace], None]):
        COMMANDS[name] = (add_arguments, run)
        return run

    return register


def _model_options(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k) for k in ("shortcut", "stride_on") if getattr(args, k, None) is not None}


def _add_list(p: argparse.ArgumentParser) -> None:
    p.description = "Print every model name, one per line."


@command("list", _add_list)
def run_list(args: argparse.Namespace) -> None:
    from .models import list_models

    print("\n".join(list_models()))


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
    from .analysis.complexity import model_complexity
    from .analysis.summary import format_stages, paper_table

    if args.all:
        print(paper_table(_model_options(args), markdown=args.markdown))
        return
    if not args.model:
        raise UserError("summary needs a MODEL name (see `resnets list`) or --all")
    if args.input_size is not None and args.input_size < 1:
        raise UserError(f"--input-size {args.input_size} must be a positive number of pixels")
    try:
        c = model_complexity(args.model, args.input_size, **_model_options(args))
    except ValueError as e:
        raise UserError(str(e)) from None
    print(json.dumps(c.to_dict(), indent=2) if args.json else format_stages(c))


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, one subparser per registered command."""
    parser = argparse.ArgumentParser(prog="resnets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add_arguments, run) in COMMANDS.items():
        p = sub.add_parser(name, help=(run.__doc__ or "").strip() or None)
        add_arguments(p)
        p.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `resnets` console script."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except UserError as e:
        print(f"resnets {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head`; not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"resnets {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
