"""The subcommand registry and the helpers that several commands share."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..errors import UserError

COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], None]]] = {}


def command(name: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register `run(args)` as the subcommand `name`, with `add_arguments(parser)` declaring its options."""

    def register(run: Callable[[argparse.Namespace], None]):
        COMMANDS[name] = (add_arguments, run)
        return run

    return register


def model_options(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k) for k in ("shortcut", "stride_on") if getattr(args, k, None) is not None}


def int_list(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"{flag} {text!r} is not a comma-separated list of integers such as 224,256,384") from None
