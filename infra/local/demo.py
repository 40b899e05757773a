"""`make demo`: a whole campaign on the local cloud, played as its users would.

The cloud runs in its own process (`python -m infra.local`), as it does under
`make run`; this process is only a client. It talks to the stack through S3 uploads,
the AWS APIs an operator uses, and HTTP to the storefront API, and imports no handler
code, so what it shows is what a marketer, a storefront and an operator would see.

Each domain adds its act to `ACTS`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from infra.local.campaign_files import ReportTimeout, upload_campaign_file, wait_for_report
from infra.local.demo_analytics import act_analytics
from infra.local.demo_claims import act_claims
from infra.local.demo_notifications import act_notifications, act_profiles

ROOT = Path(__file__).resolve().parents[2]
LOCAL_DIR = ROOT / ".local"
OUTPUTS = LOCAL_DIR / "outputs.json"
CLOUD_LOG = LOCAL_DIR / "demo-cloud.log"
READY_TIMEOUT_SECONDS = 180


@dataclass
class Http:
    base_url: str
    api_key: str

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: bool = True,
        idempotency_key: str | None = None,
        timeout: float = 30,
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)  # noqa: S310
        request.add_header("Content-Type", "application/json")
        if key:
            request.add_header("x-api-key", self.api_key)
        if idempotency_key:
            request.add_header("Idempotency-Key", idempotency_key)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


@dataclass
class Demo:
    outputs: dict[str, str]
    http: Http
    summary: list[str] = field(default_factory=list)

    def aws(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.outputs["AwsEndpoint"],
            region_name=self.outputs["Region"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's fixed fake credentials
        )

    def check(self, claim: str, ok: bool) -> None:
        mark = "ok " if ok else "FAILED"
        print(f"  [{mark}] {claim}")
        self.summary.append(f"{'ok' if ok else 'FAILED'}: {claim}")
        if not ok:
            raise SystemExit(f"demo failed: {claim}")


def act_platform(demo: Demo) -> None:
    print("\n== The platform: what `make run` deployed ==")
    for key in (
        "ApiUrl",
        "AwsEndpoint",
        "CampaignBucketName",
        "EventBusName",
        "ClaimsStateMachineArn",
    ):
        print(f"  {key:22} {demo.outputs[key]}")
    status, body = demo.http.call("GET", "/v1/health", key=False)
    demo.check(f"storefront: GET /v1/health answers {status} {body}", status == 200)
    status, body = demo.http.call("GET", "/v1/nowhere")
    code = body.get("error", {}).get("code") if isinstance(body, dict) else None
    demo.check(
        f"storefront: an unknown route is refused by the gateway ({status} {code})",
        status == 403 and code == "route_not_found",
    )
    machines = demo.aws("stepfunctions").list_state_machines()["stateMachines"]
    claims = [m for m in machines if m["stateMachineArn"] == demo.outputs["ClaimsStateMachineArn"]]
    names = ", ".join(m["name"] for m in claims) or "none"
    demo.check(f"operator: the claims state machine is listed ({names})", bool(claims))
    buckets = {b["Name"] for b in demo.aws("s3").list_buckets()["Buckets"]}
    demo.check(
        "marketer: the campaigns bucket exists", demo.outputs["CampaignBucketName"] in buckets
    )


EXAMPLES = ROOT / "examples" / "campaigns"
# The store opening runs 2027-05-01 10:00 to 2027-05-16 (Tokyo): the demo lives on its
# third day, by moving the clock the handlers see (`rebates local clock`).
DEMO_NOW = datetime(2027, 5, 3, 3, 0, tzinfo=UTC)


def _upload(demo: Demo, key: str, content: bytes) -> dict[str, Any]:
    """A marketer's upload, and the report the loader writes next to it.

    The upload returns at once (S3 notifies the loader asynchronously): the report on
    this very upload is polled for.
    """
    s3 = demo.aws("s3")
    bucket = demo.outputs["CampaignBucketName"]
    revision = upload_campaign_file(s3, bucket, key, content)
    try:
        return wait_for_report(s3, bucket, key, revision).document
    except ReportTimeout as timeout:
        raise SystemExit(f"demo failed: {timeout}") from None


def act_campaigns_and_offers(demo: Demo) -> None:
    print("\n== Campaigns and offers: a marketer publishes, a storefront redeems ==")
    http = demo.http
    started = time.perf_counter()
    broken = _upload(
        demo,
        "campaigns/spring-trail-broken.yaml",
        (EXAMPLES / "broken" / "spring-trail-broken.yaml").read_bytes(),
    )
    demo.check(
        f"marketer: a broken file is rejected with {len(broken['errors'])} errors, each at "
        "its path",
        broken["status"] == "rejected" and len(broken["errors"]) == 5,
    )
    for error in broken["errors"]:
        print(f"      {error['path']}: {error['message']}")
    report = _upload(
        demo,
        "campaigns/store-opening-2027.json",
        (EXAMPLES / "store-opening-2027.json").read_bytes(),
    )
    demo.check(
        f"marketer: store-opening-2027 is published as version {report.get('version')} with "
        f"its 3,000 unique codes ({time.perf_counter() - started:.1f} s)",
        report["status"] == "published",
    )

    offset = int((DEMO_NOW - datetime.now(UTC)).total_seconds())
    http.call("POST", "/_local/clock", {"offsetSeconds": offset}, key=False)
    print(f"  (the clock now reads {DEMO_NOW.isoformat()}, the opening's third day)")

    status, listed = http.call("GET", "/v1/offers?channel=online&customerId=aiko")
    offers = [offer["offerId"] for offer in listed.get("offers", [])]
    demo.check(f"storefront: offers open online for aiko: {offers}", offers == ["OPENING-WEB15"])

    status, issued = http.call("POST", "/v1/offers/OPENING-WEB15/codes", {"customerId": "aiko"})
    code = issued.get("code", "")
    _, again = http.call("POST", "/v1/offers/OPENING-WEB15/codes", {"customerId": "aiko"})
    demo.check(
        f"storefront: aiko is issued {code}, and the same code when she asks again",
        status == 201 and again.get("code") == code,
    )
    status, shared = http.call("POST", "/v1/offers/OPENING500/codes", {"customerId": "aiko"})
    qr = (shared.get("qr") or {}).get("payload")
    svg_path = LOCAL_DIR / "demo-qr.svg"
    svg_path.write_text((shared.get("qr") or {}).get("svg", ""))
    demo.check(
        f"storefront: the in-store code {shared.get('code')} comes with QR {qr} ({svg_path})",
        status == 201 and qr == f"REBATES1:{shared.get('code')}",
    )

    cart = {
        "currency": "JPY",
        "items": [{"sku": "TENT-2", "category": "tents", "quantity": 1, "unitPrice": 24000}],
    }
    _, quote = http.call(
        "POST",
        "/v1/redemptions/validate",
        {"code": code.lower(), "customerId": "aiko", "channel": "online", "cart": cart},
    )
    demo.check(
        f"storefront: validating {code.lower()} quotes {quote.get('discount')} (15%, capped "
        "at 3,000)",
        quote.get("valid") is True and quote["discount"]["amount"] == 3000,
    )
    order = {"code": code, "customerId": "aiko", "orderId": "order-1001", "channel": "online"}
    status, redeemed = http.call(
        "POST", "/v1/redemptions", {**order, "cart": cart}, idempotency_key="pay-1001"
    )
    _, replay = http.call(
        "POST", "/v1/redemptions", {**order, "cart": cart}, idempotency_key="pay-1001"
    )
    demo.check(
        f"storefront: redeemed as {redeemed.get('redemptionId')}; the retried request with "
        "the same Idempotency-Key gets the same answer",
        status == 201 and replay == redeemed,
    )
    status, refused = http.call("POST", "/v1/redemptions", {**order, "cart": cart})
    demo.check(
        f"storefront: the same order redeeming the code again is {status} "
        f"{refused['error']['code']}",
        status == 409,
    )
    status, wrong = http.call(
        "POST",
        "/v1/redemptions",
        {**order, "orderId": "order-1002", "channel": "in_store", "cart": cart},
    )
    demo.check(
        f"storefront: an online code at the till is {status} {wrong['error']['code']}",
        status == 422 and wrong["error"]["code"] == "wrong_channel",
    )
    path = f"/v1/redemptions/{redeemed.get('redemptionId')}/rollback"
    status, first = http.call("POST", path, {"reason": "payment_failed"})
    _, second = http.call("POST", path, {"reason": "payment_failed"})
    demo.check(
        "storefront: the payment failed, the rollback releases the code and the budget; a "
        "second rollback changes nothing and says so",
        status == 200
        and first.get("alreadyRolledBack") is False
        and second.get("alreadyRolledBack") is True,
    )
    status, _ = http.call("POST", "/v1/redemptions", {**order, "cart": cart})
    demo.check(f"storefront: the retried payment redeems {code} again ({status})", status == 201)


# In the summer cashback campaign's window (June to August 2027, New York).
SUMMER_NOW = datetime(2027, 7, 1, 16, 0, tzinfo=UTC)
WALLET_SWEEP_RULE = "WalletSweepSchedule"


def _dollars(money: dict[str, Any] | None) -> str:
    """`{"amount": 1600, "currency": "USD"}` -> `$16.00` (the act's campaign is in USD)."""
    if not money:
        return "none"
    return f"${money['amount'] // 100:,}.{money['amount'] % 100:02d}"


def _summer_order(order_id: str, *lines: tuple[str, str, int]) -> dict[str, Any]:
    items = [
        {"sku": sku, "category": category, "quantity": 1, "unitPrice": price}
        for sku, category, price in lines
    ]
    return {
        "orderId": order_id,
        "customerId": "ben",
        "channel": "online",
        "placedAt": SUMMER_NOW.isoformat().replace("+00:00", "Z"),
        "currency": "USD",
        "items": items,
        "total": sum(price for _, _, price in lines),
    }


def act_wallet(demo: Demo) -> None:
    print("\n== Wallet: purchases earn cashback, a refund takes part back, the customer spends ==")
    http = demo.http
    report = _upload(
        demo,
        "campaigns/summer-cashback-2027.yaml",
        (EXAMPLES / "summer-cashback-2027.yaml").read_bytes(),
    )
    demo.check(
        f"marketer: summer-cashback-2027 is published as version {report.get('version')} "
        "(5% back on tents, backpacks and sleeping bags, at most $20.00, after 30 days)",
        report["status"] == "published",
    )
    offset = int((SUMMER_NOW - datetime.now(UTC)).total_seconds())
    http.call("POST", "/_local/clock", {"offsetSeconds": offset}, key=False)
    print(f"  (the clock now reads {SUMMER_NOW.isoformat()})")

    tent = _summer_order("summer-1001", ("TENT-4", "tents", 32000), ("SOCKS", "apparel", 1500))
    status, first = http.call("POST", "/v1/purchases", tent)
    _, replayed = http.call("POST", "/v1/purchases", tent)
    (earning,) = first.get("earnings") or [{}]
    demo.check(
        f"storefront: ben's $335.00 order (a $320.00 tent and socks) earns "
        f"{_dollars(earning.get('amount'))}, pending until {earning.get('availableAt')}; the "
        "same order sent again is the same purchase",
        status == 202
        and earning.get("outcome") == "credited"
        and earning["amount"]["amount"] == 1600
        and replayed == first,
    )
    pack = _summer_order("summer-1002", ("PACK-30", "backpacks", 12000))
    _, second = http.call("POST", "/v1/purchases", pack)
    (earning,) = second.get("earnings") or [{}]
    demo.check(
        f"storefront: a $120.00 backpack earns {_dollars(earning.get('amount'))}",
        earning.get("amount", {}).get("amount") == 600,
    )
    refund = {"refundId": "summer-1001-r1", "amount": 16750, "currency": "USD"}
    status, refunded = http.call("POST", "/v1/purchases/summer-1001/refunds", refund)
    _, again = http.call("POST", "/v1/purchases/summer-1001/refunds", refund)
    (reversal,) = refunded.get("reversals") or [{}]
    demo.check(
        f"storefront: half the tent order is refunded: {_dollars(reversal.get('reversed'))} "
        "of its cashback is taken back (it keeps floor(1600 x 16750 / 33500)); the refund "
        "sent again changes nothing",
        status == 202
        and reversal.get("reversed", {}).get("amount") == 800
        and again.get("refundedTotal") == refunded.get("refundedTotal"),
    )
    _, wallet = http.call("GET", "/v1/customers/ben/wallet")
    demo.check(
        f"customer: ben's wallet: {_dollars(wallet.get('pending'))} pending, "
        f"{_dollars(wallet.get('available'))} available, next release "
        f"{(wallet.get('nextRelease') or {}).get('at')}",
        wallet.get("pending", {}).get("amount") == 1400
        and wallet.get("available", {}).get("amount") == 0,
    )

    http.call("POST", "/_local/clock", {"advanceSeconds": 31 * 24 * 3600}, key=False)
    status, _ = http.call("POST", f"/_local/fire/{WALLET_SWEEP_RULE}", {}, key=False)
    http.call("POST", "/_local/drain", {"timeoutSeconds": 30}, key=False)
    _, wallet = http.call("GET", "/v1/customers/ben/wallet")
    demo.check(
        f"operator: 31 days on, the sweep releases ben's cashback: "
        f"{_dollars(wallet.get('available'))} available, expiring "
        f"{(wallet.get('nextExpiry') or {}).get('at')}",
        status == 200 and wallet.get("available", {}).get("amount") == 1400,
    )
    spend = {"orderId": "summer-2001", "amount": 1000, "currency": "USD"}
    status, spent = http.call(
        "POST", "/v1/customers/ben/wallet/spend", spend, idempotency_key="checkout-2001"
    )
    _, spent_again = http.call(
        "POST", "/v1/customers/ben/wallet/spend", spend, idempotency_key="checkout-2001"
    )
    drawn = ", ".join(
        f"{_dollars(lot['amount'])} from {lot['lotId']}" for lot in spent.get("lots", [])
    )
    demo.check(
        f"storefront: ben spends $10.00 at checkout ({drawn}); the retry is the same spend",
        status == 201 and spent.get("available", {}).get("amount") == 400 and spent_again == spent,
    )
    status, refused = http.call(
        "POST",
        "/v1/customers/ben/wallet/spend",
        {"orderId": "summer-2002", "amount": 500, "currency": "USD"},
    )
    demo.check(
        f"storefront: spending $5.00 more is {status} {(refused.get('error') or {}).get('code')}",
        status == 409,
    )
    _, wallet = http.call("GET", "/v1/customers/ben/wallet")
    print(
        f"      wallet: available {_dollars(wallet.get('available'))}, pending "
        f"{_dollars(wallet.get('pending'))}, owed {_dollars(wallet.get('owed'))}"
    )
    for entry in reversed(wallet.get("entries", [])):
        print(f"      {entry['recordedAt']}  {entry['kind']:<8} {_dollars(entry['amount']):>8}")
    audit = subprocess.run(
        [sys.executable, "-m", "cli.main", "--target", "local", "wallet", "audit", "ben"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    for line in audit.stdout.strip().splitlines():
        print(f"      {line}")
    demo.check(
        "operator: `rebates wallet audit ben` finds entries, lots and balances agree",
        audit.returncode == 0,
    )
    http.call("POST", "/_local/clock", {"offsetSeconds": 0}, key=False)


ACTS: list[Callable[[Demo], None]] = [
    act_platform,
    act_profiles,
    act_campaigns_and_offers,
    act_wallet,
    act_claims,
    act_notifications,
    act_analytics,
]


def start_cloud() -> subprocess.Popen[bytes]:
    LOCAL_DIR.mkdir(exist_ok=True)
    OUTPUTS.unlink(missing_ok=True)
    log = CLOUD_LOG.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.local"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while not OUTPUTS.exists():
        if process.poll() is not None:
            raise SystemExit(f"the local cloud stopped:\n{CLOUD_LOG.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"the local cloud was not ready in {READY_TIMEOUT_SECONDS} s")
        time.sleep(0.2)
    return process


def stop_cloud(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> int:
    started = time.perf_counter()
    print("Starting the local cloud (synthesizing the stack and deploying it into moto)...")
    process = start_cloud()
    try:
        outputs = json.loads(OUTPUTS.read_text())
        print(f"Ready in {time.perf_counter() - started:.1f} s.")
        demo = Demo(outputs, Http(outputs["ApiUrl"], outputs["ApiKey"]))
        for act in ACTS:
            act(demo)
    finally:
        stop_cloud(process)
    print(f"\n== Summary ({time.perf_counter() - started:.1f} s) ==")
    for line in demo.summary:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    sys.exit(main())
