"""The `resnets` command line: one subcommand per job, each a thin layer over the Python API."""

from __future__ import annotations

import argparse
import sys
import warnings

from ..errors import UserError
from . import detect, evaluate, experiments, models, predict, serve, train  # noqa: F401  (each registers its commands)
from .registry import COMMANDS


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
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return _run(argv)
    except KeyboardInterrupt:  # outside _run's own handler: on the way in or out
        print("resnets: interrupted", file=sys.stderr)
        return 130


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (ours and our libraries') as one clean line each, without the source line Python adds."""
    print(f"resnets: warning: {message}", file=file or sys.stderr)


def _run(argv: list[str] | None) -> int:
    """Parse `argv` and run its command; a user's mistake is one line and exit 2."""
    name = "resnets"
    try:
        args = build_parser().parse_args(argv)  # imports torch for some commands' flags: Ctrl-C is caught there too
        name = f"resnets {args.command}"
        args.run(args)
    except UserError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)  # 2, or 128 + N for a run that a signal N stopped after saving
    except BrokenPipeError:  # output piped into `head`; not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    return 0
