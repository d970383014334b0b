"""Typed settings, as every command's configuration declares them: a dataclass field per `--flag` (its help, group
and choices), checked by type on every path in (flags, recipes, config.json), and the rule that a resumed run keeps
what made it what it is."""

from __future__ import annotations

import dataclasses
import functools
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


def setting(
    default: Any, group: str, help: str, choices: tuple[str, ...] = (), within: tuple[float, float | None] | None = None
) -> Any:
    """A settings field: its default, and what its `--flag` shows: a one-line help, a group, fixed choices, and the
    range its numbers must be in (`within`: low, high or None for no bound; NaN and infinity are outside)."""
    metadata = {"help": help, "group": group, "choices": choices, "within": within}
    return dataclasses.field(default=default, metadata=metadata)


def flag(name: str) -> str:
    """The command-line flag of a settings field (`val_split` -> `--val-split`): errors speak the user's words."""
    return "--" + name.replace("_", "-")


def check_fields(config: Any) -> None:
    """Every `setting` field of dataclass `config` coerced to its type (`typed`) and within its choices, in place."""
    # mypy takes type[Any] for unhashable (python/mypy#11470); a class is hashable
    hints = field_types(type(config))  # type: ignore[arg-type]
    for f in fields(config):
        if "help" not in f.metadata:  # a field that is no flag checks itself (e.g. detection's model settings)
            continue
        value = typed(getattr(config, f.name), hints[f.name], flag(f.name))
        choices, within = f.metadata["choices"], f.metadata.get("within")
        if choices and value is not None and value not in choices:
            raise UserError(f"{flag(f.name)} {value!r} is not one of {', '.join(choices)}")
        if within is not None and value is not None:
            check_within(flag(f.name), value, *within)
        setattr(config, f.name, value)


def check_within(label: str, value: float, low: float, high: float | None) -> None:
    """Refuse a number outside [low, high] (high None: no upper bound), NaN or infinity, in one line naming `label`."""
    if not (math.isfinite(value) and low <= value and (high is None or value <= high)):
        range_ = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise UserError(f"{label} {value} must be a number {range_}")


def check_milestones(milestones: tuple[float, ...]) -> None:
    """Milestones are increasing fractions of --iters in (0, 1)."""
    if any(not 0 < m < 1 for m in milestones) or list(milestones) != sorted(milestones):
        shown = ",".join(map(str, milestones))
        raise UserError(f"--milestones {shown} must be increasing fractions of --iters in (0, 1)")


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """The type of each field of dataclass `cls`, resolved once."""
    return typing.get_type_hints(cls)


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
        f"{name} {shown(new)} differs from {shown(old)}, with which the run in {Path(source).parent} was "
        f"trained; keep the run's {name} {shown(old)}, or start a new run in another --out"
    )


def shown(value: Any) -> str:
    """A setting's value as its flag takes it: 0.5,0.75 for a tuple."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
