"""Handlers load only what Lambda ships: never the CDK, moto or DuckDB."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.handlers import handler_modules

FORBIDDEN = {"aws_cdk", "moto", "duckdb", "cdk_nag"}

PROBE = """
import sys
import {module}
assert callable({module}.handler), "handler is not callable"
print(",".join(sorted({{m.split(".")[0] for m in sys.modules}} & {forbidden!r})))
"""


def test_handlers_are_found() -> None:
    assert "functions.core.health" in handler_modules()


@pytest.mark.parametrize("module", handler_modules())
def test_handler_imports_nothing_forbidden(module: str) -> None:
    probe = PROBE.format(module=module, forbidden=FORBIDDEN)
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"{module} imports {result.stdout.strip()}"
