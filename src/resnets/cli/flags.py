"""Command-line flags generated from typed settings dataclasses (core.settings): one `--flag` per field, its type,
choices, help and group from the field, so that a setting is declared once and every command shows it alike."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import typing
from collections.abc import Callable
from typing import Any

from ..core.settings import field_types, flag, shown


def add_config_flags(
    parser: argparse.ArgumentParser, cls: type, groups: dict[str, str], shown: Callable[[dataclasses.Field], str | None]
) -> dict[str, Any]:
    """A flag for each `setting` field of dataclass `cls`, in argument groups named by `groups` (name -> about), in
    that order; `shown(field)` words a field's default (None: its help says what unset means). Returns the groups."""
    made = {name: parser.add_argument_group(name, about) for name, about in groups.items()}
    for f in dataclasses.fields(cls):
        if "help" in f.metadata:
            add_config_flag(made[f.metadata["group"]], cls, f, shown(f))
    return made


def add_config_flag(parser, cls: type, f: dataclasses.Field, default: str | None) -> None:
    """The --flag of field `f` of `cls` (its type, choices and help from the field); `default` words its default."""
    hint = field_types(cls)[f.name]
    options = [a for a in typing.get_args(hint) if a is not type(None)] if typing.get_origin(hint) is not tuple else []
    kind = options[0] if options else hint
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


def field_default(f: dataclasses.Field) -> str | None:
    """A field's own default as its flag takes it (None where unset means something the help says)."""
    return None if f.default in (None, "") else shown_value(f.default)


def shown_value(value: Any) -> str:
    """A setting's value as its flag takes it (core.settings.shown), a switch as on/off, a recipe's list as a tuple."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return shown(tuple(value) if isinstance(value, list) else value)


def given_values(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The settings of `cls` given on the command line (flags left out are None, and not given)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if getattr(args, f.name, None) is not None}


def _items(text: str, item: type) -> list:
    """A comma-separated list of `item`s, e.g. --milestones 0.5,0.75."""
    try:
        return [item(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of {item.__name__}s") from None
