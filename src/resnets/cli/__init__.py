"""The `resnets` command line: one subcommand per job, each a thin layer over the Python API."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from ..core.errors import UserError
from . import detect, evaluate, experiments, models, predict, serve, train  # noqa: F401  (each registers its commands)
from .registry import COMMANDS


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser, one subparser per registered command; with `argv`, only the command it names gets its
    flags (some need torch or a recipe file to declare them: `resnets list` and `resnets --help` need neither)."""
    named = _command_named(argv) if argv is not None else None
    parser = argparse.ArgumentParser(prog="resnets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add_arguments, run) in COMMANDS.items():
        p = sub.add_parser(name, help=(run.__doc__ or "").strip() or None)
        if argv is None or name == named:
            add_arguments(p)
        p.set_defaults(run=run)
    return parser


def _command_named(argv: list[str]) -> str | None:
    """The command that `argv` names: its first word that is not an option (the top parser has none with values)."""
    words = [a for a in argv if not a.startswith("-")]
    return words[0] if words else None


INTERRUPTED = threading.Event()  # set by a Ctrl-C that our handler took


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `resnets` console script."""
    INTERRUPTED.clear()
    # Where Python's own handler is in place (not under a host that set another), note each Ctrl-C before raising it.
    ours = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    previous = signal.signal(signal.SIGINT, _interrupt) if ours else None
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return _run(argv)
    except KeyboardInterrupt:  # outside _run's own handler: on the way in or out
        print("resnets: interrupted", file=sys.stderr)
        return 130
    finally:
        if ours:
            signal.signal(signal.SIGINT, previous)


def _interrupt(signum, frame) -> None:
    INTERRUPTED.set()
    raise KeyboardInterrupt


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """While torch and the parser load, a Ctrl-C is only noted, then raised once they are in: raised inside a C
    extension's import (torch's), a KeyboardInterrupt can abort the interpreter with a C++ traceback."""
    if signal.getsignal(signal.SIGINT) is not _interrupt:  # not ours to defer (a host's handler)
        yield
        return
    signal.signal(signal.SIGINT, lambda signum, frame: INTERRUPTED.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, _interrupt)
    if INTERRUPTED.is_set():
        raise KeyboardInterrupt


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (ours and our libraries') as one clean line each, without the source line Python adds."""
    print(f"resnets: warning: {message}", file=file or sys.stderr)


def _run(argv: list[str] | None) -> int:
    """Parse `argv` and run its command; a user's mistake is one line and exit 2."""
    name = "resnets"
    try:
        argv = sys.argv[1:] if argv is None else argv
        with _interrupts_deferred():
            args = build_parser(argv).parse_args(argv)
            import torch  # noqa: F401 (every command runs on it: loaded here, where a Ctrl-C waits for it)
        name = f"resnets {args.command}"
        args.run(args)
    except BrokenPipeError:  # output piped into `head`; not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        # A library that caught the Ctrl-C (an exporter's catch-all, an import cut in half) fails after it in its own
        # way: that failure is the interrupt's.
        if INTERRUPTED.is_set():
            print(f"{name}: interrupted", file=sys.stderr)
            return 130
        if not isinstance(e, UserError):
            raise
        print(f"{name}: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)  # 2, or 128 + N for a run that a signal N stopped after saving
    return 0
