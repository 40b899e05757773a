"""`rebates notifications sent`: the delivery ledger counted by template, locale and channel.

The records are written by the ledger itself (`DeliveryLedger`), so a change of its
attribute names breaks this test rather than the operator's command; the integration
test and `make demo` run the command against a real local cloud.
"""

from __future__ import annotations

import io
import json
import os
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from cli.main import main
from cli.notifications import run_sent
from cli.target import Target
from functions.core.tables import IDEMPOTENCY
from functions.notifications.dal import DeliveryLedger, MessageKey
from functions.notifications.models import OrderFollowUp
from tests.support.aws import aws_env, tables

__all__ = ["aws_env", "tables"]  # fixtures, found by name

NOW = datetime(2027, 5, 3, 3, 0, tzinfo=UTC)
LEASE = NOW + timedelta(minutes=1)


def target() -> Target:
    return Target(
        kind="local",
        outputs={"AwsEndpoint": "http://127.0.0.1:4566", "ApiUrl": "http://127.0.0.1:3000"},
        region=os.environ["AWS_DEFAULT_REGION"],
        description="local cloud at http://127.0.0.1:4566",
        make_client=boto3.client,
        fetch_api_key=lambda: "key",
    )


@pytest.fixture
def ledger(tables: list[str], monkeypatch: pytest.MonkeyPatch) -> DeliveryLedger:
    # The local cloud names tables `<Stack>-<LogicalId>-<suffix>`: rename ours the same way.
    monkeypatch.setattr("cli.notifications.table_name", lambda target, spec: spec.default_name)
    return DeliveryLedger()


def key(event: str, customer: str, template: str, channel: str, locale: str) -> MessageKey:
    return MessageKey(
        event_id=event,
        detail_type="ClaimApproved",
        channel=channel,
        template=template,
        notification_id=f"ntf_{event}_{channel}",
        customer_id=customer,
        locale=locale,
    )


def record(ledger: DeliveryLedger) -> None:
    sent = [
        key("evt_1", "aiko", "claim_approved", "email", "ja"),
        key("evt_2", "chika", "claim_approved", "email", "ja"),
        key("evt_3", "ben", "claim_approved", "email", "en"),
    ]
    for message in sent:
        claim = ledger.claim(message, now=NOW, lease_until=LEASE)
        assert not isinstance(claim, type(None))
        ledger.complete(claim, f"ses-{message.event_id}", now=NOW)  # type: ignore[arg-type]
    texted = ledger.claim(
        key("evt_1", "aiko", "claim_approved", "sms", "ja"), now=NOW, lease_until=LEASE
    )
    ledger.complete(texted, "sns-1", now=NOW, segments=1, encoding="UCS-2")  # type: ignore[arg-type]
    refused = ledger.claim(
        key("evt_4", "ben", "claim_rejected", "email", "en"), now=NOW, lease_until=LEASE
    )
    ledger.fail(refused, "MessageRejected: address blacklisted", now=NOW)  # type: ignore[arg-type]
    ledger.claim(key("evt_5", "ben", "code_issued", "email", "en"), now=NOW, lease_until=LEASE)


def test_the_ledger_is_counted_by_template_locale_and_channel(ledger: DeliveryLedger) -> None:
    record(ledger)
    out = io.StringIO()
    assert run_sent(target(), out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split() == [
        "template",
        "locale",
        "channel",
        "sent",
        "failed",
        "pending",
        "segments",
    ]
    assert [line.split() for line in lines[1:-1]] == [
        ["claim_approved", "en", "email", "1", "0", "0"],
        ["claim_approved", "ja", "email", "2", "0", "0"],
        ["claim_approved", "ja", "sms", "1", "0", "0", "1"],
        ["claim_rejected", "en", "email", "0", "1", "0"],
        ["code_issued", "en", "email", "0", "0", "1"],
    ]
    assert lines[-1] == "4 sent, 1 failed; SMS took 1 segments"


def test_one_customer_s_messages_are_listed_each_on_its_line(ledger: DeliveryLedger) -> None:
    record(ledger)
    out = io.StringIO()
    run_sent(target(), customer_id="ben", out=out)
    lines = out.getvalue().splitlines()
    messages = [line.split()[1:] for line in lines if line.startswith("2027-")]
    assert sorted(messages) == [
        ["claimed", "email", "en", "code_issued"],
        ["failed", "email", "en", "claim_rejected"],
        ["sent", "email", "en", "claim_approved"],
    ]


def test_the_json_output_is_the_same_counts(ledger: DeliveryLedger) -> None:
    record(ledger)
    out = io.StringIO()
    run_sent(target(), customer_id="aiko", as_json=True, out=out)
    document = json.loads(out.getvalue())
    assert document["byTemplate"] == [
        {
            "template": "claim_approved",
            "locale": "ja",
            "channel": "email",
            "sent": 1,
            "failed": 0,
            "pending": 0,
            "segments": 0,
        },
        {
            "template": "claim_approved",
            "locale": "ja",
            "channel": "sms",
            "sent": 1,
            "failed": 0,
            "pending": 0,
            "segments": 1,
        },
    ]
    assert {m["providerMessageId"] for m in document["messages"]} == {"ses-evt_1", "sns-1"}


def test_other_items_in_the_same_table_are_not_messages(ledger: DeliveryLedger) -> None:
    boto3.client("dynamodb").put_item(
        TableName=IDEMPOTENCY.default_name,
        Item={"id": {"S": "rebates-offers-api.redeem#abc"}, "status": {"S": "COMPLETED"}},
    )
    OrderFollowUp(order_id="order-1", expiration=NOW + timedelta(days=30), updated_at=NOW).save()
    out = io.StringIO()
    run_sent(target(), out=out)
    assert out.getvalue() == "no messages in the ledger\n"


def test_the_command_is_wired(ledger: DeliveryLedger, monkeypatch: pytest.MonkeyPatch) -> None:
    record(ledger)
    monkeypatch.setattr("cli.target.from_args", lambda args: target())
    assert main(["notifications", "sent", "--customer", "chika"]) == 0
