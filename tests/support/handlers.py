"""Which modules are Lambda handlers, found from the code rather than listed by hand."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FUNCTIONS = ROOT / "functions"


def handler_modules() -> list[str]:
    """Dotted names of every module under functions/ with a module-level `handler`."""
    modules = []
    for path in sorted(FUNCTIONS.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defines_handler = any(
            isinstance(node, ast.FunctionDef | ast.Assign)
            and (
                getattr(node, "name", None) == "handler"
                or any(getattr(t, "id", None) == "handler" for t in getattr(node, "targets", []))
            )
            for node in tree.body
        )
        if defines_handler:
            modules.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return modules
