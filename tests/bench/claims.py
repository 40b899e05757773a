"""Claims: state transitions per claim, and the submission handler's calls and time.

- State transitions per claim, as Step Functions Standard bills them: counted in the
  execution history of real executions of the deployed state machine (the synthesized
  template on the local cloud, moto's ASL engine running the real task handlers, in a
  fresh interpreter): the execution's start plus every state entered (a task's retries
  would be transitions too, and are counted apart). Per path: approved automatically
  (target <= 12), approved after review, rejected as a duplicate; and what Step
  Functions costs per million claims at $25 per million transitions.
- AWS calls per submission (`POST /v1/claims` through the claims API handler, counted at
  botocore over distinct customers, campaign file cached as in a warm container), and
  handler time per submission against the floor of the same requests (captured from one
  submission, replayed with fresh claim and customer ids by plain boto3 clients), the two
  alternating request by request (target: ratio <= 1.3). On in-process moto, its Step
  Functions recording executions only (the engine is the first part's subject), its
  TransactWriteItems patched as for the offers benchmark.

Each part runs in an interpreter of its own (`python -m tests.bench.claims --executions`,
`--submission`): the claims handlers keep module-level clients made on first use (the
API's Step Functions client), which must meet only the cloud they were made for, the
local cloud's server in one, in-process moto in the other, and never what an earlier
part of `make bench` left in its process.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, Final
from unittest import mock

import boto3

from functions.campaigns.config import parse_campaign
from functions.campaigns.dal import CampaignStore
from functions.campaigns.logic import Publish, SourceFile
from functions.claims.receipts import receipt_key
from functions.core.clock import frozen_at
from functions.core.idempotency import IDEMPOTENCY_KEY_HEADER
from functions.core.ids import new_id
from infra.local.patches import patch_dynamodb_transactions
from infra.local.proxy_event import lambda_context, proxy_event
from tests.bench.in_process import (
    Call,
    MotoClock,
    Split,
    in_process_aws,
    recorded_calls,
    replayed,
    send,
)
from tests.bench.rebate_campaign import REBATE_CAMPAIGN
from tests.bench.report import ROOT, record, table

TRANSITIONS_TARGET: Final = 12
DOLLARS_PER_MILLION_TRANSITIONS: Final = 25.0
REQUESTS: Final = 60
ROUNDS: Final = 5
HANDLER_TARGET: Final = 1.3
RESULT_MARK: Final = "BENCH-CLAIMS "
EXECUTION_WAIT_SECONDS: Final = 60.0

NOW: Final = datetime(2027, 5, 10, 3, 0, tzinfo=UTC)
PURCHASED_AT: Final = "2027-05-08T14:00:00+09:00"
# A rebate like the spring trail example: ¥1,000 back from ¥8,000 of eligible shoes,
# ¥2,500 from ¥15,000, up to ¥2,000 approved automatically; running at `NOW`, a budget
# and a per-customer limit no run reaches, paid into the wallet at once.
CAMPAIGN: Final = REBATE_CAMPAIGN
AUTO_PRICE: Final = 9000  # ¥1,000 back: approved automatically
REVIEW_PRICE: Final = 16000  # ¥2,500 back: above the automatic limit


def _purchase(price: int, receipt_number: str) -> dict[str, Any]:
    return {
        "retailer": "Trailhead Shibuya",
        "receiptNumber": receipt_number,
        "purchasedAt": PURCHASED_AT,
        "currency": "JPY",
        "items": [{"sku": "TRAIL-01", "category": "shoes", "quantity": 1, "unitPrice": price}],
        "total": price,
    }


def claim_body(
    customer_id: str, key: str | None, price: int, receipt_number: str
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "campaignId": CAMPAIGN["id"],
        "customerId": customer_id,
        "purchase": _purchase(price, receipt_number),
    }
    if key is not None:
        body["receiptKey"] = key
    return body


# -- state transitions: real executions, in a fresh interpreter ------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class ClaimPath:
    name: str
    # Where the claim must end, and the execution.
    status: str
    execution: str


PATHS: Final = (
    ClaimPath("approved automatically", "credited", "SUCCEEDED"),
    ClaimPath("approved after review", "credited", "SUCCEEDED"),
    ClaimPath("rejected as a duplicate", "rejected", "SUCCEEDED"),
)


def played_executions() -> dict[str, list[dict[str, Any]]]:
    """Each path of `PATHS` played once on a local cloud; its execution history by path."""
    from botocore.credentials import ReadOnlyCredentials

    from cli.claims import execution_history, signed_request
    from infra.local.campaign_files import upload_campaign_file, wait_for_report
    from infra.local.cloud import LocalCloud, LocalCloudConfig, synthesized_template
    from infra.local.demo import Http
    from infra.local.demo_claims import post_form, receipt_png

    template = synthesized_template()
    config = LocalCloudConfig(moto_port=_free_port(), api_port=_free_port(), outputs_path=None)
    with LocalCloud(config) as cloud:
        outputs = cloud.start(template)
        assert cloud.runtime is not None
        cloud.runtime.echo_logs = False
        cloud.set_clock_offset(int((NOW - datetime.now(UTC)).total_seconds()))
        s3, states = cloud.client("s3"), cloud.client("stepfunctions")
        bucket, key = outputs["CampaignBucketName"], f"campaigns/{CAMPAIGN['id']}.json"
        revision = upload_campaign_file(s3, bucket, key, json.dumps(CAMPAIGN).encode())
        report = wait_for_report(s3, bucket, key, revision).document
        if report.get("status") != "published":
            raise RuntimeError(f"the bench campaign was not published: {report}")
        http = Http(outputs["ApiUrl"], outputs["ApiKey"])

        def claim(customer: str, photo: bytes, price: int, receipt_number: str) -> str:
            status, granted = http.call(
                "POST",
                "/v1/claims/uploads",
                {"customerId": customer, "contentType": "image/png", "size": len(photo)},
            )
            upload = granted["upload"]
            posted, _ = post_form(upload["url"], upload["fields"], photo, "image/png")
            # The receipt is checked before the claim is verified: no retry of a pending one.
            cloud.wait_idle(30.0)
            body = claim_body(customer, granted["receiptKey"], price, receipt_number)
            submitted, accepted = http.call("POST", "/v1/claims", body)
            if (status, posted, submitted) != (201, 204, 202):
                raise RuntimeError(f"claim by {customer}: {status} {posted} {submitted}")
            return str(accepted["claimId"])

        def status_of(claim_id: str, wanted: str) -> None:
            deadline = time.monotonic() + EXECUTION_WAIT_SECONDS
            while (found := http.call("GET", f"/v1/claims/{claim_id}")[1]["status"]) != wanted:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"claim {claim_id} is {found}, not {wanted}")
                time.sleep(0.1)

        def ended(claim_id: str) -> str:
            arn = outputs["ClaimsStateMachineArn"].replace(":stateMachine:", ":execution:")
            arn += f":{claim_id}"
            deadline = time.monotonic() + EXECUTION_WAIT_SECONDS
            while states.describe_execution(executionArn=arn)["status"] == "RUNNING":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the execution of {claim_id} is still running")
                time.sleep(0.1)
            return arn

        photo = receipt_png(1)
        auto = claim("bench-auto", photo, AUTO_PRICE, "B-0001")
        review = claim("bench-review", receipt_png(2), REVIEW_PRICE, "B-0002")
        status_of(review, "in_review")
        decision = {"decision": "approve", "reason": "receipt checked", "reviewer": "bench"}
        url = f"{outputs['ApiUrl'].rstrip('/')}/v1/claims/{review}/review"
        credentials = ReadOnlyCredentials("testing", "testing", None)
        signed = signed_request(url, decision, credentials=credentials, region=config.region)
        with urllib.request.urlopen(signed, timeout=30) as answered:
            if answered.status != 200:
                raise RuntimeError(f"the review decision was refused: {answered.status}")
        duplicate = claim("bench-duplicate", photo, AUTO_PRICE, "B-0001")
        histories: dict[str, list[dict[str, Any]]] = {}
        for path, claim_id in zip(PATHS, (auto, review, duplicate), strict=True):
            arn = ended(claim_id)
            status_of(claim_id, path.status)
            description = states.describe_execution(executionArn=arn)
            if description["status"] != path.execution:
                raise RuntimeError(f"{path.name}: the execution {description['status']}")
            histories[path.name] = execution_history(states, arn)
    return histories


def in_child(option: str) -> Any:
    """What `python -m tests.bench.claims OPTION` found (its last line after `RESULT_MARK`)."""
    out = subprocess.run(
        [sys.executable, "-m", "tests.bench.claims", option],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{option} failed ({out.returncode}):\n{out.stderr[-4000:]}")
    return json.loads(lines[-1].removeprefix(RESULT_MARK))


@dataclass(frozen=True)
class Transitions:
    states: list[str]
    retries: int

    @property
    def count(self) -> int:
        """The start and every state entered: what Standard bills, less retries."""
        return 1 + len(self.states)

    @property
    def billed(self) -> int:
        return self.count + self.retries


def transitions(history: Sequence[Mapping[str, Any]]) -> Transitions:
    events = sorted(history, key=lambda e: int(e["id"]))
    if not events or events[0]["type"] != "ExecutionStarted":
        raise RuntimeError("the history does not begin with the execution's start")
    entered = [e for e in events if str(e["type"]).endswith("StateEntered")]
    tasks = sum(1 for e in entered if e["type"] == "TaskStateEntered")
    scheduled = sum(1 for e in events if e["type"] == "TaskScheduled")
    return Transitions(
        states=[str(e["stateEnteredEventDetails"]["name"]) for e in entered],
        retries=scheduled - tasks,
    )


def transitions_section(histories: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    rows = []
    verdict = ""
    for path in PATHS:
        counted = transitions(histories[path.name])
        cost = counted.billed * DOLLARS_PER_MILLION_TRANSITIONS
        if path is PATHS[0]:
            ok = counted.billed <= TRANSITIONS_TARGET
            verdict = f"**{counted.billed} ({'ok' if ok else 'over target'})**"
        rows.append(
            [
                path.name,
                " → ".join(counted.states),
                f"**{counted.billed}**" if path is PATHS[0] else str(counted.billed),
                str(counted.retries),
                f"${cost:,.2f}",
            ]
        )
    return (
        "### State transitions per claim\n\n"
        "One claim per path through the deployed state machine (the synthesized template "
        "on the local cloud, moto's ASL engine running the real task handlers), its receipt "
        "uploaded with the presigned POST and checked before the claim is submitted. "
        "Transitions are counted in the execution's history as Standard workflows bill "
        "them: the execution's start plus every state entered, and each retry of a task "
        "(none here). Step Functions' cost at Standard pricing, "
        f"${DOLLARS_PER_MILLION_TRANSITIONS:.0f} per million transitions (Lambda and the "
        "rest not included). Target: at most "
        f"{TRANSITIONS_TARGET} per claim approved automatically: {verdict}.\n\n"
        + table(
            [
                "claim",
                "states entered",
                "transitions",
                "of which retries",
                "Step Functions per million claims",
            ],
            rows,
        )
    )


# -- submission: calls and time, on in-process moto -----------------------------------------


@contextmanager
def recording_state_machine() -> Iterator[str]:
    """A state machine in moto, which records executions and runs none (moto's default
    in-process), and the environment the claims API function has for it."""
    states = boto3.client("stepfunctions")
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    arn = states.create_state_machine(
        name="bench-claims",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/bench-claims",
    )["stateMachineArn"]
    variables = {
        "CLAIMS_STATE_MACHINE_ARN": arn,
        "POWERTOOLS_SERVICE_NAME": "claims",
        "REBATES_VERSION": "bench",
    }
    with mock.patch.dict(os.environ, variables):
        yield str(arn)


@contextmanager
def output_to_sink() -> Iterator[None]:
    """This process's standard output to /dev/null meanwhile: the handler's log line and
    metric of every submission are still written, as in Lambda, but thousands of them are
    no use on the terminal (and a terminal's cost to show them is no part of the work)."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "wb") as sink:
        os.dup2(sink.fileno(), 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def publish_campaign() -> None:
    config = parse_campaign(CAMPAIGN)
    source = SourceFile(key=f"campaigns/{config.id}.json", etag="etag-1")
    CampaignStore().publish(Publish(config=config, version=1, source=source), NOW)


@functools.cache
def claims_api() -> ModuleType:
    """The claims API handler's module, imported in the interpreter that measures it."""
    return importlib.import_module("functions.claims.handlers.api")


def submit(customer_id: str, request_key: str | None = None) -> str:
    """One `POST /v1/claims` through the claims API handler; the claim's id."""
    key = receipt_key(customer_id, new_id("rcp"), "image/png")
    body = claim_body(customer_id, key, AUTO_PRICE, f"R-{customer_id}")
    headers = {IDEMPOTENCY_KEY_HEADER: request_key} if request_key else None
    event = proxy_event("POST", "/v1/claims", body=body, headers=headers, api_key="bench-key")
    response = claims_api().handler(event, lambda_context("bench-claims-api"))
    if response["statusCode"] != 202:
        raise RuntimeError(f"submission refused: {response['statusCode']} {response['body']}")
    return str(json.loads(response["body"])["claimId"])


def count_calls(tag: str, *, with_key: bool) -> Counter[str]:
    """Operation names of the AWS calls `REQUESTS` submissions make, the campaign's file
    in the container's cache (as in a warm one)."""
    submit(f"{tag}-warm")
    with recorded_calls() as calls:
        for i in range(REQUESTS):
            submit(f"{tag}-customer-{i}", f"{tag}-key-{i}" if with_key else None)
    return Counter(name for name, _ in calls)


@dataclass(frozen=True)
class Round:
    handler: Split
    floor: Split

    @property
    def ratio(self) -> float:
        return self.handler.total / self.floor.total

    @property
    def own_ratio(self) -> float:
        return self.handler.own / self.floor.own


class Bare:
    """The floor: a submission's requests replayed by plain boto3 clients, one per service
    (as the handler has), each request to the client of its service."""

    def __init__(self, template: list[tuple[str, Call]]) -> None:
        self.template = template
        self.clients = {service: boto3.client(service) for service, _ in template}

    def requests(self, ids: Mapping[str, str]) -> list[tuple[str, Call]]:
        calls = replayed([call for _, call in self.template], dict(ids))
        return [(service, call) for (service, _), call in zip(self.template, calls, strict=True)]

    def send_all(self, requests: list[tuple[str, Call]]) -> None:
        for service, call in requests:
            send(self.clients[service], call)


def captured_submission(customer: str) -> tuple[list[tuple[str, Call]], str]:
    """One submission's requests, each with its service, and the claim id it made."""
    from botocore.client import BaseClient

    calls: list[tuple[str, Call]] = []
    original = BaseClient._make_api_call

    def noted(client: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
        service = client.meta.service_model.service_name
        calls.append((service, (operation_name, json.loads(json.dumps(api_params)))))
        return original(client, operation_name, api_params)

    with mock.patch.object(BaseClient, "_make_api_call", noted):
        claim_id = submit(customer)
    return calls, claim_id


def time_rounds() -> list[Round]:
    """Handler and the bare replay of its requests, alternating request by request."""
    template, template_claim = captured_submission("template-claimant")
    bare = Bare(template)
    clock = MotoClock()
    rounds: list[Round] = []
    with clock.running():
        for round_ in range(ROUNDS):
            handler, floor = Split(), Split()
            for i in range(REQUESTS):
                ids = {template_claim: new_id("clm"), "template-claimant": f"b{round_}-{i}-x"}
                requests = bare.requests(ids)
                customer = f"r{round_}-{i}-claimant"
                if i % 2:
                    floor.add(clock, bare.send_all, requests)
                    handler.add(clock, submit, customer)
                else:
                    handler.add(clock, submit, customer)
                    floor.add(clock, bare.send_all, requests)
            rounds.append(
                Round(
                    Split(handler.total / REQUESTS, handler.moto / REQUESTS),
                    Split(floor.total / REQUESTS, floor.moto / REQUESTS),
                )
            )
    return sorted(rounds, key=lambda r: r.ratio)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _breakdown(calls: Counter[str]) -> str:
    return ", ".join(f"{name} {count / REQUESTS:g}" for name, count in sorted(calls.items()))


def submission_section() -> str:
    patch_dynamodb_transactions()
    with in_process_aws(), frozen_at(NOW), recording_state_machine(), output_to_sink():
        publish_campaign()
        bare = count_calls("plain", with_key=False)
        keyed = count_calls("keyed", with_key=True)
        rounds = time_rounds()
    median = rounds[len(rounds) // 2]
    verdict = "ok" if median.ratio <= HANDLER_TARGET else "over target"
    calls_rows = [
        ["without `Idempotency-Key`", f"**{sum(bare.values()) / REQUESTS:g}**", _breakdown(bare)],
        ["with `Idempotency-Key`", f"{sum(keyed.values()) / REQUESTS:g}", _breakdown(keyed)],
    ]
    time_rows = [
        [name, _ms(split.total), _ms(split.moto), _ms(split.own)]
        for name, split in [
            ("`POST /v1/claims` through the handler", median.handler),
            ("the same requests, bare boto3 (floor)", median.floor),
        ]
    ]
    return (
        "### Submission\n\n"
        "AWS API calls per `POST /v1/claims` through `functions.claims.handlers.api.handler`, "
        f"counted at botocore's `BaseClient._make_api_call` over {REQUESTS} submissions by "
        "distinct customers (a receipt key each), after one has put the campaign's file in "
        "the container's cache. On in-process moto (`mock_aws`), its Step Functions "
        "recording the executions started and running none.\n\n"
        + table(["request", "calls per submission", "operations"], calls_rows)
        + "\n\nHandler time per submission against the floor of the same requests (captured "
        "from one submission and replayed with fresh claim and customer ids by plain boto3 "
        "clients, one per service) to the same moto, no idempotency key; the two alternate "
        f"request by request, in {ROUNDS} rounds of {REQUESTS} (ratios "
        f"{rounds[0].ratio:.2f} to {rounds[-1].ratio:.2f}), the median round shown. "
        f"Target: ratio <= {HANDLER_TARGET}: **{median.ratio:.2f} ({verdict})**.\n\n"
        + table(["per submission", "time", "inside moto", "outside moto"], time_rows)
        + "\n\nOutside moto (the client's own work: for the handler, validation, pydantic, "
        "PynamoDB, Powertools with its log line and metric, and botocore) the handler takes "
        f"{median.own_ratio:.2f} times what bare boto3 does."
    )


def run() -> None:
    histories = in_child("--executions")
    submission = in_child("--submission")
    record(
        "claims",
        "Claims: state transitions per claim, submission calls and time",
        transitions_section(histories) + "\n\n" + submission,
    )


def main() -> None:
    """`--executions` or `--submission`: that part, its result on the last line; else
    the whole benchmark."""
    option = sys.argv[1:]
    if option == ["--executions"]:
        result: Any = played_executions()
    elif option == ["--submission"]:
        result = submission_section()
    else:
        run()
        return
    print(RESULT_MARK + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()
