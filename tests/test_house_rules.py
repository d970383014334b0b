"""The house rules that a reader of the code relies on, read from the source: no function over 60 lines."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "resnets"
MAX_FUNCTION_LINES = 60


def long_functions(root: Path) -> list[str]:
    """'path:line name (N lines)' of every function or method under `root` longer than MAX_FUNCTION_LINES."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_is_over_60_lines():
    assert long_functions(PACKAGE) == []


def test_the_rule_reads_methods_and_nested_functions(tmp_path):
    body = [f"x{i} = {i}" for i in range(MAX_FUNCTION_LINES)]
    method = ["class C:", "    def method(self):", *(f"        {line}" for line in body)]
    nested = ["def short():", "    def inner():", *(f"        {line}" for line in body), "    return inner"]
    (tmp_path / "m.py").write_text("\n".join(method) + "\n")
    (tmp_path / "n.py").write_text("\n".join(nested) + "\n")
    assert [line.split()[1] for line in long_functions(tmp_path)] == ["method", "short", "inner"]
