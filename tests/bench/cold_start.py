"""Cold start of every deployed handler: its import, and what its first request costs.

The handlers are read from the synthesized template: the `Handler` of every
`AWS::Lambda::Function` whose code is the project's code asset. CDK's own functions
(inline custom-resource code, such as the S3 notifications handler, or another asset)
are listed as skipped, never measured. So a new handler cannot be left out.

Each sample is a fresh interpreter on the Lambda-like path (`tests.bench.lambda_like`),
with the function's own environment as the local cloud deploys it, pointed at a local
cloud (moto as a server) started from the same template. It imports the handler module
(timed), runs the handler on a representative event (the first request, timed), then on
an equivalent one (a warm request, timed). The first request minus the warm one is what
the import left for the first request to pay (clients, lazy imports, caches), so a cost
moved from the import to the first request still shows up in the cold start:
import + (first - warm).

The floor is a function that imports boto3 and, on its first request, makes a DynamoDB
client and one GetItem: what any function using AWS pays anyway.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from tests.bench.lambda_like import ISOLATED_FLAGS, MIRROR_DIR, LambdaLikePath
from tests.bench.rebate_campaign import REBATE_CAMPAIGN

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN: Final = ("aws_cdk", "moto", "duckdb")
RESULT_MARK: Final = "BENCH-RESULT "
FLOOR_MODULE: Final = "bench_floor"
# The store opening runs 2027-05-01 10:00 to 2027-05-16 (Tokyo): requests are made on
# its third day, through the clock offset every function reads (as the demo does).
NOW: Final = datetime(2027, 5, 3, 3, 0, tzinfo=UTC)
CAMPAIGN_FILE: Final = ROOT / "examples" / "campaigns" / "store-opening-2027.json"
# The id of the campaign the seeding publishes from `CAMPAIGN_FILE` (the claims credit
# names it).
BENCH_CAMPAIGN_ID: Final = "store-opening-2027"
# Unique codes per offer in the files the bench publishes: enough to exercise
# provisioning, few enough that moto answers quickly.
BENCH_UNIQUE_CODES: Final = 100
LINES: Final[list[dict[str, Any]]] = [
    {"sku": "TENT-2", "category": "tents", "quantity": 1, "unitPrice": 24000}
]
CART: Final = {"currency": "JPY", "items": LINES}
# The rebate the claims handlers' requests are for, running on the bench's day: receipts
# required, ¥1,000 back from ¥8,000 of trail shoes (approved automatically), ¥2,500 from
# ¥15,000 (above the automatic limit: reviewed); no limit a run reaches.
AUTO_APPROVED_PRICE: Final = 9000
REVIEWED_PRICE: Final = 16000
# After the seeding, the claims API starts executions on this one instead: a single
# Succeed state, so the claims the children submit are recorded and verified by no one
# in this process while the children are measured.
RECORDING_STATE_MACHINE: Final = "bench-claims-recorded"

# The child: import, first request, warm request; one JSON line after RESULT_MARK.
CHILD: Final = """
import json, sys, time
spec = json.loads(sys.stdin.readline())
sys.path[:0] = spec["path"]

class Context:
    function_name = spec["function"]
    memory_limit_in_mb = spec["memory"]
    invoked_function_arn = spec["arn"]
    function_version = "$LATEST"
    log_group_name = "/aws/lambda/" + spec["function"]
    log_stream_name = "bench"
    def __init__(self, request_id):
        self.aws_request_id = request_id
    def get_remaining_time_in_millis(self):
        return 30_000

def timed(action, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    value = action(*args)
    return value, time.perf_counter() - wall, time.process_time() - cpu

module, wall, cpu = timed(__import__, spec["module"], None, None, ["_"])
result = {"import": [wall, cpu]}
if spec["events"]:
    handler = getattr(module, spec["attribute"])
    first, warm = spec["events"]
    before = set(sys.modules)
    response, wall, cpu = timed(handler, first, Context("bench-first"))
    result["first"] = [wall, cpu]
    result["first_imports"] = sorted(set(sys.modules) - before)
    result["responses"] = [response]
    response, wall, cpu = timed(handler, warm, Context("bench-warm"))
    result["warm"] = [wall, cpu]
    result["responses"].append(response)
result["forbidden"] = sorted({m.split(".")[0] for m in sys.modules} & set(spec["forbidden"]))
print("%s%s" % (spec["mark"], json.dumps(result, default=str)))
"""

# The floor function: boto3 at import, a client and one GetItem on the first request.
FLOOR_SOURCE: Final = '''"""The floor of the cold-start bench: what any function using AWS pays."""

import boto3

_client = None


def handler(event, context):
    global _client
    if _client is None:
        _client = boto3.client("dynamodb")
    return _client.get_item(TableName=event["table"], Key=event["key"])["ResponseMetadata"]
'''


# Which functions the template deploys -------------------------------------------------


@dataclass(frozen=True)
class Deployed:
    logical_id: str
    handler: str  # "functions.core.health.handler"

    @property
    def module(self) -> str:
        return self.handler.replace("/", ".").rpartition(".")[0]

    @property
    def attribute(self) -> str:
        return self.handler.rpartition(".")[2]


@dataclass(frozen=True)
class Skipped:
    logical_id: str
    handler: str
    why: str


def tree_digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def deployed_functions(
    template: Mapping[str, Any], assembly_dir: Path, code_dir: Path
) -> tuple[list[Deployed], list[Skipped]]:
    """Every function whose code is the project's code asset, and every other one.

    A function's asset is the directory its `aws:asset:path` metadata names in the
    cloud assembly (`aws:cdk:enable-asset-metadata`, which `infra.app` turns on); it is
    the code asset when its files are the code asset's files.
    """
    code = tree_digest(code_dir)
    digests: dict[str, str] = {}
    deployed: list[Deployed] = []
    skipped: list[Skipped] = []
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Lambda::Function":
            continue
        properties = resource.get("Properties", {})
        handler = str(properties.get("Handler", ""))
        if "ZipFile" in properties.get("Code", {}):
            skipped.append(Skipped(logical_id, handler, "inline code (a CDK custom resource)"))
            continue
        asset = resource.get("Metadata", {}).get("aws:asset:path")
        if asset is None:
            raise RuntimeError(f"{logical_id}: no aws:asset:path metadata: cannot tell its code")
        if asset not in digests:
            digests[asset] = tree_digest(assembly_dir / asset)
        if digests[asset] != code:
            skipped.append(Skipped(logical_id, handler, f"another asset ({asset})"))
            continue
        deployed.append(Deployed(logical_id, handler))
    return deployed, skipped


# Representative events, made against the running local cloud ----------------------------


@dataclass
class Seeded:
    """The local cloud the children talk to, and what the seeding put in it."""

    cloud: Any  # infra.local.cloud.LocalCloud
    bucket: str
    outbox_event: dict[str, Any]
    table: str
    table_key: dict[str, Any]
    wallet_outbox_event: dict[str, Any]
    claims: ClaimsSeeding
    notified: str
    counter: Iterator[int] = field(default_factory=lambda: iter(range(1, 1_000_000)))


@dataclass(frozen=True)
class ClaimsSeeding:
    """The claims functions' names in the local cloud, and what their requests need."""

    api: str
    steps: str
    receipts: str
    receipts_bucket: str
    claims_table: str
    outbox_event: dict[str, Any]


def _proxy(method: str, path: str, body: Any = None) -> dict[str, Any]:
    from infra.local.proxy_event import proxy_event

    return proxy_event(method, path, body=body, api_key="bench-key")


def _redemption(n: int) -> dict[str, Any]:
    body = {
        "code": "shibuya-open",
        "customerId": f"bench-customer-{n}",
        "orderId": f"bench-order-{n}",
        "channel": "in_store",
        "cart": CART,
    }
    return _proxy("POST", "/v1/redemptions", body)


def _purchase(n: int) -> dict[str, Any]:
    # No cashback campaign runs in the bench's cloud: the purchase is recorded and earns
    # nothing, after reading which campaigns run.
    body = {
        "orderId": f"bench-purchase-{n}",
        "customerId": f"bench-customer-{n}",
        "channel": "online",
        "placedAt": NOW.isoformat(),
        "currency": "JPY",
        "items": LINES,
        "total": sum(line["quantity"] * line["unitPrice"] for line in LINES),
    }
    return _proxy("POST", "/v1/purchases", body)


def _claim_credit(n: int) -> dict[str, Any]:
    """What the claims state machine hands the credit task for an approved claim."""
    return {
        "customerId": f"bench-claimant-{n}",
        "campaignId": BENCH_CAMPAIGN_ID,
        "claimId": f"clm_bench_{n}",
        "amount": {"amount": 500, "currency": "JPY"},
        "approvedAt": NOW.isoformat(),
    }


def _scheduled_event(rule: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "time": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "resources": [f"arn:aws:events:ap-northeast-1:123456789012:rule/{rule}"],
        "detail": {},
    }


def _campaign_document(suffix: str, n: int | None = None) -> dict[str, Any]:
    """The store-opening example, renamed apart when `n` is given; few unique codes."""
    document: dict[str, Any] = json.loads(CAMPAIGN_FILE.read_text(encoding="utf-8"))
    for offer in document["offers"]:
        if offer["codes"]["mode"] == "unique":
            offer["codes"]["count"] = BENCH_UNIQUE_CODES
            offer["usage"]["max_total"] = min(offer["usage"]["max_total"], BENCH_UNIQUE_CODES)
    if n is not None:
        document["id"] = f"bench-{suffix}-{n}"
        for index, offer in enumerate(document["offers"]):
            offer["id"] = f"BENCH{n}X{index}"
            if offer["codes"]["mode"] == "shared":
                offer["codes"]["code"] = f"bench-{n}-{index}"
            else:
                offer["codes"]["prefix"] = f"B{n}X{index}"
    return document


def _upload_campaign(seeded: Seeded, n: int) -> dict[str, Any]:
    """A fresh campaign file in the bucket (no notification: the child loads it), and the
    S3 event Lambda would get for it."""
    import yaml

    key = f"campaigns/bench-{n}.yaml"
    body = yaml.safe_dump(_campaign_document("loader", n), sort_keys=False).encode()
    s3 = seeded.cloud.client("s3")
    s3.put_object(Bucket=seeded.bucket, Key=key, Body=body)
    head = s3.head_object(Bucket=seeded.bucket, Key=key)
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": seeded.cloud.config.region,
                "eventTime": datetime.now(UTC).isoformat(),
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": seeded.bucket, "arn": f"arn:aws:s3:::{seeded.bucket}"},
                    "object": {
                        "key": key,
                        "size": len(body),
                        "eTag": head["ETag"].strip('"'),
                        "versionId": head.get("VersionId"),
                        "sequencer": f"{n:016X}",
                    },
                },
            }
        ]
    }


def _invoked(cloud: Any, function: str, event: Any) -> Any:
    """`function`'s answer to `event`, run here (outside any child's measurement)."""
    result = cloud.runtime.invoke(function, event)
    if result.is_error:
        raise RuntimeError(f"{function}: {result.error}")
    return result.payload


def _answered(payload: Any, status: int) -> dict[str, Any]:
    if not isinstance(payload, dict) or payload.get("statusCode") != status:
        raise RuntimeError(f"expected {status}, got {str(payload)[:2000]}")
    body: dict[str, Any] = json.loads(payload["body"])
    return body


def _uploaded_receipt(cloud: Any, claims: ClaimsSeeding, n: int) -> str:
    """A receipt photo granted to the n-th claimant and POSTed to S3 with the presigned
    form; not checked yet (the receipts bucket notifies no one after the seeding)."""
    from infra.local.demo_claims import post_form, receipt_png

    photo = receipt_png(n)
    upload = {"customerId": f"bench-claimant-{n}", "contentType": "image/png", "size": len(photo)}
    granted = _answered(
        _invoked(cloud, claims.api, _proxy("POST", "/v1/claims/uploads", upload)), 201
    )
    status, answer = post_form(
        granted["upload"]["url"], granted["upload"]["fields"], photo, "image/png"
    )
    if status != 204:
        raise RuntimeError(f"the receipt upload was refused: {status} {answer[:500]!r}")
    return str(granted["receiptKey"])


def _receipt_event(cloud: Any, claims: ClaimsSeeding, key: str) -> dict[str, Any]:
    """The S3 notification of the receipt upload at `key`, as Lambda gets it."""
    bucket = claims.receipts_bucket
    head = cloud.client("s3").head_object(Bucket=bucket, Key=key)
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": cloud.config.region,
                "eventTime": datetime.now(UTC).isoformat(),
                "eventName": "ObjectCreated:Post",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {
                        "key": key,
                        "size": head["ContentLength"],
                        "eTag": head["ETag"].strip('"'),
                        "sequencer": f"{uuid.uuid4().int:016X}"[:16],
                    },
                },
            }
        ]
    }


def _checked_receipt(cloud: Any, claims: ClaimsSeeding, n: int) -> str:
    key = _uploaded_receipt(cloud, claims, n)
    _invoked(cloud, claims.receipts, _receipt_event(cloud, claims, key))
    return key


def _claim(n: int, receipt_key: str, price: int = AUTO_APPROVED_PRICE) -> dict[str, Any]:
    purchase = {
        "retailer": "Trailhead Shibuya",
        "receiptNumber": f"BENCH-{n}",
        "purchasedAt": "2027-05-02T14:00:00+09:00",
        "currency": "JPY",
        "items": [{"sku": "TRAIL-01", "category": "shoes", "quantity": 1, "unitPrice": price}],
        "total": price,
    }
    body = {
        "campaignId": REBATE_CAMPAIGN["id"],
        "customerId": f"bench-claimant-{n}",
        "purchase": purchase,
        "receiptKey": receipt_key,
    }
    return _proxy("POST", "/v1/claims", body)


def _published_campaign() -> dict[str, Any]:
    """The store opening the bench publishes: its online offer issued after a purchase
    too, so the post-purchase codes function has a code to give each new buyer."""
    document = _campaign_document("api")
    web = next(offer for offer in document["offers"] if offer["channel"] == "online")
    web["issue_after_purchase"] = True
    return document


def _sqs_event(detail: Any) -> dict[str, Any]:
    """The SQS event of one message whose body is the EventBridge envelope a rule
    delivers for `detail` (an `functions.core.event_types` model)."""
    envelope = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail.detail_type,
        "source": detail.source,
        "account": "123456789012",
        "time": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "ap-northeast-1",
        "resources": [],
        "detail": detail.model_dump(mode="json", by_alias=True),
    }
    body = json.dumps(envelope)
    sent = str(int(NOW.timestamp() * 1000))
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": f"bench-{uuid.uuid4()}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": sent,
                    "SenderId": "123456789012",
                    "ApproximateFirstReceiveTimestamp": sent,
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:ap-northeast-1:123456789012:bench",
                "awsRegion": "ap-northeast-1",
            }
        ]
    }


def _profile(n: int) -> dict[str, Any]:
    body = {
        "email": f"bench-profile-{n}@example.com",
        "phone": f"+81 90 {1000 + n:04d} 5678",
        "locale": "ja",
        "country": "JP",
        "marketingOptIn": True,
    }
    return _proxy("PUT", f"/v1/customers/bench-profile-{n}/profile", body)


def _claim_approved(seeded: Seeded) -> dict[str, Any]:
    from functions.core.event_types import ClaimApproved
    from functions.core.money import Money

    n = next(seeded.counter)
    return _sqs_event(
        ClaimApproved(
            eventId=f"evt-bench-approved-{n}",
            occurredAt=NOW,
            customerId=seeded.notified,
            campaignId=REBATE_CAMPAIGN["id"],
            claimId=f"clm_bench_approved_{n}",
            reward=Money.of(1000, "JPY"),
        )
    )


def _campaign_rejected(seeded: Seeded) -> dict[str, Any]:
    from functions.core.event_types import CampaignRejected, ValidationIssue

    n = next(seeded.counter)
    return _sqs_event(
        CampaignRejected(
            eventId=f"evt-bench-rejected-{n}",
            occurredAt=NOW,
            campaignId=f"bench-broken-{n}",
            fileKey=f"campaigns/bench-broken-{n}.yaml",
            errors=[ValidationIssue(path="ends_at", message="must be after starts_at")],
        )
    )


def _purchase_recorded(seeded: Seeded) -> dict[str, Any]:
    from functions.core.event_types import LineItem, PurchaseRecorded
    from functions.core.money import Money

    n = next(seeded.counter)
    price = Money.of(LINES[0]["unitPrice"], "JPY")
    return _sqs_event(
        PurchaseRecorded(
            eventId=f"evt-bench-purchased-{n}",
            occurredAt=NOW,
            customerId=f"bench-buyer-{n}",
            orderId=f"bench-order-online-{n}",
            channel="online",
            placedAt=NOW,
            total=price,
            items=[LineItem(sku="TENT-2", category="tents", quantity=1, unitPrice=price)],
        )
    )


def _submitted_claim(cloud: Any, claims: ClaimsSeeding, n: int) -> str:
    """A claim with its receipt checked, submitted here (its execution only recorded)."""
    claim = _claim(n, _checked_receipt(cloud, claims, n))
    return str(_answered(_invoked(cloud, claims.api, claim), 202)["claimId"])


def _new_receipt(seeded: Seeded) -> dict[str, Any]:
    key = _uploaded_receipt(seeded.cloud, seeded.claims, next(seeded.counter))
    return _receipt_event(seeded.cloud, seeded.claims, key)


def _new_claim(seeded: Seeded) -> dict[str, Any]:
    n = next(seeded.counter)
    return _claim(n, _checked_receipt(seeded.cloud, seeded.claims, n))


def _verify_step(seeded: Seeded) -> dict[str, Any]:
    claim_id = _submitted_claim(seeded.cloud, seeded.claims, next(seeded.counter))
    return {"step": "verify", "claimId": claim_id}


def _keeper_round(seeded: Seeded) -> dict[str, Any]:
    """The keeper's scheduled event, once every claim the children submitted is verified
    here, as its execution would have (they are only recorded): a claim still
    ``submitted`` minutes later is one the keeper restarts."""
    dynamodb = seeded.cloud.client("dynamodb")
    pages = dynamodb.get_paginator("query").paginate(
        TableName=seeded.claims.claims_table,
        IndexName="gsi2",
        KeyConditionExpression="gsi2pk = :status",
        ExpressionAttributeValues={":status": {"S": "CLAIMS#submitted"}},
    )
    for page in pages:
        for item in page["Items"]:
            step = {"step": "verify", "claimId": item["claimId"]["S"]}
            _invoked(seeded.cloud, seeded.claims.steps, step)
    return _scheduled_event("bench-review-keeper")


Check = Callable[[Any], bool]


@dataclass(frozen=True)
class Representative:
    """A first and a warm event for one handler, and what a successful answer is."""

    what: str
    events: Callable[[Seeded], tuple[Any, Any]]
    ok: Check


def _status(*codes: int) -> Check:
    return lambda response: isinstance(response, dict) and response.get("statusCode") in codes


def _loaded(response: Any) -> bool:
    results = response.get("results", []) if isinstance(response, dict) else []
    return bool(results) and all(r.get("outcome") == "published" for r in results)


def _no_failures(response: Any) -> bool:
    return isinstance(response, dict) and response.get("batchItemFailures") == []


def _credited(response: Any) -> bool:
    return isinstance(response, dict) and bool(response.get("lotId"))


def _swept(response: Any) -> bool:
    return isinstance(response, dict) and "released" in response


def _approved(response: Any) -> bool:
    return isinstance(response, dict) and response.get("outcome") == "approve"


def _receipt_checked(response: Any) -> bool:
    results = response.get("results", []) if isinstance(response, dict) else []
    return bool(results) and all(
        r.get("outcome") == "checked" and r.get("status") == "valid" for r in results
    )


def _reminders_swept(response: Any) -> bool:
    return isinstance(response, dict) and "reminded" in response


def _kept(response: Any) -> bool:
    return (
        isinstance(response, dict)
        and response.get("heartbeats", 0) >= 1
        and response.get("restarted") == 0
    )


# Keyed by the template's Handler. A deployed handler missing here is still measured for
# its import, and the report says it has no first-request figure until one is added.
REPRESENTATIVE: Final[dict[str, Representative]] = {
    "functions.core.health.handler": Representative(
        "GET /v1/health",
        lambda seeded: (_proxy("GET", "/v1/health"), _proxy("GET", "/v1/health")),
        _status(200),
    ),
    "functions.offers.handlers.api.handler": Representative(
        "POST /v1/redemptions of a shared code, no idempotency key (the first also fills "
        "the container's campaign cache)",
        lambda seeded: (_redemption(next(seeded.counter)), _redemption(next(seeded.counter))),
        _status(201),
    ),
    "functions.offers.handlers.outbox.handler": Representative(
        "the Campaigns-table stream batch of one redemption (OfferRedeemed published)",
        lambda seeded: (seeded.outbox_event, seeded.outbox_event),
        _no_failures,
    ),
    "functions.wallet.handlers.api.handler": Representative(
        "POST /v1/purchases of a new order, no idempotency key (no cashback campaign runs: "
        "recorded, earning nothing)",
        lambda seeded: (_purchase(next(seeded.counter)), _purchase(next(seeded.counter))),
        _status(202),
    ),
    "functions.wallet.handlers.credit.handler": Representative(
        "the claims workflow's credit of an approved claim (a new lot, available at once)",
        lambda seeded: (_claim_credit(next(seeded.counter)), _claim_credit(next(seeded.counter))),
        _credited,
    ),
    "functions.wallet.handlers.sweep.handler": Representative(
        "the scheduled sweep with nothing due (a sweep has run before)",
        lambda seeded: (_scheduled_event("bench-sweep"), _scheduled_event("bench-sweep")),
        _swept,
    ),
    "functions.wallet.handlers.outbox.handler": Representative(
        "the Wallet-table stream batch of one purchase (PurchaseRecorded published)",
        lambda seeded: (seeded.wallet_outbox_event, seeded.wallet_outbox_event),
        _no_failures,
    ),
    "functions.claims.handlers.api.handler": Representative(
        "POST /v1/claims of a new claim with its checked receipt, no idempotency key (the "
        "first also fills the container's campaign cache)",
        lambda seeded: (_new_claim(seeded), _new_claim(seeded)),
        _status(202),
    ),
    "functions.claims.handlers.steps.handler": Representative(
        "the state machine's first task: verify a new claim with a checked receipt (approved "
        "automatically)",
        lambda seeded: (_verify_step(seeded), _verify_step(seeded)),
        _approved,
    ),
    "functions.claims.handlers.receipts.handler": Representative(
        "ObjectCreated of a receipt photo uploaded with its presigned POST (checked valid)",
        lambda seeded: (_new_receipt(seeded), _new_receipt(seeded)),
        _receipt_checked,
    ),
    "functions.claims.handlers.review_keeper.handler": Representative(
        "the scheduled round with one claim waiting for review (its heartbeat sent) and no "
        "lost submission",
        lambda seeded: (_keeper_round(seeded), _scheduled_event("bench-review-keeper")),
        _kept,
    ),
    "functions.claims.handlers.outbox.handler": Representative(
        "the Claims-table stream batch of a new claim (ClaimSubmitted published)",
        lambda seeded: (seeded.claims.outbox_event, seeded.claims.outbox_event),
        _no_failures,
    ),
    "functions.offers.handlers.purchases.handler": Representative(
        "the purchases queue's batch of one online purchase by a new buyer (a post-purchase "
        "code issued)",
        lambda seeded: (_purchase_recorded(seeded), _purchase_recorded(seeded)),
        _no_failures,
    ),
    "functions.offers.handlers.reminders.handler": Representative(
        "the daily reminder sweep with no reminder due today",
        lambda seeded: (
            _scheduled_event("bench-offer-reminders"),
            _scheduled_event("bench-offer-reminders"),
        ),
        _reminders_swept,
    ),
    "functions.notifications.handlers.api.handler": Representative(
        "PUT /v1/customers/{customerId}/profile of a new customer (email, phone, marketing "
        "consent: its first consent entry written)",
        lambda seeded: (_profile(next(seeded.counter)), _profile(next(seeded.counter))),
        _status(200),
    ),
    "functions.notifications.handlers.messages.handler": Representative(
        "the queue's batch of one ClaimApproved to a customer with an email and a phone "
        "(email and SMS rendered and sent; the first also builds the Jinja2 environments)",
        lambda seeded: (_claim_approved(seeded), _claim_approved(seeded)),
        _no_failures,
    ),
    "functions.notifications.handlers.marketers.handler": Representative(
        "the queue's batch of one CampaignRejected (alerted to the marketers' topic)",
        lambda seeded: (_campaign_rejected(seeded), _campaign_rejected(seeded)),
        _no_failures,
    ),
    "functions.campaigns.handlers.loader.handler": Representative(
        f"ObjectCreated of a new YAML campaign file (2 offers, {BENCH_UNIQUE_CODES} unique "
        "codes), published",
        lambda seeded: (
            _upload_campaign(seeded, next(seeded.counter)),
            _upload_campaign(seeded, next(seeded.counter)),
        ),
        _loaded,
    ),
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _function_named(cloud: Any, handler: str) -> str:
    for record in cloud.deployment.functions.values():
        if record.handler == handler:
            return str(record.name)
    raise RuntimeError(f"no deployed function runs {handler}")


def _seed_claims(cloud: Any) -> ClaimsSeeding:
    """The rebate published; one claim submitted and verified up to its review, which waits
    (the keeper's heartbeat has a wait to beat), the stream batch of its submission kept
    for the claims outbox; then the claims API's executions go to the recording machine.
    """
    from infra.local.campaign_files import upload_campaign_file, wait_for_report

    s3 = cloud.client("s3")
    bucket = cloud.outputs["CampaignBucketName"]
    key = "campaigns/bench-rebate.json"
    body = json.dumps(REBATE_CAMPAIGN).encode()
    report = wait_for_report(s3, bucket, key, upload_campaign_file(s3, bucket, key, body))
    if report.document.get("status") != "published":
        raise RuntimeError(f"the bench rebate was not published: {report.document}")
    api = _function_named(cloud, "functions.claims.handlers.api.handler")
    outbox = _function_named(cloud, "functions.claims.handlers.outbox.handler")
    environment = cloud.deployment.functions[api].environment
    claims = ClaimsSeeding(
        api=api,
        steps=_function_named(cloud, "functions.claims.handlers.steps.handler"),
        receipts=_function_named(cloud, "functions.claims.handlers.receipts.handler"),
        receipts_bucket=environment["RECEIPTS_BUCKET"],
        claims_table=environment["CLAIMS_TABLE"],
        outbox_event={},
    )
    photo_key = _uploaded_receipt(cloud, claims, 0)
    cloud.wait_idle()  # the receipts bucket notifies the checker: checked by now
    cloud.runtime.clear_history()
    claim = _claim(0, photo_key, REVIEWED_PRICE)
    claim_id = _answered(_invoked(cloud, api, claim), 202)["claimId"]
    submitted = cloud.runtime.wait_for(
        lambda inv: inv.function_name == outbox and not inv.is_error, timeout=30.0
    )
    deadline = time.monotonic() + 30.0
    while (
        _answered(_invoked(cloud, api, _proxy("GET", f"/v1/claims/{claim_id}")), 200)["status"]
        != "in_review"
    ):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the seeding claim {claim_id} did not reach its review")
        time.sleep(0.1)
    cloud.wait_idle()
    states = cloud.client("stepfunctions")
    recording = states.create_state_machine(
        name=RECORDING_STATE_MACHINE,
        definition=json.dumps({"StartAt": "Recorded", "States": {"Recorded": {"Type": "Succeed"}}}),
        roleArn="arn:aws:iam::123456789012:role/bench-claims-recorded",
    )["stateMachineArn"]
    functions = cloud.client("lambda")
    variables = functions.get_function_configuration(FunctionName=api)["Environment"]["Variables"]
    functions.update_function_configuration(
        FunctionName=api,
        Environment={"Variables": {**variables, "CLAIMS_STATE_MACHINE_ARN": recording}},
    )
    return dataclasses.replace(claims, outbox_event=submitted.event)


def _seed_notifications(cloud: Any) -> str:
    """The customer the messages function's children write to: a profile with an email and
    a phone, stored through the notifications API."""
    api = _function_named(cloud, "functions.notifications.handlers.api.handler")
    _answered(_invoked(cloud, api, _profile(0)), 200)
    cloud.wait_idle()
    return "bench-profile-0"


@contextmanager
def seeded_cloud(template: dict[str, Any]) -> Iterator[Seeded]:
    """A local cloud from `template` with one published campaign and one redemption, a
    purchase, a sweep, a rebate with one claim waiting for review (`_seed_claims`), and
    a customer profile to notify (`_seed_notifications`).

    Then its pollers stop and the campaign and receipts buckets stop notifying, so only
    the children run handlers (the loader's files are loaded, the receipts checked, by
    the child the bench hands them to).
    """
    from infra.local.campaign_files import upload_campaign_file, wait_for_report
    from infra.local.cloud import LocalCloud, LocalCloudConfig

    saved = dict(os.environ)
    config = LocalCloudConfig(moto_port=_free_port(), api_port=_free_port(), outputs_path=None)
    cloud = LocalCloud(config)
    try:
        cloud.start(template)
        assert cloud.runtime is not None and cloud.deployment is not None
        cloud.runtime.echo_logs = False
        cloud.set_clock_offset(int((NOW - datetime.now(UTC)).total_seconds()))
        bucket = cloud.outputs["CampaignBucketName"]
        key = "campaigns/bench-store-opening.json"
        body = json.dumps(_published_campaign()).encode()
        s3 = cloud.client("s3")
        report = wait_for_report(
            s3, bucket, key, upload_campaign_file(s3, bucket, key, body)
        ).document
        if report.get("status") != "published":
            raise RuntimeError(f"the bench campaign was not published: {report}")
        cloud.wait_idle()
        cloud.runtime.clear_history()
        api = _function_named(cloud, "functions.offers.handlers.api.handler")
        outbox = _function_named(cloud, "functions.offers.handlers.outbox.handler")
        redeemed = cloud.runtime.invoke(api, _redemption(0))
        if redeemed.is_error or redeemed.payload.get("statusCode") != 201:
            raise RuntimeError(
                f"the seeding redemption failed: {redeemed.payload or redeemed.error}"
            )
        published = cloud.runtime.wait_for(
            lambda inv: inv.function_name == outbox and not inv.is_error, timeout=30.0
        )
        wallet_api = _function_named(cloud, "functions.wallet.handlers.api.handler")
        wallet_outbox = _function_named(cloud, "functions.wallet.handlers.outbox.handler")
        sweep = _function_named(cloud, "functions.wallet.handlers.sweep.handler")
        purchased = cloud.runtime.invoke(wallet_api, _purchase(0))
        if purchased.is_error or purchased.payload.get("statusCode") != 202:
            raise RuntimeError(
                f"the seeding purchase failed: {purchased.payload or purchased.error}"
            )
        recorded = cloud.runtime.wait_for(
            lambda inv: inv.function_name == wallet_outbox and not inv.is_error, timeout=30.0
        )
        # The first sweep ever scans back its whole lookback; the bench's children find
        # one done before them, as a deployed stack's sweep does after its first run.
        swept = cloud.runtime.invoke(sweep, _scheduled_event("bench-sweep"))
        if swept.is_error:
            raise RuntimeError(f"the seeding sweep failed: {swept.error}")
        claims = _seed_claims(cloud)
        notified = _seed_notifications(cloud)
        assert cloud.pollers is not None
        cloud.pollers.stop()
        for notifying in (bucket, claims.receipts_bucket):
            s3.put_bucket_notification_configuration(Bucket=notifying, NotificationConfiguration={})
        api_env = cloud.deployment.functions[api].environment
        table = api_env["CAMPAIGNS_TABLE"]
        schema = cloud.client("dynamodb").describe_table(TableName=table)["Table"]["KeySchema"]
        table_key = {k["AttributeName"]: {"S": "bench#floor"} for k in schema}
        yield Seeded(
            cloud, bucket, published.event, table, table_key, recorded.event, claims, notified
        )
    finally:
        cloud.stop()
        os.environ.clear()
        os.environ.update(saved)


# Measuring ----------------------------------------------------------------------------------


@dataclass
class Samples:
    imports: list[float] = field(default_factory=list)
    firsts: list[float] = field(default_factory=list)
    warms: list[float] = field(default_factory=list)
    first_imports: list[str] = field(default_factory=list)
    forbidden: set[str] = field(default_factory=set)

    @property
    def import_seconds(self) -> float:
        return statistics.median(self.imports)

    @property
    def first_seconds(self) -> float | None:
        return statistics.median(self.firsts) if self.firsts else None

    @property
    def warm_seconds(self) -> float | None:
        return statistics.median(self.warms) if self.warms else None

    @property
    def extra_seconds(self) -> float | None:
        """Median over runs of first - warm: what the first request pays over a warm one."""
        if not self.firsts:
            return None
        return statistics.median(f - w for f, w in zip(self.firsts, self.warms, strict=True))

    @property
    def cold_seconds(self) -> float | None:
        """Median over runs of import + (first - warm)."""
        if not self.firsts:
            return None
        runs = zip(self.imports, self.firsts, self.warms, strict=True)
        return statistics.median(i + f - w for i, f, w in runs)


@dataclass(frozen=True)
class Target:
    """One child to run: a module to import, and (optionally) a handler to call."""

    label: str
    module: str
    attribute: str
    path: list[str]
    environment: dict[str, str]
    function: str
    arn: str
    memory: int
    events: Callable[[], tuple[Any, Any]] | None
    ok: Check | None


def run_child(target: Target, samples: Samples) -> None:
    events = target.events() if target.events is not None else None
    spec = {
        "path": target.path,
        "module": target.module,
        "attribute": target.attribute,
        "events": events,
        "forbidden": list(FORBIDDEN),
        "mark": RESULT_MARK,
        "function": target.function,
        "arn": target.arn,
        "memory": target.memory,
    }
    out = subprocess.run(
        [sys.executable, *ISOLATED_FLAGS, "-c", CHILD],
        input=json.dumps(spec) + "\n",
        capture_output=True,
        text=True,
        env=target.environment,
        cwd=MIRROR_DIR,
        check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if out.returncode != 0 or not lines:
        raise RuntimeError(
            f"{target.label}: the child failed ({out.returncode}):\n{out.stderr[-3000:]}"
        )
    result = json.loads(lines[-1].removeprefix(RESULT_MARK))
    samples.imports.append(result["import"][0])
    samples.forbidden.update(result["forbidden"])
    if events is None:
        return
    assert target.ok is not None
    for response in result["responses"]:
        if not target.ok(response):
            raise RuntimeError(f"{target.label}: unexpected answer {str(response)[:2000]}")
    samples.firsts.append(result["first"][0])
    samples.warms.append(result["warm"][0])
    samples.first_imports = result["first_imports"]


def targets_for(
    deployed: list[Deployed], seeded: Seeded, path: LambdaLikePath
) -> tuple[Target, list[tuple[Deployed, Target]]]:
    """The floor's child, and one per deployed handler (the first function running it)."""
    cloud = seeded.cloud
    floor_dir = MIRROR_DIR / "floor"
    floor_dir.mkdir(exist_ok=True)
    (floor_dir / f"{FLOOR_MODULE}.py").write_text(FLOOR_SOURCE)
    from infra.local.server import process_environment

    floor_env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        **process_environment(cloud.server.endpoint, cloud.config.region),
    }
    floor_event = {"table": seeded.table, "key": seeded.table_key}
    floor = Target(
        label="floor",
        module=FLOOR_MODULE,
        attribute="handler",
        path=[str(floor_dir), str(path.site)],
        environment=floor_env,
        function="bench-floor",
        arn="arn:aws:lambda:ap-northeast-1:123456789012:function:bench-floor",
        memory=512,
        events=lambda: (floor_event, floor_event),
        ok=lambda response: isinstance(response, dict) and response.get("HTTPStatusCode") == 200,
    )
    handlers: list[tuple[Deployed, Target]] = []
    for function in deployed:
        record = next(
            r for r in cloud.deployment.functions.values() if r.logical_id == function.logical_id
        )
        local = cloud.runtime.lookup(record.name)
        environment = cloud.runtime.environment_for(local)
        environment["LAMBDA_TASK_ROOT"] = str(path.code)
        representative = REPRESENTATIVE.get(function.handler)

        def events(r: Representative | None = representative) -> tuple[Any, Any]:
            assert r is not None
            return r.events(seeded)

        handlers.append(
            (
                function,
                Target(
                    label=function.handler,
                    module=function.module,
                    attribute=function.attribute,
                    path=path.entries,
                    environment=environment,
                    function=local.name,
                    arn=local.arn,
                    memory=local.memory_mb,
                    events=events if representative is not None else None,
                    ok=representative.ok if representative is not None else None,
                ),
            )
        )
    return floor, handlers
