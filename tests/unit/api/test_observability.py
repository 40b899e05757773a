"""The handler chain: log context and correlation ids, metrics flushed per invocation,
concurrent invocations kept apart (the local cloud's threads), the X-Ray SDK only when
detailed tracing is on."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from functions.core import observability
from functions.core.observability import (
    correlated,
    correlation_id_for,
    current_correlation_id,
    instrumented,
    logger,
    record_campaign_file_published,
    record_outbox_lag,
    record_redemption,
    record_refusal,
)
from infra.local.proxy_event import LambdaContextStub, lambda_context, proxy_event
from tests.unit.core.log_capture import captured_logs, emf_blobs, metric_values

REDEMPTIONS_ROUTE = "POST /v1/redemptions"


@pytest.fixture(autouse=True)
def function_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Rebates")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "offers")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    monkeypatch.delenv(observability.DETAILED_TRACING_ENV, raising=False)
    yield
    # Nothing a test did in this thread may reach the next one.
    assert current_correlation_id() is None


def api_event(request_id: str) -> dict[str, Any]:
    event = proxy_event("GET", "/v1/health")
    event["requestContext"]["requestId"] = request_id
    return event


def envelope(**detail: Any) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "eb-7f3c",
        "detail-type": "OfferRedeemed",
        "source": "rebates.offers",
        "detail": {"eventId": "evt_01", **detail},
    }


def sqs_record(body: str, message_id: str = "msg-1") -> dict[str, Any]:
    return {"eventSource": "aws:sqs", "messageId": message_id, "body": body}


S3_RECORD = {
    "eventSource": "aws:s3",
    "eventName": "ObjectCreated:Put",
    "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyU"},
    "s3": {"bucket": {"name": "b"}, "object": {"key": "campaigns/a.yaml"}},
}
DYNAMODB_RECORD = {"eventSource": "aws:dynamodb", "eventID": "c81e728d9d4c2f63", "dynamodb": {}}
KINESIS_RECORD = {"eventSource": "aws:kinesis", "eventID": "shardId-000:4954", "kinesis": {}}
SNS_RECORD = {"EventSource": "aws:sns", "Sns": {"MessageId": "95df01b4-ee98"}}


# -- log context and correlation ids ------------------------------------------------------


def test_each_line_carries_the_context_the_service_and_the_request_id() -> None:
    @instrumented
    def handler(event: dict[str, Any], context: Any) -> str:
        logger.info("handled")
        return "ok"

    with captured_logs() as logs:
        assert handler(api_event("req-1"), lambda_context("rebates-offers-api")) == "ok"
        assert handler(api_event("req-2"), lambda_context("rebates-offers-api")) == "ok"

    first, second = logs.with_message("handled")
    assert first["function_name"] == "rebates-offers-api"
    assert first["service"] == "offers"
    assert (first["correlation_id"], first["cold_start"]) == ("req-1", True)
    assert (second["correlation_id"], second["cold_start"]) == ("req-2", False)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param(api_event("req-9"), "req-9", id="api-gateway-proxy"),
        pytest.param(envelope(correlationId="req-1"), "req-1", id="eventbridge-correlated"),
        pytest.param(envelope(correlationId=None), "evt_01", id="eventbridge-event-id"),
        pytest.param({**envelope(), "detail": {}}, "eb-7f3c", id="eventbridge-envelope-id"),
        pytest.param(
            {"Records": [sqs_record(json.dumps(envelope(correlationId="req-1")))]},
            "req-1",
            id="sqs-of-eventbridge",
        ),
        pytest.param({"Records": [sqs_record("plain text")]}, "msg-1", id="sqs-message-id"),
        pytest.param({"Records": [S3_RECORD]}, "C3D13FE58DE4C810", id="s3-request-id"),
        pytest.param({"Records": [DYNAMODB_RECORD]}, "c81e728d9d4c2f63", id="dynamodb-stream"),
        pytest.param({"Records": [KINESIS_RECORD]}, "shardId-000:4954", id="kinesis"),
        pytest.param({"Records": [SNS_RECORD]}, "95df01b4-ee98", id="sns"),
        pytest.param({"Records": [DYNAMODB_RECORD, KINESIS_RECORD]}, "lambda-1", id="batch"),
        pytest.param({"claimId": "clm_1"}, "lambda-1", id="direct-invoke"),
    ],
)
def test_the_correlation_id_suits_the_event_shape(event: dict[str, Any], expected: str) -> None:
    assert correlation_id_for(event, LambdaContextStub(aws_request_id="lambda-1")) == expected


def test_each_record_of_a_batch_logs_under_its_own_id() -> None:
    batch = {
        "Records": [
            sqs_record(json.dumps(envelope(correlationId="req-1")), "msg-1"),
            sqs_record("not an event", "msg-2"),
        ]
    }

    @instrumented
    def handler(event: dict[str, Any], context: Any) -> None:
        for record in event["Records"]:
            with correlated(record):
                logger.info("record handled")
        logger.info("batch handled")

    with captured_logs() as logs:
        handler(batch, LambdaContextStub(aws_request_id="lambda-7"))

    assert [line["correlation_id"] for line in logs.with_message("record handled")] == [
        "req-1",
        "msg-2",
    ]
    assert [line["correlation_id"] for line in logs.with_message("batch handled")] == ["lambda-7"]


def test_a_failure_is_logged_with_the_correlation_id_and_raised() -> None:
    @instrumented
    def handler(event: dict[str, Any], context: Any) -> None:
        raise RuntimeError("boom")

    with captured_logs() as logs, pytest.raises(RuntimeError, match="boom"):
        handler(api_event("req-3"), lambda_context())

    (line,) = logs.with_message("invocation failed")
    assert (line["level"], line["correlation_id"]) == ("ERROR", "req-3")
    assert "RuntimeError: boom" in line["exception"]


def test_concurrent_invocations_keep_their_own_log_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    both_started = threading.Barrier(2, timeout=5)

    @instrumented
    def handler(event: dict[str, Any], context: Any) -> None:
        logger.info("before")
        both_started.wait()  # the other invocation has set its keys by now
        logger.info("after")

    calls = {"fn-a": "req-a", "fn-b": "req-b"}
    with captured_logs() as logs, ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(handler, api_event(request_id), lambda_context(name))
            for name, request_id in calls.items()
        ]
        for future in futures:
            future.result()

    lines = logs.with_message("before") + logs.with_message("after")
    assert sorted(line["function_name"] for line in lines) == ["fn-a", "fn-a", "fn-b", "fn-b"]
    for line in lines:
        assert line["correlation_id"] == calls[line["function_name"]]


# -- metrics ---------------------------------------------------------------------------


def test_refusals_are_counted_per_route_and_reason_when_the_invocation_ends(
    capsys: pytest.CaptureFixture[str],
) -> None:
    @instrumented
    def handler(event: dict[str, Any], context: Any) -> None:
        record_refusal(REDEMPTIONS_ROUTE, "usage_limit_reached")
        record_refusal(REDEMPTIONS_ROUTE, "usage_limit_reached")
        record_refusal(REDEMPTIONS_ROUTE, "budget_exhausted")
        record_redemption("online")
        assert emf_blobs(capsys.readouterr().out) == []  # nothing before the end

    handler(api_event("req-1"), lambda_context())

    blobs = emf_blobs(capsys.readouterr().out)
    assert len(blobs) == 3
    limit = next(blob for blob in blobs if blob.get("reason") == "usage_limit_reached")
    (definition,) = limit["_aws"]["CloudWatchMetrics"]
    assert definition["Namespace"] == "Rebates"
    assert definition["Dimensions"] == [["reason", "route", "service"]]
    assert definition["Metrics"] == [{"Name": "Refusals", "Unit": "Count"}]
    assert (limit["route"], limit["service"], limit["Refusals"]) == (
        REDEMPTIONS_ROUTE,
        "offers",
        [1.0, 1.0],
    )
    stdout = "\n".join(json.dumps(blob) for blob in blobs)
    assert metric_values(stdout, "Refusals", reason="budget_exhausted") == [1.0]
    assert metric_values(stdout, "Redemptions", channel="online", service="offers") == [1.0]


def test_metrics_are_flushed_when_the_handler_fails(capsys: pytest.CaptureFixture[str]) -> None:
    @instrumented
    def handler(event: dict[str, Any], context: Any) -> None:
        record_campaign_file_published()
        raise RuntimeError("after the report")

    with pytest.raises(RuntimeError):
        handler({"Records": [S3_RECORD]}, lambda_context())

    assert metric_values(capsys.readouterr().out, "CampaignFilesPublished") == [1.0]


def test_concurrent_invocations_flush_only_their_own_metrics(
    capsys: pytest.CaptureFixture[str],
) -> None:
    first_recorded, second_flushed = threading.Event(), threading.Event()

    @instrumented
    def still_running(event: dict[str, Any], context: Any) -> None:
        record_refusal(REDEMPTIONS_ROUTE, "usage_limit_reached")
        first_recorded.set()
        assert second_flushed.wait(timeout=5)

    @instrumented
    def quick(event: dict[str, Any], context: Any) -> None:
        assert first_recorded.wait(timeout=5)
        record_refusal(REDEMPTIONS_ROUTE, "budget_exhausted")

    with ThreadPoolExecutor(max_workers=2) as pool:
        running = pool.submit(still_running, api_event("req-a"), lambda_context("a"))
        pool.submit(quick, api_event("req-b"), lambda_context("b")).result()
        after_quick = capsys.readouterr().out
        second_flushed.set()
        running.result()
    after_both = capsys.readouterr().out

    assert metric_values(after_quick, "Refusals", reason="budget_exhausted") == [1.0]
    assert metric_values(after_quick, "Refusals", reason="usage_limit_reached") == []
    assert metric_values(after_both, "Refusals", reason="usage_limit_reached") == [1.0]
    assert metric_values(after_both, "Refusals", reason="budget_exhausted") == []


def test_many_values_are_split_into_lines_and_none_is_lost(
    capsys: pytest.CaptureFixture[str],
) -> None:
    @instrumented
    def handler(event: dict[str, Any], context: Any) -> None:
        for milliseconds in range(250):
            record_outbox_lag(milliseconds)

    handler({"Records": [DYNAMODB_RECORD]}, lambda_context())

    blobs = emf_blobs(capsys.readouterr().out)
    assert all(len(blob["OutboxLag"]) < 100 for blob in blobs)
    values = sorted(value for blob in blobs for value in blob["OutboxLag"])
    assert values == [float(milliseconds) for milliseconds in range(250)]
    assert blobs[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [
        {"Name": "OutboxLag", "Unit": "Milliseconds"}
    ]


def test_outside_an_invocation_a_metric_is_emitted_at_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    record_outbox_lag(-5)  # a clock running ahead is no negative lag
    assert metric_values(capsys.readouterr().out, "OutboxLag", service="offers") == [0.0]


def test_no_metric_is_written_when_metrics_are_disabled(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    instrumented(lambda event, context: record_redemption("online"))({}, lambda_context())
    assert emf_blobs(capsys.readouterr().out) == []


# -- tracing ---------------------------------------------------------------------------


def test_traced_is_transparent_without_detailed_tracing() -> None:
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
