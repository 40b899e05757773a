"""`rebates notifications sent [--customer ID] [--json]`: what the stack told customers.

Reads the delivery ledger (the notification records in the Idempotency table: one per
event, channel and template) of the target, the local cloud's or the deployed stack's,
and counts the messages by template, locale and channel: how many were sent, how many
failed for good, how many are in flight or waiting for a retry, and for SMS the segments
they took (carriers bill each). With `--customer`, only that customer's messages, each
on its own line: what support needs to answer "did you send me anything?".

The ledger expires with the table's TTL (days after each message), so this is a recent
view; the `NotificationsSent` / `NotificationsFailed` metrics keep the long history.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from cli.target import Target
from cli.wallet import table_name
from functions.core.tables import IDEMPOTENCY

# The ledger's key prefix (`functions.notifications.models.NotificationRecord.key`); API
# idempotency records start otherwise, and the orders' follow-ups carry no message id.
RECORD_PREFIX = "notification#"


@dataclass(frozen=True)
class SentMessage:
    customer_id: str
    template: str
    locale: str
    channel: str
    status: str
    segments: int | None
    updated_at: str
    provider_message_id: str | None


@dataclass
class Tally:
    template: str
    locale: str
    channel: str
    sent: int = 0
    failed: int = 0
    pending: int = 0
    segments: int = 0


def ledger(dynamodb: Any, table: str, customer_id: str | None = None) -> Iterator[SentMessage]:
    """Every notification record of `table` (of `customer_id` only, when given)."""
    # Messages only: the orders' follow-up items share the prefix, not the message id.
    expression = "begins_with(#id, :prefix) AND attribute_exists(notificationId)"
    values: dict[str, Any] = {":prefix": {"S": RECORD_PREFIX}}
    if customer_id is not None:
        expression += " AND customerId = :customer"
        values[":customer"] = {"S": customer_id}
    pages = dynamodb.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression=expression,
        ExpressionAttributeNames={"#id": "id"},
        ExpressionAttributeValues=values,
    )
    for page in pages:
        for item in page["Items"]:
            yield _message(item)


def _message(item: dict[str, Any]) -> SentMessage:
    def text(name: str) -> str | None:
        value = item.get(name, {}).get("S")
        return str(value) if value is not None else None

    segments = item.get("segments", {}).get("N")
    return SentMessage(
        customer_id=text("customerId") or "-",
        template=text("template") or "-",
        locale=text("locale") or "-",
        channel=text("channel") or "-",
        status=text("status") or "-",
        segments=int(segments) if segments is not None else None,
        updated_at=text("updatedAt") or "",
        provider_message_id=text("providerMessageId"),
    )


def tally(messages: list[SentMessage]) -> list[Tally]:
    """Counts by (template, locale, channel), in that order."""
    rows: dict[tuple[str, str, str], Tally] = {}
    for message in messages:
        key = (message.template, message.locale, message.channel)
        row = rows.setdefault(key, Tally(*key))
        if message.status == "sent":
            row.sent += 1
            row.segments += message.segments or 0
        elif message.status == "failed":
            row.failed += 1
        else:
            row.pending += 1
    return [rows[key] for key in sorted(rows)]


def print_tally(rows: list[Tally], out: TextIO) -> None:
    if not rows:
        print("no messages in the ledger", file=out)
        return
    header = f"{'template':<22} {'locale':<6} {'channel':<7} {'sent':>5} {'failed':>6} "
    print(header + f"{'pending':>7} {'segments':>8}", file=out)
    for row in rows:
        segments = str(row.segments) if row.channel == "sms" else ""
        print(
            f"{row.template:<22} {row.locale:<6} {row.channel:<7} {row.sent:>5} "
            f"{row.failed:>6} {row.pending:>7} {segments:>8}",
            file=out,
        )
    sent = sum(row.sent for row in rows)
    failed = sum(row.failed for row in rows)
    texts = sum(row.segments for row in rows if row.channel == "sms")
    print(f"{sent} sent, {failed} failed; SMS took {texts} segments", file=out)


def print_messages(messages: list[SentMessage], out: TextIO) -> None:
    for message in sorted(messages, key=lambda m: m.updated_at):
        segments = f" ({message.segments} segments)" if message.segments else ""
        print(
            f"{message.updated_at}  {message.status:<7} {message.channel:<5} "
            f"{message.locale:<2} {message.template}{segments}",
            file=out,
        )


def _camel(fields: dict[str, Any]) -> dict[str, Any]:
    """The API's spelling (`customerId`) for the JSON output."""
    return {re.sub(r"_(\w)", lambda m: m.group(1).upper(), name): v for name, v in fields.items()}


def run_sent(
    target: Target,
    *,
    customer_id: str | None = None,
    as_json: bool = False,
    out: TextIO | None = None,
) -> int:
    stream = out or sys.stdout
    table = table_name(target, IDEMPOTENCY)
    messages = list(ledger(target.client("dynamodb"), table, customer_id))
    if as_json:
        document: dict[str, Any] = {"byTemplate": [_camel(asdict(row)) for row in tally(messages)]}
        if customer_id is not None:
            document["messages"] = [_camel(asdict(message)) for message in messages]
        print(json.dumps(document, indent=2), file=stream)
        return 0
    if customer_id is not None:
        print_messages(messages, stream)
    print_tally(tally(messages), stream)
    return 0
