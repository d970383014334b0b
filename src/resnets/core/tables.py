"""Markdown tables, the paper's net names and the number formats every report shares."""

from __future__ import annotations

import re


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def percent(value: float | None) -> str:
    """An error in percent with two decimals, as the paper's tables; empty when unknown."""
    return "" if value is None else f"{value:.2f}"


def millions(count: float | None) -> str:
    """A parameter count in millions, as Table 6 writes it (0.27M)."""
    return "" if count is None else f"{count / 1e6:.2f}M"


def unique_labels(names: list[str], places: list[str]) -> list[str]:
    """`names` for legends and CSV rows; a name that occurs twice gets its place (a path) appended."""
    return [name if names.count(name) == 1 else f"{name} ({place})" for name, place in zip(names, places)]


def paper_name(model: str) -> str:
    """The paper's spelling of a registry name: resnet56 -> ResNet-56, plain20 -> plain-20."""
    match = re.fullmatch(r"(resnet|plain)(\d+)", model)
    if not match:
        return model
    return f"{'ResNet' if match[1] == 'resnet' else 'plain'}-{match[2]}"
