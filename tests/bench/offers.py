"""Offers: AWS calls and handler time per redemption, and 100,000 codes made and stored.

Everything runs on in-process moto (`mock_aws`), so the floors pay moto's cost too and
each ratio is what our code adds on top:

- AWS calls per redemption, with the campaign cached per container: every botocore API
  call is counted while N redemptions go through the API handler, with and without an
  ``Idempotency-Key`` (target <= 2 without one);
- handler time per redemption against the floor of the same requests sent bare with a
  boto3 client: the handler's GetItem and TransactWriteItems, captured from one
  redemption and replayed with fresh ids (target <= 1.3). moto answers most of both, so
  the time spent inside moto is measured too and each side's own time shown apart;
- `generate_codes` of 100,000 codes, time and traced peak (target < 5 s and < 200 MB),
  and `provision_codes` of 100,000 codes against the floor of as many bare
  TransactWriteItems of 99 puts (sampled, interleaved with its own, scaled up; target
  <= 1.5), set against the loader's 15 minutes.

moto's TransactWriteItems is patched (`patch_dynamodb_transactions`) for the whole run:
stock moto deep-copies the table for each item of a transaction, a cost that grows with
the table and would swamp the work measured here.
"""

from __future__ import annotations

import json
import resource
import secrets
import statistics
import tracemalloc
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final
from unittest import mock

import boto3
from botocore.client import BaseClient

from functions.campaigns.code_pool import CHUNK_SIZE, provision_codes
from functions.campaigns.codes import generate_codes
from functions.campaigns.config import parse_campaign
from functions.campaigns.dal import CampaignStore
from functions.campaigns.logic import Publish, SourceFile
from functions.campaigns.models import CodeGeneration
from functions.core.clock import frozen_at
from functions.core.idempotency import IDEMPOTENCY_KEY_HEADER
from functions.core.ids import new_id
from functions.offers.handlers import api
from infra.local.patches import patch_dynamodb_transactions
from infra.local.proxy_event import lambda_context, proxy_event
from tests.bench.in_process import (
    Call,
    MotoClock,
    Split,
    in_process_aws,
    recorded_calls,
    replayed,
    seconds_of,
    send,
    send_all,
)
from tests.bench.report import record, table

REDEMPTIONS = 100
TIMED_REDEMPTIONS = 60
ROUNDS = 5
CODES = 100_000
GENERATION_RUNS = 3
CALLS_TARGET = 2
HANDLER_TARGET = 1.3
GENERATION_SECONDS_TARGET = 5.0
GENERATION_MB_TARGET = 200.0
STORING_TARGET = 1.5
# provision_codes' transactions per bare transaction of the storing floor, a sample scaled
# up to all of them (a bare transaction for each would add two to three minutes).
FLOOR_EVERY = 8
LOADER_TIMEOUT_SECONDS = 15 * 60  # infra/constructs/campaigns.py LOADER_TIMEOUT

OPEN: Final = datetime(2027, 5, 3, 12, 0, tzinfo=UTC)
CODE: Final = "BENCH-500"
# One shared code, no per-customer or total limit, a budget far above what a run spends:
# every redemption of the bench is accepted.
CAMPAIGN: Final[dict[str, Any]] = {
    "id": "bench-offers",
    "name": "Offers benchmark",
    "kind": "offer",
    "currency": "JPY",
    "timezone": "Asia/Tokyo",
    "starts_at": "2027-05-01T10:00:00+09:00",
    "ends_at": "2027-05-16T00:00:00+09:00",
    "budget": {"amount": 1_000_000_000},
    "eligibility": {"channels": ["online"]},
    "offers": [
        {
            "id": "BENCH500",
            "channel": "online",
            "discount": {"amount": 500},
            "codes": {"mode": "shared", "code": CODE},
        }
    ],
}
CART: Final = {
    "currency": "JPY",
    "items": [{"sku": "TRAIL-01", "category": "shoes", "quantity": 1, "unitPrice": 12000}],
}


# -- redemptions ------------------------------------------------------------------------


def publish_campaign() -> None:
    """Publish `CAMPAIGN` as the loader does (tests/unit/offers/test_api.py `publish`)."""
    config = parse_campaign(CAMPAIGN)
    store = CampaignStore()
    source = SourceFile(key=f"campaigns/{config.id}.json", etag="etag-1")
    store.publish(Publish(config=config, version=1, source=source), OPEN)
    store.store_shared_codes(config, OPEN)
    store.provision_unique_codes(config)


def redeem(customer_id: str, order_id: str, idempotency_key: str | None = None) -> str:
    """One ``POST /v1/redemptions`` through the API handler; the redemption's id."""
    headers = {IDEMPOTENCY_KEY_HEADER: idempotency_key} if idempotency_key else None
    body = {
        "code": CODE,
        "customerId": customer_id,
        "orderId": order_id,
        "channel": "online",
        "cart": CART,
    }
    event = proxy_event("POST", "/v1/redemptions", body=body, headers=headers, api_key="bench-key")
    response = api.app.resolve(event, lambda_context())
    if response["statusCode"] != 201:
        raise RuntimeError(f"redemption refused: {response['statusCode']} {response['body']}")
    return str(json.loads(response["body"])["redemptionId"])


def count_calls(tag: str, with_key: bool) -> Counter[str]:
    """Operation names of the AWS calls made by `REDEMPTIONS` redemptions."""
    redeem(f"{tag}-warm", f"{tag}-warm")  # the campaign is in this container's cache
    with recorded_calls() as calls:
        for i in range(REDEMPTIONS):
            key = f"{tag}-key-{i}" if with_key else None
            redeem(f"{tag}-customer-{i}", f"{tag}-order-{i}", key)
    return Counter(operation for operation, _ in calls)


@dataclass(frozen=True)
class RedemptionRound:
    """One round's time per redemption: through the handler, and its requests bare."""

    handler: Split
    floor: Split

    @property
    def ratio(self) -> float:
        return self.handler.total / self.floor.total

    @property
    def own_ratio(self) -> float:
        return self.handler.own / self.floor.own


def time_rounds(template: list[Call], template_ids: list[str]) -> list[RedemptionRound]:
    """Handler and bare replay of its requests, `ROUNDS` rounds of `TIMED_REDEMPTIONS`,
    sorted by ratio.

    Within a round the two alternate redemption by redemption (which goes first, too),
    so a change in the machine's load falls on both alike.
    """
    client = boto3.client("dynamodb")
    clock = MotoClock()
    rounds: list[RedemptionRound] = []
    with clock.running():
        for round_ in range(ROUNDS):
            fresh = [
                (f"f{round_}-customer-{i}", f"f{round_}-order-{i}", new_id("red"))
                for i in range(TIMED_REDEMPTIONS)
            ]
            floor_requests = [
                replayed(template, dict(zip(template_ids, ids, strict=True))) for ids in fresh
            ]
            redeem(f"r{round_}-warm", f"r{round_}-warm")  # the campaign cached afresh
            handler, floor = Split(), Split()
            for i, requests in enumerate(floor_requests):
                customer, order = f"r{round_}-customer-{i}", f"r{round_}-order-{i}"
                if i % 2:
                    floor.add(clock, send_all, client, requests)
                    handler.add(clock, redeem, customer, order)
                else:
                    handler.add(clock, redeem, customer, order)
                    floor.add(clock, send_all, client, requests)
            per_redemption = [
                Split(side.total / TIMED_REDEMPTIONS, side.moto / TIMED_REDEMPTIONS)
                for side in (handler, floor)
            ]
            rounds.append(RedemptionRound(*per_redemption))
    return sorted(rounds, key=lambda r: r.ratio)


def breakdown(operations: Counter[str]) -> str:
    return ", ".join(
        f"{name} {count / REDEMPTIONS:g}" for name, count in sorted(operations.items())
    )


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def redemption_section() -> str:
    api.store.campaigns.clear()
    publish_campaign()
    with frozen_at(OPEN):
        bare = count_calls("plain", with_key=False)
        keyed = count_calls("keyed", with_key=True)
        # The template: one redemption's requests, its ids to be replaced when replayed.
        with recorded_calls() as template:
            redemption_id = redeem("template-customer-x", "template-order-x")
        if sorted(operation for operation, _ in template) != sorted(
            name for name, count in bare.items() for _ in range(count // REDEMPTIONS)
        ):
            raise RuntimeError(f"the template redemption made other calls: {template}")
        ids = ["template-customer-x", "template-order-x", redemption_id]
        rounds = time_rounds(template, ids)
    api.store.campaigns.clear()
    times = rounds[len(rounds) // 2]  # the median round (ROUNDS is odd)

    per_redemption = sum(bare.values()) / REDEMPTIONS
    per_keyed = sum(keyed.values()) / REDEMPTIONS
    calls_verdict = "ok" if per_redemption <= CALLS_TARGET else "over target"
    time_verdict = "ok" if times.ratio <= HANDLER_TARGET else "over target"
    calls_rows = [
        ["without `Idempotency-Key`", f"**{per_redemption:g}**", breakdown(bare), calls_verdict],
        ["with `Idempotency-Key`", f"{per_keyed:g}", breakdown(keyed), "(no target)"],
    ]
    time_rows = [
        [name, milliseconds(split.total), milliseconds(split.moto), milliseconds(split.own)]
        for name, split in [
            ("`POST /v1/redemptions` through the handler", times.handler),
            ("the same requests, bare boto3 (floor)", times.floor),
        ]
    ]
    return (
        f"### Redemption\n\n"
        f"AWS API calls per `POST /v1/redemptions` through "
        f"`functions.offers.handlers.api.app.resolve`, counted at botocore's "
        f"`BaseClient._make_api_call` (every PynamoDB and boto3 call passes there) over "
        f"{REDEMPTIONS} redemptions of one shared code by distinct customers and orders, "
        f"after one redemption has put the campaign in the container's cache. "
        f"Target: <= {CALLS_TARGET} calls without an idempotency key.\n\n"
        + table(["request", "calls per redemption", "operations", "verdict"], calls_rows)
        + f"\n\nHandler time per redemption against the floor of the same requests (the "
        f"handler's GetItem and TransactWriteItems, captured from one redemption and "
        f"replayed with fresh customer, order and redemption ids) sent with a plain boto3 "
        f"client to the same moto, no idempotency key; the two alternate request by "
        f"request, in {ROUNDS} rounds of {TIMED_REDEMPTIONS} (ratios "
        f"{rounds[0].ratio:.2f} to {rounds[-1].ratio:.2f}), the median round shown. "
        f"Target: ratio <= {HANDLER_TARGET}: **{times.ratio:.2f} ({time_verdict})**.\n\n"
        + table(["per redemption", "time", "inside moto", "outside moto"], time_rows)
        + f"\n\nmoto answering takes most of both, and the target's ratio includes it; "
        f"outside moto (the client's own work: for the handler, validation, pydantic, "
        f"PynamoDB, Powertools and botocore) the handler takes {times.own_ratio:.2f} times "
        f"what bare boto3 does."
    )


# -- codes ------------------------------------------------------------------------------


def median_run(action: Callable[[], object], runs: int) -> float:
    return statistics.median(seconds_of(action) for _ in range(runs))


def traced_peak_mb(action: Callable[[], object]) -> float:
    """Peak of the memory Python allocated while `action` ran, above what it held before."""
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        action()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return (peak - before) / 1_000_000


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def with_code(item: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """A copy of a stored code item naming `new` wherever it named `old`."""
    return {
        name: {"S": value["S"].replace(old, new)} if "S" in value else value
        for name, value in item.items()
    }


class BareStore:
    """Codes stored by bare boto3 TransactWriteItems of 99 puts, each put shaped like the
    ones `provision_codes` sends (its first put, captured once, with the code replaced)."""

    def __init__(self) -> None:
        with recorded_calls() as calls:
            provision_codes("BENCH-SHAPE", "bench-offers", prefix="SHAPE", count=1)
        self.operation, params = next(c for c in calls if c[0] == "TransactWriteItems")
        self.put = next(item["Put"] for item in params["TransactItems"] if "Put" in item)
        self.code = self.put["Item"]["code"]["S"]
        self.client = boto3.client("dynamodb")

    def store(self, codes: list[str], split: Split, clock: MotoClock) -> None:
        """Time the calls only (building the requests is not counted)."""
        for start in range(0, len(codes), CHUNK_SIZE):
            items = [
                {"Put": {**self.put, "Item": with_code(self.put["Item"], self.code, code)}}
                for code in codes[start : start + CHUNK_SIZE]
            ]
            split.add(clock, send, self.client, (self.operation, {"TransactItems": items}))


@dataclass(frozen=True)
class StoringTimes:
    provision: Split
    transactions: int
    floor: Split
    """The floor's sample scaled to `transactions` calls."""
    floor_transactions: int
    rss_growth_mb: float


def time_storing() -> StoringTimes:
    """`provision_codes` of `CODES` codes, with one bare transaction of its floor sent
    right after every `FLOOR_EVERY`-th of its own, timed apart and taken out of its time:
    both meet the same table and the same load on the machine, and the floor's sample
    is spread over the whole run."""
    bare_store = BareStore()
    bare_codes = generate_codes("BARE", CODES)
    clock = MotoClock()
    whole, sample = Split(), Split()
    transactions = floor_transactions = 0
    original = BaseClient._make_api_call

    def interleaved(client: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
        nonlocal transactions, floor_transactions
        answer = original(client, operation_name, api_params)
        if operation_name == "TransactWriteItems" and client is not bare_store.client:
            transactions += 1
            if transactions % FLOOR_EVERY == 0:
                start = floor_transactions * CHUNK_SIZE
                bare_store.store(bare_codes[start : start + CHUNK_SIZE], sample, clock)
                floor_transactions += 1
        return answer

    store = partial(provision_codes, "BENCH-BULK", "bench-offers", prefix="BULK", count=CODES)
    with clock.running(), mock.patch.object(BaseClient, "_make_api_call", interleaved):
        rss_before = max_rss_mb()
        whole.add(clock, store)
        rss_growth = max_rss_mb() - rss_before
    if CodeGeneration.for_offer("BENCH-BULK") != CODES:
        raise RuntimeError("provision_codes did not store every code")
    scale = transactions / floor_transactions
    return StoringTimes(
        provision=Split(whole.total - sample.total, whole.moto - sample.moto),
        transactions=transactions,
        floor=Split(sample.total * scale, sample.moto * scale),
        floor_transactions=floor_transactions,
        rss_growth_mb=rss_growth,
    )


def codes_section() -> str:
    floor_generation = median_run(
        lambda: [f"GEN-{secrets.token_hex(7)}" for _ in range(CODES)], GENERATION_RUNS
    )
    generation = median_run(lambda: generate_codes("GEN", CODES), GENERATION_RUNS)
    generation_mb = traced_peak_mb(lambda: generate_codes("GEN", CODES))
    storing = time_storing()

    generation_ok = generation < GENERATION_SECONDS_TARGET and generation_mb < GENERATION_MB_TARGET
    storing_ratio = storing.provision.total / storing.floor.total
    own_ratio = storing.provision.own / storing.floor.own
    rows = [
        [
            f"`generate_codes(prefix, {CODES:,})`",
            f"{generation:.2f} s",
            f"{generation_mb:.1f} MB traced",
            f"{generation / floor_generation:.2f} to {CODES:,} `secrets.token_hex(7)` "
            f"strings ({floor_generation:.2f} s)",
            f"< {GENERATION_SECONDS_TARGET:.0f} s and < {GENERATION_MB_TARGET:.0f} MB: "
            + ("ok" if generation_ok else "over target"),
        ],
        [
            f"`provision_codes(..., count={CODES:,})`",
            f"{storing.provision.total:.1f} s ({storing.provision.own:.1f} s outside moto)",
            f"+{storing.rss_growth_mb:.0f} MB resident, moto's copies of the items included",
            f"**{storing_ratio:.2f}** to {storing.transactions:,} bare TransactWriteItems "
            f"of {CHUNK_SIZE} puts ({storing.floor.total:.1f} s, {storing.floor.own:.1f} s "
            f"outside moto)",
            f"<= {STORING_TARGET}: " + ("ok" if storing_ratio <= STORING_TARGET else "over target"),
        ],
    ]
    own = storing.provision.own
    return (
        f"### {CODES:,} codes\n\n"
        f"Generation: median of {GENERATION_RUNS} runs; peak traced by tracemalloc in a "
        f"separate run, above what was allocated before. Storing: one `provision_codes` "
        f"on moto ({storing.transactions:,} transactions of {CHUNK_SIZE} conditional puts "
        f"and the offer's generation count) against bare boto3 TransactWriteItems of "
        f"{CHUNK_SIZE} puts of the same items with fresh codes (the count's update, the "
        f"100th item, is not in the floor). The floor is a sample: one bare transaction "
        f"sent right after every {FLOOR_EVERY}th of `provision_codes` "
        f"({storing.floor_transactions:,} in all, timed apart and taken out of its time), "
        f"scaled to {storing.transactions:,}.\n\n"
        + table(["work", "time", "memory", "ratio to floor", "target"], rows)
        + f"\n\nOutside moto, storing takes {own_ratio:.2f} times what the bare calls do. "
        f"The loader's timeout is {LOADER_TIMEOUT_SECONDS // 60} minutes (`LOADER_TIMEOUT`): "
        f"storing {CODES:,} codes took {storing.provision.total:.0f} s here, "
        f"{storing.provision.total / LOADER_TIMEOUT_SECONDS:.0%} of it, of which "
        f"{own:.0f} s ({own / LOADER_TIMEOUT_SECONDS:.0%}) is the client's own work, what "
        f"a Lambda pays too (its CPU share grows with its memory size, a full vCPU at "
        f"1,769 MB). On DynamoDB, moto's share is replaced by {storing.transactions:,} "
        f"transaction round trips: at 50 ms each, {storing.transactions * 0.05:.0f} s more."
    )


def run() -> None:
    patch_dynamodb_transactions()
    with in_process_aws():
        redemptions = redemption_section()
        codes = codes_section()
    body = (
        "On in-process moto (`mock_aws`), its TransactWriteItems patched by "
        "`infra.local.patches.patch_dynamodb_transactions` (stock moto 5.2.5 deep-copies "
        "the table for every item of a transaction, a cost that grows with the table and "
        "would swamp what is measured).\n\n" + redemptions + "\n\n" + codes
    )
    record("offers", "Offers: redemption calls and time, bulk codes", body)


if __name__ == "__main__":
    run()
