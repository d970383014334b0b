"""`resnets summary`: per-stage cost tables, and the paper-comparison table of docs/models.md."""

from __future__ import annotations

from ..core.tables import markdown_table
from . import paper
from .complexity import Complexity, model_complexity
from .registry import CIFAR_PLAIN_DEPTHS, CIFAR_RESNET_DEPTHS, IMAGENET_DEPTHS, VARIANTS


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f}{unit}"
    return str(int(value))


def format_stages(c: Complexity) -> str:
    """A plain-text table of one network's stages."""
    rows = [("stage", "output", "params", "mult-adds")]
    rows += [(s.name, "x".join(map(str, s.output)), f"{s.params:,}", _si(s.macs)) for s in c.stages]
    rows.append(("total", "", f"{c.params:,}", _si(c.macs)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [f"{c.model} at {c.input_size}x{c.input_size}"]
    for row in rows:
        lines.append(
            "  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        )
    return "\n".join(lines)


def all_models() -> list[str]:
    """The paper's networks in table order, then the torchvision variants."""
    names = [f"{kind}{d}" for d in IMAGENET_DEPTHS for kind in ("plain", "resnet")]
    names += [f"plain{d}" for d in CIFAR_PLAIN_DEPTHS] + [f"resnet{d}" for d in CIFAR_RESNET_DEPTHS]
    return names + list(VARIANTS)


def _reported(reported: float | None) -> str:
    if reported is None:
        return ""
    return f"{reported / 1e9:.1f}G" if reported > 1e8 else f"{reported / 1e6:.2f}M"


def paper_table(options: dict | None = None, markdown: bool = True) -> str:
    """Every network's parameters and mult-adds next to Table 6's parameters and Table 1's FLOPs."""
    header = ("model", "input", "params", "Table 6", "mult-adds", "Table 1")
    rows = []
    for name in all_models():
        c = model_complexity(name, **(options or {}))
        rows.append(
            (
                name,
                str(c.input_size),
                f"{c.params / 1e6:.2f}M",
                _reported(paper.TABLE6.get(name, (None,))[0]),
                f"{c.macs / 1e9:.3f}G",
                _reported(paper.TABLE1_MACS.get(name)),
            )
        )
    if markdown:
        return markdown_table(list(header), [list(r) for r in rows])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(r, widths)) for r in [header, *rows])
