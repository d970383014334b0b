"""Typed settings, as both trainers' configurations declare them: a dataclass field per `--flag`, checked by type
on every path in (flags, recipes, config.json), and the rule that a resumed run keeps what made it what it is."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn

from ..core.errors import UserError

# The choice lists of the settings every command shares, defined once.
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Run mechanics every trainer shares: settings that may differ between the sessions of one run (a GPU here, a CPU
# there, the data in another folder); every other setting makes the run what it is. Each task adds its own.
RUN_MECHANICS = frozenset(
    {"data", "out", "device", "precision", "channels_last", "log_every", "skip_bad_images", "checkpoint_minutes"}
)


def setting(default: Any, group: str, help: str, choices: tuple[str, ...] = ()) -> Any:
    """A TrainConfig field: its default and what its `--flag` shows, a one-line help, a group and fixed choices."""
    return dataclasses.field(default=default, metadata={"help": help, "group": group, "choices": choices})


def flag(name: str) -> str:
    """The command-line flag of a TrainConfig field (`val_split` -> `--val-split`): errors speak the user's words."""
    return "--" + name.replace("_", "-")


def typed(value: Any, hint: Any, label: str) -> Any:
    """`value` checked against the type `hint` of a setting: an int is accepted for a float, floats must be finite,
    tuples are checked item by item; errors start with `label`, the user's word for it (e.g. `--lr`)."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if option is type(None) and value is None:
            return None
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise UserError(f"{label} {value} is not a finite number")
            return float(value)
        origin = typing.get_origin(option)
        if origin is tuple and isinstance(value, (list, tuple)):
            item = typing.get_args(option)[0]
            return tuple(typed(v, item, label) for v in value)
        if origin is None and option is not float and isinstance(value, option):
            if option is int and isinstance(value, bool):
                continue
            return value
    expected = " or ".join(getattr(o, "__name__", str(o)).replace("NoneType", "none") for o in options)
    raise UserError(f"{label} {value!r} has the wrong type; expected {expected}")


def check_unchanged(config: Any, before: Any, source: str, mechanics: frozenset[str]) -> None:
    """Refuse the first field outside `mechanics` in which dataclass `config` differs from `before`, the settings of
    the run whose config is `source`: what a resume (of this or another trainer) may not change."""
    for f in fields(config):
        new, old = getattr(config, f.name), getattr(before, f.name)
        if f.name not in mechanics and new != old:
            refuse_change(flag(f.name), new, old, source)


def refuse_change(name: str, new: Any, old: Any, source: str) -> NoReturn:
    """The one-line refusal of setting `name` (as the user writes it) changed from `old` to `new` on a resume."""
    raise UserError(
        f"{name} {_shown(new)} differs from {_shown(old)}, with which the run in {Path(source).parent} was "
        f"trained; keep the run's {name} {_shown(old)}, or start a new run in another --out"
    )


def _shown(value: Any) -> str:
    """A setting as its flag takes it: 0.5,0.75 for a tuple."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
