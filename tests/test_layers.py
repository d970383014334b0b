"""The package's layers point one way: no module imports from a layer above its own (read from the source, by ast)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "resnets"

# Each layer: the modules or packages (relative to resnets/) it holds, and the layers it may import from, directly.
# What a layer may import is the closure of this table, so every upward edge is refused.
# core: what every layer shares (errors, atomic writes, device and precision, checkpoint files, downloads, rng);
# weights: pretrained and exported weight files, above the zoo and the data (ImageNet's class list);
# engine: the run lifecycle both trainers share; training (the classifier) and detection are tasks on it, side by
# side: detection never imports the classifier's training package;
# inference/serve: above evaluation and weights, below cli; api: the package's own __init__ (create_model(weights=)).
LAYERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "core": (("core",), ()),
    "models": (("models",), ("core",)),
    "data": (("data",), ("models",)),
    "weights": (("weights",), ("data",)),
    "evaluation": (("evaluation",), ("weights",)),
    "engine": (("engine",), ("evaluation",)),
    "training": (("training",), ("engine",)),
    "detection": (("detection",), ("engine",)),
    "analysis": (("analysis",), ("training",)),
    "experiments": (("experiments",), ("analysis",)),
    "inference": (("inference",), ("evaluation",)),
    "serve": (("serve",), ("inference",)),
    "api": (("__init__",), ("experiments", "detection", "serve")),
    "cli": (("cli", "__main__"), ("api",)),
}


def allowed(layer: str) -> set[str]:
    """`layer` and every layer below it."""
    below = {layer}
    for lower in LAYERS[layer][1]:
        below |= allowed(lower)
    return below


def layer_of(parts: tuple[str, ...]) -> str:
    """The layer of the module resnets.<parts>, e.g. ('training', 'loop') -> 'training'."""
    head = parts[0] if parts else "__init__"
    for layer, (members, _) in LAYERS.items():
        if head in members:
            return layer
    raise AssertionError(f"resnets.{'.'.join(parts)} is in no layer; add it to LAYERS in {__file__}")


def module_parts(path: Path) -> tuple[str, ...]:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[:-1] if parts[-1] == "__init__" else parts


def imported(path: Path) -> list[tuple[int, tuple[str, ...]]]:
    """(line, resnets.<parts>) of every import of the package in `path`, relative or absolute, at any depth."""
    parts = module_parts(path)
    package = parts if path.name == "__init__.py" else parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = base + tuple(node.module.split(".")) if node.module else base
            elif node.module and node.module.split(".")[0] == "resnets":
                target = tuple(node.module.split(".")[1:])
            else:
                continue
            names = [alias.name for alias in node.names]
            # `from . import paper` imports the module resnets.paper, `from .data import X` the package resnets.data.
            found += [(node.lineno, target + (name,)) for name in names] if not node.module else [(node.lineno, target)]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, tuple(a.name.split(".")[1:])) for a in node.names if a.name.startswith("resnets")]
    return found


def test_the_layer_table_has_no_cycle_and_the_issue_order():
    order = ["models", "data", "evaluation", "training", "analysis", "experiments", "cli"]
    for lower, upper in zip(order, order[1:], strict=False):
        assert lower in allowed(upper) and upper not in allowed(lower)
    assert "models" in allowed("weights") and "weights" not in allowed("models")
    assert {"models", "data", "engine"} <= allowed("detection") and "detection" not in allowed("data") | allowed(
        "evaluation"
    )
    assert "training" not in allowed("detection") and "detection" not in allowed("training")
    assert "engine" in allowed("training") and "training" not in allowed("engine")
    assert {"evaluation", "weights"} <= allowed("inference") and "inference" not in allowed("training")
    for layer in LAYERS:
        assert all(layer not in allowed(lower) for lower in LAYERS[layer][1]), layer


def test_every_import_points_down():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = layer_of(module_parts(path))
        for line, target in imported(path):
            if target and layer_of(target) not in allowed(own):
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({own}) imports resnets.{'.'.join(target)}")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_the_import_reader_sees_relative_absolute_and_nested_imports(tmp_path, monkeypatch):
    package = tmp_path / "resnets"
    (package / "models").mkdir(parents=True)
    module = package / "models" / "zoo.py"
    module.write_text(
        "from ..training.loop import train\nimport resnets.cli\n\ndef f():\n    from .. import weights\n"
        "from . import blocks\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    assert sorted(imported(module)) == [
        (1, ("training", "loop")),
        (2, ("cli",)),
        (5, ("weights",)),
        (6, ("models", "blocks")),
    ]


@pytest.mark.parametrize(
    ("statement", "absent"),
    [
        ("import resnets; resnets.create_model('resnet18')", ("resnets.weights.files", "resnets.core.download")),
        (
            "import resnets.training.config",
            ("resnets.core.download", "resnets.data.loader", "resnets.weights.pretrained"),
        ),
        ("import resnets.weights.files", ("resnets.training", "resnets.engine")),
    ],
)
def test_light_modules_stay_light(statement, absent):
    code = f"import sys; {statement}; print(sorted(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert not [name for name in absent if f"'{name}'" in loaded]


def type_checking_lines(path: Path) -> set[int]:
    """The lines of the imports under `if TYPE_CHECKING:` in `path`."""
    lines = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            lines |= {
                n.lineno for stmt in node.body for n in ast.walk(stmt) if isinstance(n, ast.ImportFrom | ast.Import)
            }
    return lines


def module_graph() -> dict[tuple[str, ...], set[tuple[str, ...]]]:
    """Every module of the package and the modules it imports, at any depth (a package means its __init__)."""
    modules = {module_parts(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
    for parts, path in modules.items():
        targets = set()
        typing_only = type_checking_lines(path)
        for line, target in imported(path):
            if line in typing_only:  # annotations only: never imported at run time
                continue
            while target and target not in modules:  # `from .x import name`: the module x
                target = target[:-1]
            if target != parts:
                targets.add(target)
        graph[parts] = targets
    return graph


def test_no_import_cycles():
    graph = module_graph()
    cycles = []
    for start in sorted(graph):
        stack, seen = [(start, (start,))], set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    cycles.append(" -> ".join(".".join(p) or "resnets" for p in (*trail, start)))
                elif nxt not in seen and nxt > start:  # each cycle once, from its smallest module
                    seen.add(nxt)
                    stack.append((nxt, (*trail, nxt)))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
