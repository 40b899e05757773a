"""`make demo`'s claims act: a rebate campaign, receipts, verification and review.

A marketer publishes the spring trail rebate; customers photograph their receipts and
upload them with the presigned POST the API grants (a real multipart POST to S3);
their claims go through the claims state machine: one approved automatically and
credited to the wallet, one held for a person and approved by the operator with
`rebates claims review --approve`, one rejected as a duplicate of the first with the
evidence. `rebates claims trace` then tells one claim's execution.

Like the other acts it is a client only: HTTP to the storefront API, S3 for the file
and the receipts, and the operator's `rebates` commands run as an operator runs them.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from infra.local.campaign_files import ReportTimeout, upload_campaign_file, wait_for_report

if TYPE_CHECKING:
    from infra.local.demo import Demo

ROOT: Final = Path(__file__).resolve().parents[2]
CAMPAIGN_FILE: Final = ROOT / "examples" / "campaigns" / "spring-trail-2027.yaml"
CAMPAIGN_ID: Final = "spring-trail-2027"
# The spring trail rebate runs through March 2027 (Tokyo): the act lives on the 20th.
SPRING_NOW: Final = datetime(2027, 3, 20, 3, 0, tzinfo=UTC)
SETTLED: Final = frozenset({"in_review", "credited", "rejected", "error"})
ENDED: Final = frozenset({"credited", "rejected", "error"})
WAIT_SECONDS: Final = 60.0
_POLL_SECONDS: Final = 0.25


# -- a receipt photo and its upload -----------------------------------------------------


def receipt_png(seed: int, width: int = 48, height: int = 64) -> bytes:
    """A small real PNG (a grey receipt with dark lines); each seed gives other bytes (its
    text names the seed), as two photos never match."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = bytearray()
    for y in range(height):
        rows.append(0)  # no filter
        ink = y % 6 == 0 and 4 <= y < height - 4
        for x in range(width):
            dark = ink and 4 <= x < width - 4 - (y * seed) % 17
            rows.append(40 if dark else 235)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"tEXt", b"Title\x00receipt %d" % seed)
        + chunk(b"IDAT", zlib.compress(bytes(rows)))
        + chunk(b"IEND", b"")
    )


def post_form(
    url: str, fields: Mapping[str, str], content: bytes, content_type: str
) -> tuple[int, bytes]:
    """A browser's multipart/form-data POST: `fields` in order, then the file last (S3
    reads no field after the file). The status and body S3 answered."""
    boundary = f"----rebates-{uuid.uuid4().hex}"
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f"{value}\r\n".encode()
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="receipt"\r\n'
        f"Content-Type: {content_type}\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    request = urllib.request.Request(  # noqa: S310 - the URL the API granted
        url,
        data=b"".join(parts),
        method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


# -- the act ------------------------------------------------------------------------------


def _yen(money: Mapping[str, Any] | None) -> str:
    return f"¥{money['amount']:,}" if money else "none"


def _rebates(*arguments: str) -> subprocess.CompletedProcess[str]:
    """`rebates --target local ARGUMENTS...`, as an operator runs it."""
    return subprocess.run(  # noqa: S603 - the project's own CLI, with the act's arguments
        [sys.executable, "-m", "cli.main", "--target", "local", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def _errors(ran: subprocess.CompletedProcess[str]) -> str:
    """What the command reported on stderr, without its line naming the target."""
    return "".join(
        line for line in ran.stderr.splitlines(keepends=True) if not line.startswith("rebates:")
    )


def _show(lines: str, indent: str = "      ") -> None:
    for line in lines.rstrip().splitlines():
        print(f"{indent}{line}")


class ClaimsAct:
    """What the act's storefront and customers do, over the storefront API."""

    def __init__(self, demo: Demo) -> None:
        self.http = demo.http

    def upload_receipt(self, customer: str, photo: bytes) -> tuple[str, int]:
        """The receipt key granted to `customer`, and S3's answer to the POST of `photo`."""
        status, granted = self.http.call(
            "POST",
            "/v1/claims/uploads",
            {"customerId": customer, "contentType": "image/png", "size": len(photo)},
        )
        if status != 201:
            raise SystemExit(f"demo failed: the upload grant for {customer}: {status} {granted}")
        upload = granted["upload"]
        answered, _ = post_form(upload["url"], upload["fields"], photo, "image/png")
        return str(granted["receiptKey"]), answered

    def submit(
        self, customer: str, receipt_key: str, sku: str, price: int, receipt_number: str
    ) -> tuple[int, dict[str, Any]]:
        purchase = {
            "retailer": "Trailhead Shibuya",
            "receiptNumber": receipt_number,
            "purchasedAt": "2027-03-14T15:30:00+09:00",
            "currency": "JPY",
            "items": [{"sku": sku, "category": "shoes", "quantity": 1, "unitPrice": price}],
            "total": price,
        }
        body = {
            "campaignId": CAMPAIGN_ID,
            "customerId": customer,
            "purchase": purchase,
            "receiptKey": receipt_key,
        }
        status, answer = self.http.call("POST", "/v1/claims", body)
        return status, answer if isinstance(answer, dict) else {}

    def settled(self, claim_id: str, statuses: frozenset[str] = SETTLED) -> dict[str, Any]:
        """The claim once its status is one of `statuses` (verification runs on its own)."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            _, claim = self.http.call("GET", f"/v1/claims/{claim_id}")
            if isinstance(claim, dict) and claim.get("status") in statuses:
                return claim
            if time.monotonic() > deadline:
                raise SystemExit(f"demo failed: claim {claim_id} is still {claim}")
            time.sleep(_POLL_SECONDS)

    def wallet(self, customer: str) -> dict[str, Any]:
        _, wallet = self.http.call("GET", f"/v1/customers/{customer}/wallet")
        return wallet if isinstance(wallet, dict) else {}


def _timeline(claim: Mapping[str, Any]) -> str:
    return " -> ".join(str(entry["status"]) for entry in claim.get("timeline", []))


def _publish(demo: Demo) -> dict[str, Any]:
    s3 = demo.aws("s3")
    bucket = demo.outputs["CampaignBucketName"]
    key = f"campaigns/{CAMPAIGN_ID}.yaml"
    revision = upload_campaign_file(s3, bucket, key, CAMPAIGN_FILE.read_bytes())
    try:
        return wait_for_report(s3, bucket, key, revision).document
    except ReportTimeout as timeout:
        raise SystemExit(f"demo failed: {timeout}") from None


def act_claims(demo: Demo) -> None:
    print("\n== Claims: receipts are uploaded, verified, reviewed and paid into the wallet ==")
    http, act = demo.http, ClaimsAct(demo)
    started = time.perf_counter()
    report = _publish(demo)
    demo.check(
        f"marketer: {CAMPAIGN_ID} is published as version {report.get('version')} (a rebate "
        "on TRAIL-01/02: ¥1,000 back from ¥8,000, ¥2,500 from ¥15,000; up to ¥2,000 "
        f"approved automatically, more reviewed) ({time.perf_counter() - started:.1f} s)",
        report.get("status") == "published",
    )
    offset = int((SPRING_NOW - datetime.now(UTC)).total_seconds())
    http.call("POST", "/_local/clock", {"offsetSeconds": offset}, key=False)
    print(f"  (the clock now reads {SPRING_NOW.isoformat()})")

    # chika: ¥1,000 back, within what is approved automatically.
    chika_photo = receipt_png(1)
    chika_key, answered = act.upload_receipt("chika", chika_photo)
    http.call("POST", "/_local/drain", {"timeoutSeconds": 30}, key=False)
    demo.check(
        f"storefront: chika's receipt photo ({len(chika_photo)} bytes) is POSTed to S3 with "
        f"the presigned form the API granted: {answered}, stored as {chika_key}",
        answered == 204,
    )
    status, accepted = act.submit("chika", chika_key, "TRAIL-01", 9800, "R-0314-0042")
    chika = str(accepted.get("claimId"))
    demo.check(
        f"storefront: chika claims on a ¥9,800 pair of TRAIL-01: {status} {chika} "
        f"{accepted.get('status')}",
        status == 202 and accepted.get("status") == "submitted",
    )
    claim = act.settled(chika, ENDED)
    wallet = act.wallet("chika")
    demo.check(
        f"customer: chika's claim is approved automatically and {_yen(claim.get('reward'))} "
        f"credited ({_timeline(claim)}); her wallet: {_yen(wallet.get('available'))} "
        f"available, {_yen(wallet.get('pending'))} pending",
        claim.get("status") == "credited" and wallet.get("available", {}).get("amount") == 1000,
    )

    # daichi: ¥2,500 back, above the automatic limit: a person decides.
    daichi_key, answered = act.upload_receipt("daichi", receipt_png(2))
    http.call("POST", "/_local/drain", {"timeoutSeconds": 30}, key=False)
    status, accepted = act.submit("daichi", daichi_key, "TRAIL-02", 16500, "R-0314-0057")
    daichi = str(accepted.get("claimId"))
    claim = act.settled(daichi)
    demo.check(
        f"storefront: daichi claims on a ¥16,500 pair of TRAIL-02 ({daichi}): "
        f"{_yen(claim.get('reward'))} is above ¥2,000, so it waits for review "
        f"({', '.join(claim.get('reviewReasons', []))}), due {claim.get('reviewDueAt')}",
        answered == 204 and status == 202 and claim.get("status") == "in_review",
    )
    queue = _rebates("claims", "review")
    demo.check(
        "operator: `rebates claims review` lists it with the reward, the purchase, why it "
        "waits and a link to the receipt",
        queue.returncode == 0 and daichi in queue.stdout,
    )
    _show(queue.stdout)
    approved = _rebates("claims", "review", "--approve", daichi)
    claim = act.settled(daichi, ENDED)
    wallet = act.wallet("daichi")
    demo.check(
        f"operator: `rebates claims review --approve {daichi}` sends the decision to the "
        f"waiting execution: {claim.get('status')} ({_timeline(claim)}); daichi's wallet "
        f"holds {_yen(wallet.get('available'))}",
        approved.returncode == 0
        and claim.get("status") == "credited"
        and wallet.get("available", {}).get("amount") == 2500,
    )
    _show(approved.stdout + _errors(approved))
    again = _rebates("claims", "review", "--approve", daichi)
    demo.check(
        f"operator: approving it a second time is refused ({_errors(again).strip()})",
        again.returncode == 1 and "already_decided" in again.stderr,
    )

    # emi: chika's receipt, the same photo, sent again under another name.
    emi_key, answered = act.upload_receipt("emi", chika_photo)
    http.call("POST", "/_local/drain", {"timeoutSeconds": 30}, key=False)
    status, accepted = act.submit("emi", emi_key, "TRAIL-01", 9800, "r-0314-0042")
    emi = str(accepted.get("claimId"))
    claim = act.settled(emi)
    evidence = claim.get("evidence", [])
    demo.check(
        f"storefront: emi sends chika's receipt again, the same photo, its number typed in "
        f"lower case ({emi}): {claim.get('status')} {claim.get('reasons')}, with "
        f"{len(evidence)} pieces of evidence naming chika's claim",
        status == 202
        and claim.get("status") == "rejected"
        and claim.get("reasons") == ["duplicate_receipt"]
        and bool(evidence)
        and all(chika in item.get("claimIds", []) for item in evidence),
    )
    for item in evidence:
        print(
            f"      {item['rule']} ({item['reason']}): {item['note']}; matched "
            f"{', '.join(item['claimIds'])}"
        )

    trace = _rebates("claims", "trace", daichi)
    demo.check(
        f"operator: `rebates claims trace {daichi}` tells its execution, state by state",
        trace.returncode == 0 and "Wait for review" in trace.stdout,
    )
    _show(trace.stdout)
    http.call("POST", "/_local/clock", {"offsetSeconds": 0}, key=False)
