"""`rebates claims review`: the review queue, and a reviewer's signed decision.

The queue is read from a Claims table made from its spec, holding claims the claims
models wrote; the receipts bucket is found as the local cloud names it and, through
moto's CloudFormation, as a deployed stack holds it. Decisions go out through urllib
with a handler that keeps the request instead of opening a socket (unit tests have
none), and the SigV4 signature is checked the way API Gateway would: recomputed from
the headers it names and the body that was sent.
"""

from __future__ import annotations

import email.message
import io
import json
import os
import re
import urllib.error
import urllib.request
import urllib.response
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from moto import mock_aws

from cli.claims import bucket_name, claims_in_review, run_decision, run_review
from cli.main import main
from cli.target import STACK_NAME, Target, TargetUnavailable
from functions.core.models import reset_connections
from functions.core.money import Money
from functions.core.tables import CLAIMS
from tests.support.tables import create_table_request

REGION = "ap-northeast-1"
LOCAL_TABLE = "Rebates-ClaimsTable-7QK2M9XDA1B2"
LOCAL_BUCKET = "rebates-claimsreceiptsbucket-k2m9xda1b2q7"
NOW = datetime(2027, 3, 4, 12, 0, tzinfo=UTC)
API_URL = "http://127.0.0.1:3000"
MOTO_CALLER = "arn:aws:sts::123456789012:user/moto"


@pytest.fixture
def account(bare_aws_env: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv(CLAIMS.env_var, raising=False)
    with mock_aws():
        yield
    reset_connections()


def local(outputs: dict[str, str] | None = None) -> Target:
    return Target(
        kind="local",
        outputs=outputs or {"AwsEndpoint": "http://127.0.0.1:4566", "ApiUrl": API_URL},
        region=REGION,
        description="local cloud at http://127.0.0.1:4566",
        make_client=lambda service: boto3.client(service, region_name=REGION),
        fetch_api_key=lambda: "key",
    )


def create_bucket(name: str) -> None:
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION}
    )


@pytest.fixture
def local_cloud(account: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """The local cloud's Claims table (bound for the models) and receipts bucket."""
    boto3.client("dynamodb", region_name=REGION).create_table(
        **create_table_request(CLAIMS, LOCAL_TABLE)
    )
    for bucket in (LOCAL_BUCKET, "rebates-campaignbucket-q7k2m9xda1b2"):
        create_bucket(bucket)
    monkeypatch.setenv(CLAIMS.env_var, LOCAL_TABLE)
    reset_connections()
    return LOCAL_TABLE


def save_claim(
    claim_id: str, *, submitted: datetime, status: str = "in_review", **fields: Any
) -> None:
    from functions.claims.models import Claim, Evidence, PurchaseItem, PurchaseMap

    values: dict[str, Any] = {
        "campaign_id": "spring-rebate",
        "customer_id": "cust-1",
        "purchase": PurchaseMap(
            retailer="ACME Mart",
            receipt_number="R-0042",
            purchased_at=submitted - timedelta(days=1),
            currency="JPY",
            total=12000,
            items=[PurchaseItem(sku="TRAIL-01", quantity=1, unit_price=12000)],
        ),
        "reward": Money.of(1500, "JPY"),
        "review_reasons": ["velocity"],
        "evidence": [
            Evidence(
                rule="velocity",
                reason="velocity",
                claim_ids=["clm_0", "clm_00"],
                note="3 claims in 24 hours",
            )
        ],
        "review_due_at": submitted + timedelta(days=3),
    }
    values.update(fields)
    Claim(
        claim_id=claim_id,
        status=status,
        submitted_at=submitted,
        updated_at=submitted,
        **values,
    ).save()


def fill_the_queue() -> None:
    # Submitted out of id order: the queue follows submission, not ids.
    save_claim(
        "clm_b",
        submitted=datetime(2027, 3, 1, 9, 30, tzinfo=UTC),
        receipt_key="receipts/Y3VzdC0x/rcp_01.jpg",
    )
    save_claim(
        "clm_a",
        submitted=datetime(2027, 3, 2, 8, 0, tzinfo=UTC),
        customer_id="cust-2",
        reward=Money.of(250, "USD"),
        review_reasons=["above_auto_approve_limit"],
        evidence=[],
    )
    save_claim("clm_c", submitted=datetime(2027, 2, 27, 8, 0, tzinfo=UTC), status="credited")


def test_the_queue_lists_claims_in_review_oldest_first_with_their_evidence(
    local_cloud: str,
) -> None:
    fill_the_queue()
    out = io.StringIO()
    assert run_review(local(), out=out, now=NOW) == 0
    lines = out.getvalue().splitlines()
    assert lines[:11] == [
        "2 claims in review, oldest first",
        "",
        "clm_b  submitted 2027-03-01T09:30:00.000Z  review due 2027-03-04T09:30:00.000Z (overdue)",
        "    customer  cust-1   campaign spring-rebate",
        "    reward    JPY 1500   purchase JPY 12000 at ACME Mart, receipt R-0042",
        "    why       velocity",
        "    evidence  velocity (velocity): 3 claims in 24 hours; matched clm_0, clm_00",
        lines[7],
        "",
        "clm_a  submitted 2027-03-02T08:00:00.000Z  review due 2027-03-05T08:00:00.000Z",
        "    customer  cust-2   campaign spring-rebate",
    ]
    receipt = lines[7].removeprefix("    receipt   ")
    assert receipt.startswith("https://") and LOCAL_BUCKET in receipt
    assert "receipts/Y3VzdC0x/rcp_01.jpg" in receipt and "X-Amz-Expires=900" in receipt
    assert lines[11:] == [
        "    reward    USD 2.50   purchase JPY 12000 at ACME Mart, receipt R-0042",
        "    why       above_auto_approve_limit",
        "    receipt   none uploaded",
    ]


def test_the_queue_as_json_for_scripts(local_cloud: str) -> None:
    fill_the_queue()
    out = io.StringIO()
    assert run_review(local(), out=out, as_json=True, now=NOW) == 0
    claims = json.loads(out.getvalue())["claims"]
    assert [claim["claimId"] for claim in claims] == ["clm_b", "clm_a"]
    first = claims[0]
    assert {k: v for k, v in first.items() if k != "receiptUrl"} == {
        "claimId": "clm_b",
        "customerId": "cust-1",
        "campaignId": "spring-rebate",
        "submittedAt": "2027-03-01T09:30:00.000000Z",
        "reviewDueAt": "2027-03-04T09:30:00.000000Z",
        "reward": {"amount": 1500, "currency": "JPY"},
        "purchase": {
            "retailer": "ACME Mart",
            "receiptNumber": "R-0042",
            "purchasedAt": "2027-02-28T09:30:00.000000Z",
            "total": {"amount": 12000, "currency": "JPY"},
        },
        "reviewReasons": ["velocity"],
        "evidence": [
            {
                "rule": "velocity",
                "reason": "velocity",
                "claimIds": ["clm_0", "clm_00"],
                "note": "3 claims in 24 hours",
            }
        ],
        "receiptKey": "receipts/Y3VzdC0x/rcp_01.jpg",
    }
    assert "X-Amz-Expires=900" in first["receiptUrl"]
    assert claims[1]["receiptKey"] is None and claims[1]["receiptUrl"] is None


def test_an_empty_queue_says_so(local_cloud: str) -> None:
    out = io.StringIO()
    assert run_review(local(), out=out, now=NOW) == 0
    assert out.getvalue() == "no claims in review\n"


def test_the_queue_is_read_page_by_page(local_cloud: str) -> None:
    for n in range(7):
        save_claim(f"clm_{n}", submitted=datetime(2027, 3, 1, 9, n, tzinfo=UTC))
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    items = claims_in_review(dynamodb, LOCAL_TABLE, page_size=3)
    assert [item["claimId"] for item in items] == [f"clm_{n}" for n in range(7)]


def test_locally_the_receipts_bucket_is_found_by_the_local_cloud_s_naming(account: None) -> None:
    with pytest.raises(TargetUnavailable, match="0 ClaimsReceiptsBucket buckets"):
        bucket_name(local(), "ClaimsReceiptsBucket")
    create_bucket(LOCAL_BUCKET)
    create_bucket("rebates-claimsreceiptsbucketold-k2m9xda1b2q7")
    assert bucket_name(local(), "ClaimsReceiptsBucket") == LOCAL_BUCKET


# -- the deployed stack -----------------------------------------------------------------


def deployed_template() -> dict[str, Any]:
    table = create_table_request(CLAIMS, "unused")
    del table["TableName"]
    return {
        "Resources": {
            CLAIMS.logical_id: {"Type": "AWS::DynamoDB::Table", "Properties": table},
            "ClaimsReceiptsBucket": {"Type": "AWS::S3::Bucket"},
            "CampaignBucket": {"Type": "AWS::S3::Bucket"},
        },
        "Outputs": {
            "ApiUrl": {"Value": "https://abc.execute-api.ap-northeast-1.amazonaws.com/prod/"}
        },
    }


@pytest.fixture
def deployed(account: None, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The stack in moto's CloudFormation; returns its resources' physical names."""
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    cloudformation.create_stack(StackName=STACK_NAME, TemplateBody=json.dumps(deployed_template()))
    resources = cloudformation.list_stack_resources(StackName=STACK_NAME)["StackResourceSummaries"]
    names = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}
    monkeypatch.setenv(CLAIMS.env_var, names[CLAIMS.logical_id])
    reset_connections()
    return names


def test_the_deployed_stack_s_queue_through_the_command_line(
    deployed: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    fill_the_queue()
    assert main(["--target", "aws", "claims", "review", "--json"]) == 0
    captured = capsys.readouterr()
    claims = json.loads(captured.out)["claims"]
    assert [claim["claimId"] for claim in claims] == ["clm_b", "clm_a"]
    assert deployed["ClaimsReceiptsBucket"] in claims[0]["receiptUrl"]
    assert "AWS stack Rebates" in captured.err


# -- decisions ----------------------------------------------------------------------------


class ApiGateway(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
    """Answers every request with `status` and `body`, keeping the requests (no socket)."""

    def __init__(self, status: int = 200, body: Any = None) -> None:
        super().__init__()
        self.status = status
        self.body = body
        self.requests: list[urllib.request.Request] = []

    def _answer(self, request: urllib.request.Request) -> urllib.response.addinfourl:
        self.requests.append(request)
        headers = email.message.Message()
        headers["Content-Type"] = "application/json"
        payload = json.dumps(self.body).encode()
        response = urllib.response.addinfourl(
            io.BytesIO(payload), headers, request.full_url, self.status
        )
        # urllib's error processing reads the reason phrase, which addinfourl lacks.
        response.msg = "answer"  # type: ignore[attr-defined]
        return response

    def http_open(self, request: urllib.request.Request) -> urllib.response.addinfourl:  # type: ignore[override]
        return self._answer(request)

    def https_open(self, request: urllib.request.Request) -> urllib.response.addinfourl:  # type: ignore[override]
        return self._answer(request)

    def opener(self) -> urllib.request.OpenerDirector:
        return urllib.request.build_opener(self)


def sent_body(request: urllib.request.Request) -> Any:
    assert isinstance(request.data, bytes)
    return json.loads(request.data)


APPROVED = {"claimId": "clm_b", "status": "approved", "decision": "approve"}
SIGNATURE = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<day>\d{8})/(?P<region>[^/]+)/"
    r"execute-api/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})"
)


def assert_signed_for_execute_api(request: urllib.request.Request, secret: str = "testing") -> None:
    """Recompute the signature from the headers it names and the body sent, as AWS does."""
    headers = {name.lower(): value for name, value in request.header_items()}
    match = SIGNATURE.fullmatch(headers["authorization"])
    assert match, headers["authorization"]
    signed = match["signed"].split(";")
    assert {"host", "x-amz-date", "content-type"} <= set(signed)
    received = AWSRequest(
        method=request.get_method(),
        url=request.full_url,
        data=request.data,
        headers={name: headers[name] for name in signed},
    )
    received.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(Credentials(match["key"], secret), "execute-api", match["region"])
    canonical = signer.canonical_request(received)
    assert (
        signer.signature(signer.string_to_sign(received, canonical), received) == match["signature"]
    )


def test_an_approval_is_posted_signed_for_execute_api(account: None) -> None:
    gateway = ApiGateway(200, APPROVED)
    out = io.StringIO()
    code = run_decision(
        local(),
        "clm_b",
        decision="approve",
        reason="receipt checked by hand",
        reviewer="ops@example.com",
        out=out,
        opener=gateway.opener(),
    )
    assert code == 0
    (request,) = gateway.requests
    assert request.get_method() == "POST"
    assert request.full_url == f"{API_URL}/v1/claims/clm_b/review"
    assert sent_body(request) == {
        "decision": "approve",
        "reason": "receipt checked by hand",
        "reviewer": "ops@example.com",
    }
    assert request.get_header("Content-type") == "application/json"
    assert_signed_for_execute_api(request)
    assert "Credential=testing/" in (request.get_header("Authorization") or "")
    assert f"/{REGION}/execute-api/" in (request.get_header("Authorization") or "")
    assert out.getvalue() == "claim clm_b: approved (status approved)\n"


def test_the_reviewer_is_the_caller_s_identity_unless_named(account: None) -> None:
    gateway = ApiGateway(200, {"claimId": "clm_b", "status": "rejected", "decision": "reject"})
    code = run_decision(
        local(),
        "clm_b",
        decision="reject",
        reason="receipt is for another store",
        out=io.StringIO(),
        opener=gateway.opener(),
    )
    assert code == 0
    body = sent_body(gateway.requests[0])
    assert body == {
        "decision": "reject",
        "reason": "receipt is for another store",
        "reviewer": MOTO_CALLER,
    }


def test_an_odd_claim_id_stays_one_path_segment(account: None) -> None:
    gateway = ApiGateway(404, {"error": {"code": "claim_not_found", "message": "no such claim"}})
    run_decision(
        local(),
        "clm/../x y",
        decision="approve",
        reason="ok",
        reviewer="ops",
        out=io.StringIO(),
        err=io.StringIO(),
        opener=gateway.opener(),
    )
    assert gateway.requests[0].full_url == f"{API_URL}/v1/claims/clm%2F..%2Fx%20y/review"
    assert_signed_for_execute_api(gateway.requests[0])


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (409, "already_decided", "claim clm_b was already approved"),
        (409, "not_in_review", "claim clm_b is credited, not in review"),
        (409, "review_closed", "the review of claim clm_b timed out"),
        (404, "claim_not_found", "no claim clm_b"),
    ],
)
def test_a_refused_decision_prints_the_error_and_exits_1(
    account: None, status: int, code: str, message: str
) -> None:
    gateway = ApiGateway(status, {"error": {"code": code, "message": message, "details": {}}})
    out, err = io.StringIO(), io.StringIO()
    assert (
        run_decision(
            local(),
            "clm_b",
            decision="approve",
            reason="ok",
            reviewer="ops",
            out=out,
            err=err,
            opener=gateway.opener(),
        )
        == 1
    )
    assert out.getvalue() == ""
    assert err.getvalue() == f"error: claim clm_b: {status} {code}: {message}\n"


def test_a_refusal_by_the_gateway_itself_is_reported_too(account: None) -> None:
    gateway = ApiGateway(403, {"message": "User is not authorized to access this resource"})
    err = io.StringIO()
    code = run_decision(
        local(),
        "clm_b",
        decision="approve",
        reason="ok",
        reviewer="ops",
        err=err,
        opener=gateway.opener(),
    )
    assert code == 1
    assert err.getvalue() == (
        "error: claim clm_b: 403: User is not authorized to access this resource\n"
    )


def test_an_unreachable_api_is_an_error(account: None) -> None:
    class Refusing(urllib.request.HTTPHandler):
        def http_open(self, request: urllib.request.Request) -> Any:
            raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))

    err = io.StringIO()
    code = run_decision(
        local(),
        "clm_b",
        decision="approve",
        reason="ok",
        reviewer="ops",
        err=err,
        opener=urllib.request.build_opener(Refusing()),
    )
    assert code == 1
    assert err.getvalue().startswith(f"error: cannot reach {API_URL}/v1/claims/clm_b/review: ")


def test_a_decision_through_the_command_line_on_the_deployed_stack(
    deployed: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = ApiGateway(200, APPROVED)
    monkeypatch.setattr("cli.claims.default_opener", gateway.opener)
    argv = ["claims", "review", "--approve", "clm_b", "--reason", "looks fine", "--target", "aws"]
    assert main(argv) == 0
    (request,) = gateway.requests
    assert request.full_url == (
        "https://abc.execute-api.ap-northeast-1.amazonaws.com/prod/v1/claims/clm_b/review"
    )
    assert sent_body(request) == {
        "decision": "approve",
        "reason": "looks fine",
        "reviewer": MOTO_CALLER,
    }
    # Signed as the shell's own credentials (moto puts its fake ones in the environment).
    key, secret = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    assert f"Credential={key}/" in (request.get_header("Authorization") or "")
    assert_signed_for_execute_api(request, secret=secret)
    captured = capsys.readouterr()
    assert captured.out == "claim clm_b: approved (status approved)\n"
    assert "AWS stack Rebates" in captured.err


def test_a_refusal_through_the_command_line_exits_1(
    deployed: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = ApiGateway(409, {"error": {"code": "already_decided", "message": "decided"}})
    monkeypatch.setattr("cli.claims.default_opener", gateway.opener)
    argv = ["--target", "aws", "claims", "review", "--reject", "clm_b", "--reason", "fake"]
    assert main(argv) == 1
    assert "409 already_decided: decided" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--reject", "clm_b"], "--reject needs --reason"),
        (["--reason", "why"], "--reason goes with --approve or --reject"),
        (["--reviewer", "ops"], "--reviewer goes with --approve or --reject"),
        (["--reject", "clm_b", "--reason", "  "], "--reject needs --reason"),
    ],
)
def test_decision_options_that_do_not_go_together_are_refused(
    argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["claims", "review", *argv]) == 2
    assert capsys.readouterr().err == f"rebates claims review: error: {problem}\n"


def test_approve_and_reject_at_once_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["claims", "review", "--approve", "clm_a", "--reject", "clm_b", "--reason", "x"])
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
