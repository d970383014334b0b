"""The one exception type for user mistakes: the CLI prints its message on one line and exits 2; and a JSON parser
whose every failure on a user's file is a ValueError, which the readers turn into that one line."""

from __future__ import annotations

import json
from typing import Any

MAX_INT_DIGITS = 300  # a longer integer is no count, id or coordinate, and float() of it overflows


class UserError(Exception):
    """A problem the user can fix (bad file, bad value); its message names the thing and the fix."""


def parse_json(text: str | bytes) -> Any:
    """json.loads, where nesting too deep for the parser and integers too long for a float are ValueErrors, like any
    other invalid JSON (the parser raises RecursionError and the readers' float() OverflowError for them)."""
    try:
        return json.loads(text, parse_int=_int)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"integer {digits[:20]}... of {len(digits)} digits is too long")
    return int(digits)
