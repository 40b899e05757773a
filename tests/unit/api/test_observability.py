"""The handler chain: logging context always, X-Ray SDK only when detailed tracing is on."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from functions.core import observability
from infra.local.proxy_event import lambda_context


def test_instrumented_handler_returns_and_logs_the_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "RebatesTest")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "tests")
    monkeypatch.delenv(observability.DETAILED_TRACING_ENV, raising=False)

    seen_keys: dict[str, Any] = {}

    @observability.instrumented
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen_keys.update(observability.logger.get_current_keys())
        return {"echo": event["value"]}

    assert handler({"value": 7}, lambda_context("rebates-test")) == {"echo": 7}
    assert seen_keys["function_name"] == "rebates-test"
    assert seen_keys["service"] == "tests"


def test_traced_is_transparent_without_detailed_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(observability.DETAILED_TRACING_ENV, raising=False)

    @observability.traced
    def add(a: int, b: int) -> int:
        return a + b

    assert add(2, 3) == 5
    assert observability.detailed_tracing_enabled() is False


@pytest.mark.parametrize(("value", "expect_sdk"), [("false", False), ("true", True)])
def test_xray_sdk_is_imported_only_for_detailed_tracing(value: str, expect_sdk: bool) -> None:
    probe = (
        "import os, sys\n"
        f"os.environ['{observability.DETAILED_TRACING_ENV}'] = '{value}'\n"
        "os.environ['POWERTOOLS_TRACE_DISABLED'] = 'true'\n"
        "from functions.core import observability\n"
        "from infra.local.proxy_event import lambda_context\n"
        "handler = observability.instrumented(lambda event, context: 'ok')\n"
        "assert handler({}, lambda_context()) == 'ok'\n"
        "print('aws_xray_sdk' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == str(expect_sdk)
