"""A split's classes as labels of a model: each class name becomes its index in the model's class list."""

from __future__ import annotations

from pathlib import Path

from ..core.errors import UserError

SHOWN = 10  # class names listed in an error before "and N more"


def model_labels(found: list[str], classes: list[str], where: Path | str) -> list[int]:
    """The index in the model's `classes` of each class name in `found` (the classes that `where` holds).

    A class the model does not have is a UserError naming it and the model's classes; a class of the model that
    `found` lacks is allowed (its images simply are not there).
    """
    index = {name: i for i, name in enumerate(classes)}
    unknown = [name for name in found if name not in index]
    if unknown:
        more = f" (and {len(unknown) - 1} more unknown)" if len(unknown) > 1 else ""
        raise UserError(
            f"{where} has class {unknown[0]!r}{more}, which the model does not know; its {len(classes)} classes are "
            f"{class_listing(classes)}; evaluate only images of those classes"
        )
    return [index[name] for name in found]


def class_listing(classes: list[str]) -> str:
    """The first SHOWN class names, comma-separated, and how many more there are."""
    more = f", and {len(classes) - SHOWN} more" if len(classes) > SHOWN else ""
    return ", ".join(classes[:SHOWN]) + more
