"""Wallet: AWS calls and handler time per cashback credit and per spend.

On in-process moto, with its TransactWriteItems patched as for the offers benchmark:

- AWS calls per purchase that earns cashback in one campaign (`POST /v1/purchases`), and
  per spend (`POST /v1/customers/{customerId}/wallet/spend`), counted at botocore
  (target: one transaction each, plus at most one read);
- handler time per request against the floor of the same requests (captured from one
  request through the handler, replayed bare with fresh ids by a boto3 client), the two
  alternating request by request (target: ratio <= 1.3).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import boto3

from functions.campaigns.config import parse_campaign
from functions.campaigns.dal import CampaignStore
from functions.campaigns.logic import Publish, SourceFile
from functions.core.clock import frozen_at
from functions.wallet.handlers import api
from infra.local.patches import patch_dynamodb_transactions
from infra.local.proxy_event import lambda_context, proxy_event
from tests.bench.in_process import (
    Call,
    MotoClock,
    Split,
    in_process_aws,
    recorded_calls,
    replayed,
    send_all,
)
from tests.bench.report import record, table

REQUESTS = 60
ROUNDS = 5
TRANSACTIONS_TARGET = 1
READS_TARGET = 1
HANDLER_TARGET = 1.3
READS: Final = frozenset({"GetItem", "Query", "BatchGetItem"})

NOW: Final = datetime(2027, 7, 1, 16, 0, tzinfo=UTC)
# Cashback available at once (so spends have something to draw on), a budget far above
# what a run spends, and no per-customer limit that a run could reach.
CAMPAIGN: Final[dict[str, Any]] = {
    "id": "bench-cashback",
    "name": "Wallet benchmark",
    "kind": "cashback",
    "currency": "USD",
    "timezone": "America/New_York",
    "starts_at": "2027-06-01T00:00:00-04:00",
    "ends_at": "2027-09-01T00:00:00-04:00",
    "budget": {"amount": 10_000_000_000},
    "eligibility": {"channels": ["online"]},
    "reward": {"percentage": 5, "max_per_reward": 2000},
    "limits": {"per_customer": 1_000_000},
    "cashback": {"pending_days": 0, "expires_after_days": 365},
}


def publish_campaign() -> None:
    config = parse_campaign(CAMPAIGN)
    source = SourceFile(key=f"campaigns/{config.id}.json", etag="etag-1")
    CampaignStore().publish(Publish(config=config, version=1, source=source), NOW)


def _resolve(method: str, path: str, body: dict[str, Any], expected: int) -> dict[str, Any]:
    event = proxy_event(method, path, body=body, api_key="bench-key")
    response = api.app.resolve(event, lambda_context())
    if response["statusCode"] != expected:
        raise RuntimeError(f"{method} {path}: {response['statusCode']} {response['body']}")
    answer: dict[str, Any] = json.loads(response["body"])
    return answer


def purchase(customer_id: str, order_id: str) -> None:
    """One purchase earning cashback (5% of $100.00) in the one campaign."""
    body = {
        "orderId": order_id,
        "customerId": customer_id,
        "channel": "online",
        "placedAt": "2027-07-01T15:00:00Z",
        "currency": "USD",
        "items": [{"sku": "TENT-2", "category": "tents", "quantity": 1, "unitPrice": 10_000}],
        "total": 10_000,
    }
    answer = _resolve("POST", "/v1/purchases", body, 202)
    if [earning["outcome"] for earning in answer["earnings"]] != ["credited"]:
        raise RuntimeError(f"the purchase earned nothing: {answer}")


def spend(customer_id: str, order_id: str) -> None:
    """One spend of $1.00 from the customer's available cashback."""
    body = {"orderId": order_id, "amount": 100, "currency": "USD"}
    _resolve("POST", f"/v1/customers/{customer_id}/wallet/spend", body, 201)


@dataclass(frozen=True)
class Operation:
    name: str
    route: str
    # Runs the request for (customer id, order id).
    run: Callable[[str, str], None]
    # Makes what the request needs before it runs, outside the timing (for a spend: a
    # balance to draw on).
    prepare: Callable[[str], None]


def _nothing(customer_id: str) -> None:
    del customer_id


def _funded(customer_id: str) -> None:
    purchase(customer_id, f"{customer_id}-funding")


OPERATIONS: Final = (
    Operation("credit", "POST /v1/purchases", purchase, _nothing),
    Operation("spend", "POST /v1/customers/{customerId}/wallet/spend", spend, _funded),
)


def count_calls(operation: Operation) -> Counter[str]:
    """Operation names of the AWS calls `REQUESTS` requests of a warm container make."""
    customers = [f"{operation.name}-count-{i}" for i in range(REQUESTS)]
    for customer in customers:
        operation.prepare(customer)
    # The campaign's file is in this container's cache, as in a warm one.
    warm = f"{operation.name}-warm"
    operation.prepare(warm)
    operation.run(warm, f"{warm}-order")
    with recorded_calls() as calls:
        for i, customer in enumerate(customers):
            operation.run(customer, f"{customer}-order-{i}")
    return Counter(name for name, _ in calls)


@dataclass(frozen=True)
class Round:
    handler: Split
    floor: Split

    @property
    def ratio(self) -> float:
        return self.handler.total / self.floor.total


def time_rounds(operation: Operation) -> list[Round]:
    """Handler and the bare replay of its requests, alternating request by request."""
    template_customer, template_order = f"{operation.name}-template", f"{operation.name}-t-order"
    operation.prepare(template_customer)
    with recorded_calls() as template:
        operation.run(template_customer, template_order)
    captured: list[Call] = list(template)
    client = boto3.client("dynamodb")
    clock = MotoClock()
    rounds: list[Round] = []
    with clock.running():
        for round_ in range(ROUNDS):
            handler, floor = Split(), Split()
            for i in range(REQUESTS):
                customer, order = f"{operation.name}-r{round_}-{i}", f"r{round_}-order-{i}"
                bare_customer, bare_order = f"{operation.name}-b{round_}-{i}", f"b{round_}-{i}"
                operation.prepare(customer)
                operation.prepare(bare_customer)
                requests = replayed(
                    captured, {template_customer: bare_customer, template_order: bare_order}
                )
                if i % 2:
                    floor.add(clock, send_all, client, requests)
                    handler.add(clock, operation.run, customer, order)
                else:
                    handler.add(clock, operation.run, customer, order)
                    floor.add(clock, send_all, client, requests)
            rounds.append(
                Round(
                    Split(handler.total / REQUESTS, handler.moto / REQUESTS),
                    Split(floor.total / REQUESTS, floor.moto / REQUESTS),
                )
            )
    return sorted(rounds, key=lambda r: r.ratio)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def run() -> None:
    rows_calls: list[list[str]] = []
    rows_time: list[list[str]] = []
    verdicts: list[str] = []
    patch_dynamodb_transactions()
    with in_process_aws(), frozen_at(NOW):
        publish_campaign()
        for operation in OPERATIONS:
            calls = count_calls(operation)
            per_request = {name: count / REQUESTS for name, count in sorted(calls.items())}
            transactions = per_request.get("TransactWriteItems", 0.0)
            reads = sum(count for name, count in per_request.items() if name in READS)
            others = {
                name: count
                for name, count in per_request.items()
                if name not in READS and name != "TransactWriteItems"
            }
            ok = transactions <= TRANSACTIONS_TARGET and reads <= READS_TARGET and not others
            rows_calls.append(
                [
                    f"{operation.name} (`{operation.route}`)",
                    f"**{sum(per_request.values()):g}**",
                    ", ".join(f"{name} {count:g}" for name, count in per_request.items()),
                    "ok" if ok else "over target",
                ]
            )
            rounds = time_rounds(operation)
            median = rounds[len(rounds) // 2]
            ratio_ok = median.ratio <= HANDLER_TARGET
            verdicts.append(
                f"{operation.name} **{median.ratio:.2f} ({'ok' if ratio_ok else 'over target'})**"
            )
            rows_time.append(
                [
                    f"{operation.name} through the handler",
                    _ms(median.handler.total),
                    _ms(median.handler.moto),
                    _ms(median.handler.own),
                ]
            )
            rows_time.append(
                [
                    f"{operation.name}, the same requests bare (floor)",
                    _ms(median.floor.total),
                    _ms(median.floor.moto),
                    _ms(median.floor.own),
                ]
            )
            rows_time.append(
                [
                    f"{operation.name}: ratio, median round (lowest to highest)",
                    f"{median.ratio:.2f} ({rounds[0].ratio:.2f} to {rounds[-1].ratio:.2f})",
                    "",
                    f"own time {median.handler.own / median.floor.own:.2f} x",
                ]
            )
    body = "\n".join(
        [
            "On in-process moto (`mock_aws`), its TransactWriteItems patched as for the offers "
            "benchmark. A purchase earns cashback in one campaign (5%, available at once); a "
            "spend draws $1.00 from cashback so earned.",
            "",
            "### AWS calls per request",
            "",
            f"Counted at botocore over {REQUESTS} requests by distinct customers. Target: "
            f"at most {TRANSACTIONS_TARGET} transaction and {READS_TARGET} read each.",
            "",
            table(["request", "calls", "operations", "verdict"], rows_calls),
            "",
            "### Handler time",
            "",
            f"Each request through the API handler against the same requests (captured from "
            f"one through the handler, replayed with fresh ids) sent by a plain boto3 client "
            f"to the same moto, alternating request by request, {ROUNDS} rounds of "
            f"{REQUESTS}; the median round shown. Target: ratio <= {HANDLER_TARGET}: "
            + "; ".join(verdicts)
            + ".",
            "",
            table(["per request", "time", "inside moto", "outside moto"], rows_time),
        ]
    )
    record("wallet", "Wallet: calls and time per credit and per spend", body)
