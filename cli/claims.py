"""`rebates claims trace` and `rebates claims review`: the operator's view of rebate claims.

`trace CLAIM_ID` tells the claim's Step Functions execution (one per claim, named by its
id) as a timeline: each state with when it was entered and left, how long it took, what
went in and came out, the task failures and retries inside it, the wait for the
reviewer's task token, and how the execution ended. Reading the history and telling it
are separate, so the telling is tested on histories built by hand.

`review` lists the claims waiting for a person (the Claims table's gsi2 partition
`CLAIMS#in_review`, oldest submission first) with what the reviewer needs: the reward,
the purchase, why verification asked for a person, the evidence, and a link to the
receipt valid for 15 minutes. `review --approve ID` / `--reject ID --reason R` posts the
decision to the API's IAM-authorised route, signed with SigV4 as whoever runs it.

Everything goes through the target's clients and outputs (`cli.target`), so the same
code reads the local cloud and a deployed stack.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from cli.target import STACK_NAME, Target, TargetUnavailable
from cli.wallet import table_name
from functions.core.errors import InvalidMoney
from functions.core.money import Money
from functions.core.tables import CLAIMS

STATE_MACHINE_OUTPUT: Final = "ClaimsStateMachineArn"
# Fixed in the stack (override_logical_id) so it can be found among the stack's resources.
RECEIPTS_BUCKET: Final = "ClaimsReceiptsBucket"
IN_REVIEW_PARTITION: Final = "CLAIMS#in_review"
RECEIPT_LINK_SECONDS: Final = 15 * 60
SUMMARY_LIMIT: Final = 120
DECISIONS: Final = {"approve": "approved", "reject": "rejected"}
# A default reason for approvals, which need none; a rejection's reason is the reviewer's.
APPROVAL_REASON: Final = "approved on review"
_BUCKET_TYPE: Final = "AWS::S3::Bucket"
_REQUEST_SECONDS: Final = 30.0
_TIMESTAMP_WIDTH: Final = len("2027-03-01T09:00:00.000Z")
_DURATION_WIDTH: Final = len("2d 03h 04m")


# -- trace: reading ---------------------------------------------------------------------


def execution_arn(state_machine_arn: str, claim_id: str) -> str:
    """The execution that verifies `claim_id`: the state machine's, named by the claim."""
    prefix, marker, machine = state_machine_arn.partition(":stateMachine:")
    if not marker:
        raise TargetUnavailable(f"{state_machine_arn!r} is not a state machine ARN")
    return f"{prefix}:execution:{machine}:{claim_id}"


def execution_history(stepfunctions: Any, arn: str) -> list[dict[str, Any]]:
    """Every event of the execution, oldest first (a long review wait spans many pages)."""
    events: list[dict[str, Any]] = []
    pages = stepfunctions.get_paginator("get_execution_history").paginate(
        executionArn=arn, includeExecutionData=True
    )
    for page in pages:
        events += page["events"]
    return events


# -- trace: telling ---------------------------------------------------------------------


@dataclass
class _Failure:
    verb: str  # "failed", "timed out", ...
    error: str
    cause: str
    attempt: int


@dataclass
class _Visit:
    """One stay in one state, gathered from its events."""

    name: str
    kind: str  # Task, Choice, Pass, Wait, Succeed, Fail, Parallel, Map
    entered_at: datetime
    input: str | None
    exited_at: datetime | None = None
    output: str | None = None
    aborted: bool = False
    ended_with_execution: bool = False
    attempts: int = 0
    waits_for_token: bool = False
    token_timeout: int | None = None
    token_sent_at: datetime | None = None
    token_answered_at: datetime | None = None
    failures: list[_Failure] = field(default_factory=list)

    @property
    def open(self) -> bool:
        return self.exited_at is None


@dataclass
class _Execution:
    started_at: datetime | None = None
    input: str | None = None
    ended_at: datetime | None = None
    outcome: str | None = None  # succeeded, failed, aborted, timed out
    output: str | None = None
    error: str = ""
    cause: str = ""
    visits: list[_Visit] = field(default_factory=list)


# How each kind of task failure reads; the event's details carry `error` and `cause`.
_FAILURES: Final = {
    "Failed": "failed",
    "TimedOut": "timed out",
    "StartFailed": "failed to start",
    "SubmitFailed": "failed to submit",
    "ScheduleFailed": "could not be scheduled",
}
_TASK_FAMILIES: Final = ("Task", "LambdaFunction", "Activity")
_ENDINGS: Final = {
    "ExecutionSucceeded": "succeeded",
    "ExecutionFailed": "failed",
    "ExecutionAborted": "aborted",
    "ExecutionTimedOut": "timed out",
}


def _details(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """The event's `<type in camelCase>EventDetails`, e.g. taskFailedEventDetails."""
    type_ = str(event["type"])
    found = event.get(f"{type_[:1].lower()}{type_[1:]}EventDetails")
    return found if isinstance(found, Mapping) else {}


def _instant(value: datetime) -> datetime:
    # botocore parses timestamps in the local zone; a naive one can only be UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _task_event(type_: str) -> tuple[str, str] | None:
    """("Task", "Failed") for TaskFailed; None for events that are not a task's."""
    for family in _TASK_FAMILIES:
        if type_.startswith(family) and not type_.startswith(f"{family}State"):
            return family, type_.removeprefix(family)
    return None


def _read(events: Iterable[Mapping[str, Any]]) -> _Execution:
    execution = _Execution()
    owner: dict[int, _Visit] = {}

    def latest_open(name: str | None = None) -> _Visit | None:
        for visit in reversed(execution.visits):
            if visit.open and (name is None or visit.name == name):
                return visit
        return None

    for event in sorted(events, key=lambda e: int(e["id"])):
        type_ = str(event["type"])
        at = _instant(event["timestamp"])
        details = _details(event)
        previous = owner.get(int(event.get("previousEventId") or 0))
        if type_ == "ExecutionStarted":
            execution.started_at, execution.input = at, details.get("input")
        elif type_ in _ENDINGS:
            execution.ended_at, execution.outcome = at, _ENDINGS[type_]
            execution.output = details.get("output")
            execution.error = str(details.get("error") or "")
            execution.cause = str(details.get("cause") or "")
        elif type_.endswith("StateEntered"):
            visit = _Visit(
                name=str(event["stateEnteredEventDetails"]["name"]),
                kind=type_.removesuffix("StateEntered"),
                entered_at=at,
                input=event["stateEnteredEventDetails"].get("input"),
            )
            execution.visits.append(visit)
            owner[int(event["id"])] = visit
        elif type_.endswith(("StateExited", "StateAborted")):
            name = event.get("stateExitedEventDetails", {}).get("name")
            visit_or_none = (
                previous
                if previous is not None and previous.open and name in (None, previous.name)
                else latest_open(name)
            )
            if visit_or_none is not None:
                visit_or_none.exited_at = at
                visit_or_none.aborted = type_.endswith("StateAborted")
                visit_or_none.output = event.get("stateExitedEventDetails", {}).get("output")
        else:
            # A task's events follow each other within their state (previousEventId);
            # the latest open state is the fallback for a history that does not chain.
            visit_or_none = previous if previous is not None and previous.open else latest_open()
            if visit_or_none is not None:
                owner[int(event["id"])] = visit_or_none
                _apply_task_event(visit_or_none, type_, details, at)
    if execution.ended_at is not None:
        for visit in execution.visits:
            if visit.open:
                visit.exited_at, visit.ended_with_execution = execution.ended_at, True
    return execution


def _apply_task_event(visit: _Visit, type_: str, details: Mapping[str, Any], at: datetime) -> None:
    task_event = _task_event(type_)
    if task_event is None:
        return
    _, what = task_event
    if what == "Scheduled":
        visit.attempts += 1
        if str(details.get("resource", "")).endswith(".waitForTaskToken"):
            visit.waits_for_token = True
            timeout = details.get("timeoutInSeconds")
            visit.token_timeout = int(timeout) if timeout is not None else None
    elif what == "Submitted" and visit.waits_for_token:
        visit.token_sent_at = at
    elif what == "Succeeded" and visit.token_sent_at is not None:
        visit.token_answered_at = at
    elif what in _FAILURES:
        if what in ("StartFailed", "ScheduleFailed") and visit.attempts == 0:
            visit.attempts = 1
        visit.failures.append(
            _Failure(
                verb=_FAILURES[what],
                error=str(details.get("error") or "an unnamed error"),
                cause=_cause(details.get("cause")),
                attempt=max(visit.attempts, 1),
            )
        )


def _cause(cause: Any) -> str:
    """A failure's cause in words: a Lambda error's message rather than its stack trace."""
    if not cause:
        return ""
    text = str(cause)
    try:
        parsed = json.loads(text)
    except ValueError:
        return summarize(text)
    if isinstance(parsed, dict) and parsed.get("errorMessage"):
        return summarize(str(parsed["errorMessage"]))
    return summarize(text)


def summarize(data: str | None, limit: int = SUMMARY_LIMIT) -> str:
    """Compact JSON (or the text as it is) on one line, cut to `limit` characters."""
    if data is None:
        return ""
    try:
        text = json.dumps(json.loads(data), separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        text = " ".join(data.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_object(data: str | None) -> dict[str, Any] | None:
    try:
        parsed = json.loads(data) if data is not None else None
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def changes(before: str | None, after: str | None, limit: int = SUMMARY_LIMIT) -> str:
    """What a state did to the document it was given: the keys it added or changed (as
    compact JSON) and those it dropped (``-key``); "(unchanged)" if none. The document
    carries the claim's ids through every state, so its whole text would say little. Not
    both JSON objects: `after` as `summarize` shows it."""
    old, new = _json_object(before), _json_object(after)
    if old is None or new is None:
        return summarize(after, limit)
    changed = {key: value for key, value in new.items() if key not in old or old[key] != value}
    dropped = [f"-{key}" for key in old if key not in new]
    parts = [summarize(json.dumps(changed), limit)] if changed else []
    parts += dropped
    return " ".join(parts) or "(unchanged)"


def format_instant(instant: datetime) -> str:
    """UTC to the millisecond: 2027-03-01T09:00:00.010Z."""
    utc = _instant(instant)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def format_duration(delta: timedelta) -> str:
    """At the scale it has: 240 ms, 12.345 s, 4m 05s, 3h 04m, 2d 03h 04m."""
    milliseconds = max(int(delta / timedelta(milliseconds=1)), 0)
    if milliseconds < 1000:
        return f"{milliseconds} ms"
    if milliseconds < 60_000:
        return f"{milliseconds // 1000}.{milliseconds % 1000:03d} s"
    seconds = milliseconds // 1000
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours:02d}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {seconds:02d}s"


def _visit_lines(visit: _Visit, now: datetime | None, given: str | None) -> Iterator[str]:
    """The state's lines; `given` is the document the previous state passed on (its input
    is shown only where it differs: a state reading a part of it, or a retry)."""
    if visit.exited_at is not None:
        exit_text = format_instant(visit.exited_at)
        took = format_duration(visit.exited_at - visit.entered_at)
    else:
        exit_text = "(running)"
        took = format_duration(now - visit.entered_at) if now is not None else "…"
    yield (
        f"{format_instant(visit.entered_at)} → {exit_text:<{_TIMESTAMP_WIDTH}}  "
        f"{took:>{_DURATION_WIDTH}}  {visit.name}"
    )
    if visit.input is not None and _json_object(visit.input) != _json_object(given):
        yield f"    input   {summarize(visit.input)}"
    for failure in visit.failures:
        yield f"    {_failure_text(failure, visit, is_last=failure is visit.failures[-1])}"
    if visit.waits_for_token:
        yield f"    {_token_text(visit)}"
    if visit.aborted:
        yield "    aborted (the execution was stopped)"
    elif visit.ended_with_execution and visit.kind != "Fail":
        yield "    (the execution ended in this state)"
    if visit.output is not None:
        yield f"    output  {changes(visit.input, visit.output)}"


def _failure_text(failure: _Failure, visit: _Visit, *, is_last: bool) -> str:
    attempt = f"attempt {failure.attempt} " if visit.attempts > 1 else ""
    text = f"{attempt}{failure.verb}: {failure.error}"
    if failure.cause:
        text += f": {failure.cause}"
    if failure.attempt < visit.attempts:
        text += " (retried)"
    elif is_last and visit.exited_at is not None and not visit.ended_with_execution:
        text += " (caught)"
    return text


def _token_text(visit: _Visit) -> str:
    if visit.token_sent_at is None:
        # The task that hands the token out (the review's Lambda) has not returned yet.
        return "task token not handed out yet" if visit.open else "no task token was handed out"
    sent = f"task token handed out {format_instant(visit.token_sent_at)}"
    if visit.token_answered_at is not None:
        later = format_duration(visit.token_answered_at - visit.token_sent_at)
        return f"{sent}, answered {format_instant(visit.token_answered_at)} ({later} later)"
    if visit.open:
        limit = visit.token_timeout
        timeout = f" (times out after {format_duration(timedelta(seconds=limit))})" if limit else ""
        return f"{sent}: waiting for the decision{timeout}"
    return sent


def _ending_lines(execution: _Execution, now: datetime | None) -> Iterator[str]:
    started = execution.started_at
    if execution.ended_at is None:
        if now is not None and started is not None:
            yield f"still running after {format_duration(now - started)} (no end event yet)"
        else:
            yield "still running (no end event yet)"
        return
    took = f" after {format_duration(execution.ended_at - started)}" if started else ""
    line = f"{format_instant(execution.ended_at)}  {execution.outcome}{took}"
    if execution.error or execution.cause:
        line += ": " + ": ".join(part for part in (execution.error, execution.cause) if part)
    if execution.output is not None:
        line += f"  output {summarize(execution.output)}"
    yield line


def format_trace(
    claim_id: str, arn: str, events: Iterable[Mapping[str, Any]], *, now: datetime | None = None
) -> list[str]:
    """The execution's history as lines: a head, one block per state, how it ended.

    `now` (aware) gives running states and executions their duration so far.
    """
    execution = _read(events)
    lines = [f"claim {claim_id}: execution {arn}"]
    if execution.started_at is not None:
        lines.append(
            f"{format_instant(execution.started_at)}  started  input {summarize(execution.input)}"
        )
    lines.append("")
    given = execution.input
    for visit in execution.visits:
        lines += _visit_lines(visit, now, given)
        given = visit.output if visit.output is not None else given
    lines.append("")
    lines += _ending_lines(execution, now)
    return lines


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def run_trace(
    claim_id: str,
    target: Target,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    now: datetime | None = None,
) -> int:
    """Print the claim's timeline; 1 when the claim has no execution (or none is reachable)."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        arn = execution_arn(target.output(STATE_MACHINE_OUTPUT), claim_id)
        events = execution_history(target.client("stepfunctions"), arn)
    except TargetUnavailable as error:
        print(f"error: {error}", file=err)
        return 1
    except ClientError as error:
        if _error_code(error) in ("ExecutionDoesNotExist", "InvalidArn"):
            print(
                f"error: no execution for claim {claim_id!r} in the {target.description} "
                f"(looked for {arn})",
                file=err,
            )
        else:
            print(f"error: cannot read the execution of claim {claim_id!r}: {error}", file=err)
        return 1
    except BotoCoreError as error:
        print(f"error: cannot read the execution of claim {claim_id!r}: {error}", file=err)
        return 1
    for line in format_trace(claim_id, arn, events, now=now or datetime.now(UTC)):
        print(line, file=out)
    return 0


# -- review: the queue ------------------------------------------------------------------


def bucket_name(target: Target, logical_id: str, stack_name: str = STACK_NAME) -> str:
    """The physical name of the stack's bucket `logical_id`; `TargetUnavailable` if none.

    In AWS it is among the stack's resources; locally, where no CloudFormation is asked,
    it is the name the local cloud gives buckets: `<stack>-<logicalid>-<suffix>` in lower
    case, the stack and id cut so the whole fits S3's 63 characters.
    """
    if target.kind == "aws":
        names = _stack_buckets(target.client("cloudformation"), stack_name, logical_id)
    else:
        prefix = f"{stack_name}-{logical_id}"[: 63 - 12 - 1].lower() + "-"
        buckets = target.client("s3").list_buckets().get("Buckets", [])
        names = [str(b["Name"]) for b in buckets if str(b["Name"]).startswith(prefix)]
    if len(names) != 1:
        raise TargetUnavailable(
            f"the {target.description} has {len(names)} {logical_id} buckets, expected one"
        )
    return names[0]


def _stack_buckets(cloudformation: Any, stack_name: str, logical_id: str) -> list[str]:
    names = []
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        names += [
            str(resource["PhysicalResourceId"])
            for resource in page["StackResourceSummaries"]
            if resource["ResourceType"] == _BUCKET_TYPE
            and resource["LogicalResourceId"] == logical_id
            and resource.get("PhysicalResourceId")
        ]
    return names


def _plain(value: Any) -> Any:
    """A deserialised item in JSON's types: whole numbers as int, sets as sorted lists."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return value


def claims_in_review(
    dynamodb: Any, table: str, *, page_size: int | None = None
) -> list[dict[str, Any]]:
    """Every claim waiting for review, oldest submission first (gsi2 sorts by submittedAt)."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    request: dict[str, Any] = {
        "TableName": table,
        "IndexName": "gsi2",
        "KeyConditionExpression": "gsi2pk = :queue",
        "ExpressionAttributeValues": {":queue": {"S": IN_REVIEW_PARTITION}},
        "ScanIndexForward": True,
    }
    if page_size is not None:
        request["PaginationConfig"] = {"PageSize": page_size}
    claims = []
    for page in dynamodb.get_paginator("query").paginate(**request):
        for item in page["Items"]:
            claims.append(
                _plain({name: deserializer.deserialize(value) for name, value in item.items()})
            )
    return claims


def review_entry(item: Mapping[str, Any], receipt_url: str | None) -> dict[str, Any]:
    """What a reviewer needs of one claim, in the API's shapes (money as objects)."""
    purchase = item.get("purchase") or {}
    total = purchase.get("total")
    return {
        "claimId": item.get("claimId"),
        "customerId": item.get("customerId"),
        "campaignId": item.get("campaignId"),
        "submittedAt": item.get("submittedAt"),
        "reviewDueAt": item.get("reviewDueAt"),
        "reward": item.get("reward"),
        "purchase": {
            "retailer": purchase.get("retailer"),
            "receiptNumber": purchase.get("receiptNumber"),
            "purchasedAt": purchase.get("purchasedAt"),
            "total": (
                {"amount": total, "currency": purchase.get("currency")}
                if total is not None
                else None
            ),
        },
        "reviewReasons": list(item.get("reviewReasons") or []),
        "evidence": [
            {
                "rule": evidence.get("rule"),
                "reason": evidence.get("reason"),
                "claimIds": list(evidence.get("claimIds") or []),
                "note": evidence.get("note"),
            }
            for evidence in item.get("evidence") or []
        ],
        "receiptKey": item.get("receiptKey"),
        "receiptUrl": receipt_url,
    }


def _money_text(money: Mapping[str, Any] | None) -> str:
    if not money:
        return "not set"
    amount, currency = money.get("amount"), money.get("currency")
    if isinstance(amount, int) and isinstance(currency, str):
        try:
            return str(Money.of(amount, currency))
        except InvalidMoney:
            pass
    return f"{currency} {amount} (minor units)"


def _stored_instant(text: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _instant_text(text: Any) -> str:
    parsed = _stored_instant(text)
    if parsed is not None:
        return format_instant(parsed)
    return str(text) if text else "not set"


def _entry_lines(entry: Mapping[str, Any], now: datetime) -> Iterator[str]:
    due = _stored_instant(entry["reviewDueAt"])
    overdue = " (overdue)" if due is not None and due < now else ""
    yield (
        f"{entry['claimId']}  submitted {_instant_text(entry['submittedAt'])}  "
        f"review due {_instant_text(entry['reviewDueAt'])}{overdue}"
    )
    yield f"    customer  {entry['customerId']}   campaign {entry['campaignId']}"
    purchase = entry["purchase"]
    yield (
        f"    reward    {_money_text(entry['reward'])}   purchase {_money_text(purchase['total'])} "
        f"at {purchase['retailer']}, receipt {purchase['receiptNumber']}"
    )
    yield f"    why       {', '.join(entry['reviewReasons']) or 'no reason recorded'}"
    for index, evidence in enumerate(entry["evidence"]):
        label = "evidence" if index == 0 else ""
        text = f"{evidence['rule']} ({evidence['reason']})"
        if evidence["note"]:
            text += f": {evidence['note']}"
        if evidence["claimIds"]:
            text += f"; matched {', '.join(evidence['claimIds'])}"
        yield f"    {label:<8}  {text}"
    yield f"    receipt   {entry['receiptUrl'] or 'none uploaded'}"


def format_review_queue(entries: Sequence[Mapping[str, Any]], *, now: datetime) -> list[str]:
    if not entries:
        return ["no claims in review"]
    count = len(entries)
    lines = [f"{count} claim{'' if count == 1 else 's'} in review, oldest first"]
    for entry in entries:
        lines.append("")
        lines += _entry_lines(entry, now)
    return lines


def _sigv4_query(**_: Any) -> str:
    return "s3v4-query"


def run_review(
    target: Target,
    *,
    as_json: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
    now: datetime | None = None,
) -> int:
    """Print the review queue (text, or `{"claims": [...]}` with `as_json`)."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        items = claims_in_review(target.client("dynamodb"), table_name(target, CLAIMS))
        receipts = [item for item in items if item.get("receiptKey")]
        links: dict[str, str] = {}
        if receipts:
            s3 = target.client("s3")
            # botocore presigns S3 with SigV2 unless the client asks otherwise; SigV2 is
            # deprecated and refused for KMS-encrypted objects.
            s3.meta.events.register_first("choose-signer.s3.GetObject", _sigv4_query)
            bucket = bucket_name(target, RECEIPTS_BUCKET)
            for item in receipts:
                links[str(item["receiptKey"])] = s3.generate_presigned_url(
                    "get_object",
                    Params={"Bucket": bucket, "Key": item["receiptKey"]},
                    ExpiresIn=RECEIPT_LINK_SECONDS,
                )
    except TargetUnavailable as error:
        print(f"error: {error}", file=err)
        return 1
    except (BotoCoreError, ClientError) as error:
        print(f"error: cannot read the review queue: {error}", file=err)
        return 1
    entries = [review_entry(item, links.get(str(item.get("receiptKey")))) for item in items]
    if as_json:
        print(json.dumps({"claims": entries}, indent=2, ensure_ascii=False), file=out)
        return 0
    for line in format_review_queue(entries, now=now or datetime.now(UTC)):
        print(line, file=out)
    return 0


# -- review: a decision -----------------------------------------------------------------


def decision_problem(
    *, approve: str | None, reject: str | None, reason: str | None, reviewer: str | None
) -> str | None:
    """What is wrong with the decision options, or None (argparse keeps the two apart)."""
    if approve is None and reject is None:
        if reason is not None:
            return "--reason goes with --approve or --reject"
        if reviewer is not None:
            return "--reviewer goes with --approve or --reject"
        return None
    if not (approve if approve is not None else reject or "").strip():
        return "--approve and --reject need a claim id"
    if reject is not None and not (reason or "").strip():
        return "--reject needs --reason"
    return None


def default_opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener()


def target_credentials(target: Target) -> Any:
    """What the target's clients sign with: moto's fixed fake credentials locally, else the
    shell's, resolved as `cli.target` resolved them and frozen, so that a refreshing
    provider cannot swap the key between the signature's parts."""
    from botocore.credentials import ReadOnlyCredentials

    if target.kind == "local":
        return ReadOnlyCredentials("testing", "testing", None)
    from cli.aws import AwsUnavailable, resolve

    try:
        return resolve().session.get_credentials().get_frozen_credentials()
    except AwsUnavailable as error:
        raise TargetUnavailable(str(error)) from error


def caller_identity(target: Target) -> str:
    """Who is deciding, as AWS knows them (the reviewer recorded with the decision)."""
    try:
        return str(target.client("sts").get_caller_identity()["Arn"])
    except (BotoCoreError, ClientError) as error:
        raise TargetUnavailable(
            f"cannot tell who you are ({error}): name yourself with --reviewer NAME"
        ) from error


def signed_request(
    url: str, body: Mapping[str, Any], *, credentials: Any, region: str
) -> urllib.request.Request:
    """A JSON POST to `url` carrying a SigV4 signature for API Gateway (`execute-api`)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    data = json.dumps(body).encode()
    request = AWSRequest(
        method="POST", url=url, data=data, headers={"Content-Type": "application/json"}
    )
    SigV4Auth(credentials, "execute-api", region).add_auth(request)
    return urllib.request.Request(  # noqa: S310 - the target's own API URL
        url, data=data, headers=dict(request.headers.items()), method="POST"
    )


def _refusal_text(status: int, payload: bytes) -> str:
    """`409 already_decided: message` from the API's error shape (or the gateway's)."""
    try:
        document = json.loads(payload)
    except ValueError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("error"), dict):
        code, message = document["error"].get("code"), document["error"].get("message")
        return f"{status} {code}: {message}" if code else f"{status}: {message}"
    if isinstance(document, dict) and document.get("message"):
        return f"{status}: {document['message']}"
    return f"{status}: {summarize(payload.decode(errors='replace')) or 'no body'}"


def run_decision(
    target: Target,
    claim_id: str,
    *,
    decision: str,
    reason: str | None,
    reviewer: str | None = None,
    as_json: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
    opener: urllib.request.OpenerDirector | None = None,
) -> int:
    """Post the decision on `claim_id`; print the outcome, or the refusal and return 1."""
    out, err = out or sys.stdout, err or sys.stderr
    if decision not in DECISIONS:
        raise ValueError(f"unknown decision {decision!r}")
    url = f"{target.api_url}/v1/claims/{urllib.parse.quote(claim_id, safe='')}/review"
    try:
        body = {
            "decision": decision,
            "reason": (reason or "").strip() or APPROVAL_REASON,
            "reviewer": reviewer or caller_identity(target),
        }
        request = signed_request(
            url, body, credentials=target_credentials(target), region=target.region
        )
    except TargetUnavailable as error:
        print(f"error: {error}", file=err)
        return 1
    try:
        with (opener or default_opener()).open(request, timeout=_REQUEST_SECONDS) as response:
            payload = response.read()
    except urllib.error.HTTPError as error:
        print(f"error: claim {claim_id}: {_refusal_text(error.code, error.read())}", file=err)
        return 1
    except (urllib.error.URLError, OSError) as error:
        reason_text = getattr(error, "reason", error)
        print(f"error: cannot reach {url}: {reason_text}", file=err)
        return 1
    try:
        outcome = json.loads(payload)
    except ValueError:
        outcome = {}
    if as_json:
        print(json.dumps(outcome, indent=2, ensure_ascii=False), file=out)
        return 0
    status = outcome.get("status", "unknown") if isinstance(outcome, dict) else "unknown"
    print(f"claim {claim_id}: {DECISIONS[decision]} (status {status})", file=out)
    return 0
