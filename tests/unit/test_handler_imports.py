"""Handlers load only what Lambda ships: never the CDK, moto or DuckDB."""

from __future__ import annotations

import os
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


# In a Lambda container the collector is paused while the handler is imported, and the
# handler's first invocation freezes what the imports built and resumes it.
COLLECTOR_PROBE = """
import gc
import {module}
from functions.core.observability import instrumented

paused = not gc.isenabled()
wrapped = {module}.handler.__code__ is instrumented(lambda event, context: None).__code__

@instrumented
def first_invocation(event, context):
    return gc.isenabled()

class Context:
    function_name = "probe"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:probe"
    aws_request_id = "req-1"

print(paused, wrapped, first_invocation({{}}, Context()), gc.get_freeze_count() > 0)
"""


def _probe_collector(module: str, environment: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", COLLECTOR_PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=False,
        env=environment,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("module", handler_modules())
def test_in_lambda_a_handler_imports_with_the_collector_paused_until_it_is_invoked(
    module: str,
) -> None:
    environment = {**os.environ, "AWS_LAMBDA_FUNCTION_NAME": "probe"}
    assert _probe_collector(module, environment) == "True True True True"


def test_outside_lambda_the_collector_is_never_paused() -> None:
    environment = {k: v for k, v in os.environ.items() if k != "AWS_LAMBDA_FUNCTION_NAME"}
    assert _probe_collector("functions.core.health", environment) == "False True True False"
