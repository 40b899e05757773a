"""The claims state machine's tasks (`run_step`), driven the way the definition drives them.

The ASL file is read as it is deployed: each task's payload is built from its
``Parameters`` against the execution's document, its answer is passed through its
``ResultSelector`` and ``ResultPath``, and each Choice picks the next state from it. A
path the definition reads that an answer lacks fails here, as it would fail the
execution. Then the parsing of payloads, and which failures the definition retries.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import pytest
from botocore.exceptions import ClientError

from functions.claims.dal import ClaimStore, ReceiptPending, TransientError
from functions.claims.errors import ClaimNotFound
from functions.claims.handlers.steps import InvalidStepRequest, StepSettings, parse, run_step
from functions.claims.models import Claim
from functions.core.clock import FixedClock, format_instant, frozen_at
from functions.core.models import TransactionCancelled
from tests.unit.claims.conftest import (
    SUBMITTED,
    RecordingStateMachine,
    aws_env,
    budget_used,
    draft,
    line,
    publish,
    rebate,
    timeline,
    uploaded,
)

__all__ = ["aws_env"]

DEFINITION: Final = json.loads(
    (Path(__file__).parents[3] / "infra" / "statemachines" / "claims.asl.json").read_text()
)
STATES: Final[dict[str, Any]] = DEFINITION["States"]
STEPS_FUNCTION: Final = "${StepsFunctionArn}"
END: Final = "(end)"
VERIFIED = SUBMITTED + timedelta(minutes=1)
SETTINGS = StepSettings.model_validate(
    {
        "POWERTOOLS_SERVICE_NAME": "claims-steps",
        "REBATES_VERSION": "test",
        "CLAIMS_REVIEW_SECONDS_PER_HOUR": "4",
        "CLAIMS_REVIEW_HEARTBEAT_SECONDS": "21600",
        "CLAIMS_VELOCITY_PER_DAY": "5",
    }
)


@pytest.fixture
def clock(store: ClaimStore) -> Iterator[FixedClock]:
    with frozen_at(VERIFIED) as fixed:
        yield fixed


# -- a reading of the definition --------------------------------------------------------


def resolve(path: str, document: Any, context: Mapping[str, Any]) -> Any:
    """A reference path (``$.a.b`` or ``$$.Task.Token``), or ``States.JsonToString`` of
    one; a missing field fails the test."""
    if path.startswith("States.JsonToString(") and path.endswith(")"):
        inner = path.removeprefix("States.JsonToString(").removesuffix(")")
        return json.dumps(resolve(inner, document, context), separators=(",", ":"))
    root: Any = context if path.startswith("$$") else document
    parts = path.lstrip("$").strip(".")
    for part in parts.split(".") if parts else ():
        assert isinstance(root, dict) and part in root, f"{path}: no {part!r} in {root!r}"
        root = root[part]
    return root


def build(template: Any, document: Any, context: Mapping[str, Any]) -> Any:
    """A ``Parameters`` or ``ResultSelector`` template filled from `document`."""
    if isinstance(template, dict):
        return {
            key.removesuffix(".$"): resolve(value, document, context)
            if key.endswith(".$")
            else build(value, document, context)
            for key, value in template.items()
        }
    if isinstance(template, list):
        return [build(value, document, context) for value in template]
    return template


def placed(document: dict[str, Any], result_path: str | None, result: Any) -> dict[str, Any]:
    if result_path is None:
        return document
    if result_path == "$":
        assert isinstance(result, dict)
        return result
    name = result_path.removeprefix("$.")
    assert "." not in name, "the definition only writes top-level fields"
    return {**document, name: result}


class Execution:
    """One claim's execution, one state at a time, with the steps run in process."""

    def __init__(self, store: ClaimStore, claim: Claim) -> None:
        self.store = store
        self.document: dict[str, Any] = {
            "claimId": claim.claim_id,
            "customerId": claim.customer_id,
            "campaignId": claim.campaign_id,
        }
        self.state: str = DEFINITION["StartAt"]
        self.visited: list[str] = []
        self.answers: dict[str, Any] = {}
        self.waiting = False

    def step(self, *, result: Any = None, token: str = "token-1") -> str:
        """Run the current state; `result` stands for what another party answers (the
        credit function's answer, the decision sent to a waiting task's token).

        A waiting task is stepped twice: once to run its step (the execution then waits
        in it), once with the decision that ends the wait.
        """
        name = self.state
        state = STATES[name]
        kind = state["Type"]
        waits = kind == "Task" and state["Resource"].endswith(".waitForTaskToken")
        if not (waits and self.waiting):
            self.visited.append(name)
        if kind == "Task":
            parameters = state["Parameters"]
            output: Any = result
            if parameters["FunctionName"] == STEPS_FUNCTION and not self.waiting:
                payload = build(parameters["Payload"], self.document, {"Task": {"Token": token}})
                answer = run_step(payload, self.store, SETTINGS)
                self.answers[name] = answer
                if waits:
                    self.waiting = True
                    return name
                output = {"Payload": json.loads(json.dumps(answer))}
            # A waiting task's output is what was sent with its token, not the answer.
            self.waiting = False
            if "ResultSelector" in state:
                output = build(state["ResultSelector"], output, {})
            self.document = placed(self.document, state.get("ResultPath", "$"), output)
            self.state = state.get("Next", END)
        elif kind == "Choice":
            chosen = [
                choice["Next"]
                for choice in state["Choices"]
                if resolve(choice["Variable"], self.document, {}) == choice["StringEquals"]
            ]
            self.state = chosen[0] if chosen else state["Default"]
        elif kind == "Pass":
            self.document = placed(self.document, state["ResultPath"], state["Result"])
            self.state = state["Next"]
        else:
            assert kind in ("Succeed", "Fail"), kind
            self.state = END
        return self.state

    def caught(self, error: str, cause: str | None) -> str:
        """The current task failed with `error`: follow its first Catch matching it
        (`cause` None: a failure that carries none)."""
        state = STATES[self.state]
        if not self.visited or self.visited[-1] != self.state:
            self.visited.append(self.state)
        self.waiting = False
        for catcher in state["Catch"]:
            if error in catcher["ErrorEquals"] or "States.ALL" in catcher["ErrorEquals"]:
                failure = {"Error": error} if cause is None else {"Error": error, "Cause": cause}
                self.document = placed(self.document, catcher["ResultPath"], failure)
                self.state = catcher["Next"]
                return self.state
        raise AssertionError(f"{self.state} catches no {error}")

    def run_to(self, stop: str) -> list[str]:
        """Run the states up to `stop` (not run); the states passed, in order."""
        start = len(self.visited)
        while self.state != stop:
            assert self.state != END, f"ended before {stop}: {self.visited}"
            self.step()
        return self.visited[start:]


def submitted(store: ClaimStore, customer: str = "cust-1", **changes: Any) -> Claim:
    changes.setdefault("receipt", uploaded(customer))
    return store.submit(draft(customer, **changes), now=SUBMITTED).claim


def review_campaign() -> None:
    publish(rebate(claims={"window_days": 30, "auto_approve_up_to": 500}))


def sent_decision(machine: RecordingStateMachine) -> dict[str, str]:
    """What the review route handed the waiting task: that task's output."""
    return machine.decisions[-1][1]


# -- the paths through the definition -----------------------------------------------------


def test_an_auto_approved_claim_is_reserved_credited_and_marked(
    store: ClaimStore, clock: FixedClock
) -> None:
    execution = Execution(store, submitted(store))
    assert execution.run_to("Credit the cashback") == [
        "Verify the claim",
        "Route by verdict",
        "Reserve the budget",
        "Budget reserved?",
    ]
    # The credit function is the wallet's: its payload is built from these answers.
    credit = build(STATES["Credit the cashback"]["Parameters"]["Payload"], execution.document, {})
    assert credit == {
        "customerId": "cust-1",
        "campaignId": "trail-rebate-2027",
        "claimId": execution.document["claimId"],
        "amount": {"amount": 1000, "currency": "JPY"},
        "approvedAt": format_instant(VERIFIED),
    }
    execution.step(result={"Payload": {"lotId": "lot_claim_1", "new": True}})
    assert execution.step() == END
    assert execution.answers["Mark credited"] == {"status": "credited", "lotId": "lot_claim_1"}
    claim = store.get(execution.document["claimId"])
    assert timeline(claim) == ["submitted", "verifying", "approved", "credited"]
    assert budget_used() == (1000, 1)


def test_a_claim_verification_rejects_ends_rejected_with_its_reasons(
    store: ClaimStore, clock: FixedClock
) -> None:
    execution = Execution(store, submitted(store, items=(line(price=100),)))
    assert execution.run_to(END) == [
        "Verify the claim",
        "Route by verdict",
        "Reject the claim",
        "Claim rejected",
    ]
    assert execution.answers["Verify the claim"]["reasons"] == ["below_min_purchase"]
    claim = store.get(execution.document["claimId"])
    assert (claim.status, claim.reasons) == ("rejected", ["below_min_purchase"])


def test_a_claim_that_earns_nothing_is_rejected_not_approved(
    store: ClaimStore, clock: FixedClock
) -> None:
    publish(
        rebate(
            reward={"percentage": 1},
            eligibility={"channels": ["online"], "skus": ["TRAIL-01"]},
        )
    )
    execution = Execution(store, submitted(store, items=(line(price=99),)))
    assert execution.run_to(END)[-2:] == ["Reject the claim", "Claim rejected"]
    assert execution.answers["Verify the claim"]["reasons"] == ["not_eligible"]
    assert budget_used() == (0, 0)


def test_a_reviewed_claim_waits_with_its_token_and_follows_the_approval(
    store: ClaimStore, machine: RecordingStateMachine, clock: FixedClock
) -> None:
    review_campaign()
    execution = Execution(store, submitted(store))
    assert execution.run_to("Wait for review") == ["Verify the claim", "Route by verdict"]
    verdict = execution.document["verdict"]
    # 72 review hours of 4 seconds; the heartbeat at most half of it.
    assert (verdict["reviewTimeoutSeconds"], verdict["reviewHeartbeatSeconds"]) == (288, 144)
    assert verdict["reviewReasons"] == ["above_auto_approve_limit"]
    wait = STATES["Wait for review"]
    assert resolve(wait["TimeoutSecondsPath"], execution.document, {}) == 288
    assert resolve(wait["HeartbeatSecondsPath"], execution.document, {}) == 144

    assert execution.step(token="token-7") == "Wait for review"  # held: the task waits
    claim_id = execution.document["claimId"]
    held = store.get(claim_id)
    assert (held.status, held.task_token) == ("in_review", "token-7")
    assert held.review_due_at == VERIFIED + timedelta(seconds=288)
    assert execution.answers["Wait for review"] == {
        "status": "in_review",
        "reviewDueAt": format_instant(VERIFIED + timedelta(seconds=288)),
    }

    clock.advance(timedelta(seconds=60))
    store.decide(claim_id, decision="approve", reason="ok", reviewer="op-1", now=clock.now())
    assert machine.decisions[-1][0] == "token-7"
    execution.step(result=sent_decision(machine))
    assert execution.run_to("Credit the cashback") == [
        "Reviewer decided",
        "Reserve the budget after review",
        "Budget reserved?",
    ]
    approved = store.get(claim_id)
    assert (approved.status, approved.reviewer) == ("approved", "op-1")
    assert approved.timeline[-1].note == "approved by op-1: ok"


def test_a_reviewer_rejecting_ends_the_claim_rejected_by_review(
    store: ClaimStore, machine: RecordingStateMachine, clock: FixedClock
) -> None:
    review_campaign()
    execution = Execution(store, submitted(store))
    execution.run_to("Wait for review")
    execution.step(token="token-7")
    claim_id = execution.document["claimId"]
    store.decide(claim_id, decision="reject", reason="blurred", reviewer="op-2", now=VERIFIED)
    execution.step(result=sent_decision(machine))

    assert execution.run_to(END) == ["Reviewer decided", "Reject after review", "Claim rejected"]
    claim = store.get(claim_id)
    assert (claim.status, claim.reasons, claim.reviewer) == (
        "rejected",
        ["review_rejected"],
        "op-2",
    )
    assert claim.timeline[-1].note == "blurred"
    assert execution.answers["Reject after review"] == {
        "status": "rejected",
        "reasons": ["review_rejected"],
    }


def test_nobody_deciding_in_time_closes_the_review(store: ClaimStore, clock: FixedClock) -> None:
    review_campaign()
    execution = Execution(store, submitted(store))
    execution.run_to("Wait for review")
    execution.step(token="token-7")
    assert execution.caught("States.Timeout", "the task timed out") == "Close the review"
    assert execution.run_to(END) == ["Close the review", "Claim rejected"]
    claim = store.get(execution.document["claimId"])
    assert (claim.status, claim.reasons, claim.task_token) == ("rejected", ["review_timeout"], None)


def test_a_review_whose_heartbeats_stopped_ends_in_error_not_in_timeout(
    store: ClaimStore, clock: FixedClock
) -> None:
    review_campaign()
    execution = Execution(store, submitted(store))
    execution.run_to("Wait for review")
    execution.step(token="token-7")
    # Step Functions reports a missed heartbeat as States.HeartbeatTimeout, which a
    # States.Timeout catcher matches too: the first catcher decides.
    assert execution.caught("States.HeartbeatTimeout", "no heartbeat") == "Record the error"
    assert execution.run_to(END) == ["Record the error", "Verification failed"]
    claim = store.get(execution.document["claimId"])
    assert (claim.status, claim.error_cause) == ("error", "States.HeartbeatTimeout: no heartbeat")
    assert claim.reasons == []


def test_a_receipt_never_uploaded_is_judged_missing_after_the_retries(
    store: ClaimStore, clock: FixedClock
) -> None:
    execution = Execution(store, submitted(store, receipt=uploaded(status="awaiting_upload")))
    with pytest.raises(ReceiptPending) as pending:
        execution.step()
    error = type(pending.value).__name__
    assert STATES["Verify the claim"]["Retry"][0]["ErrorEquals"] == [error]
    assert execution.caught(error, str(pending.value)) == "Verify without the receipt"
    assert execution.run_to(END) == [
        "Verify without the receipt",
        "Route by verdict",
        "Reject the claim",
        "Claim rejected",
    ]
    assert store.get(execution.document["claimId"]).reasons == ["receipt_missing"]


def test_an_exhausted_budget_ends_the_claim_rejected(store: ClaimStore, clock: FixedClock) -> None:
    publish(rebate(budget={"max_rewards": 1}, claims={"window_days": 30}))
    first = Execution(store, submitted(store, "cust-1"))
    first.run_to("Credit the cashback")
    late = Execution(
        store,
        submitted(
            store,
            "cust-2",
            receipt_number="R-2",
            receipt=uploaded("cust-2", content=b"another receipt"),
        ),
    )
    assert late.run_to(END) == [
        "Verify the claim",
        "Route by verdict",
        "Reserve the budget",
        "Budget reserved?",
        "Claim rejected",
    ]
    assert late.answers["Reserve the budget"] == {
        "outcome": "rejected",
        "reward": None,
        "approvedAt": None,
        "reasons": ["budget_exhausted"],
    }
    assert store.get(late.document["claimId"]).reasons == ["budget_exhausted"]


def test_a_failure_is_recorded_with_its_cause_and_fails_the_execution(
    store: ClaimStore, clock: FixedClock
) -> None:
    execution = Execution(store, submitted(store))
    execution.run_to("Reserve the budget")
    assert execution.caught("States.TaskFailed", "boom") == "Record the error"
    assert execution.run_to(END) == ["Record the error", "Verification failed"]
    assert execution.answers["Record the error"] == {"status": "error"}
    claim = store.get(execution.document["claimId"])
    assert (claim.status, claim.error_cause) == ("error", "States.TaskFailed: boom")


def test_a_failure_without_a_cause_is_recorded_all_the_same(
    store: ClaimStore, clock: FixedClock
) -> None:
    execution = Execution(store, submitted(store))
    execution.run_to("Reserve the budget")
    assert execution.caught("States.Timeout", None) == "Record the error"
    assert execution.run_to(END) == ["Record the error", "Verification failed"]
    claim = store.get(execution.document["claimId"])
    assert (claim.status, claim.error_cause) == ("error", "States.Timeout: ")


def test_an_answer_no_choice_knows_is_recorded_as_an_error(
    store: ClaimStore, clock: FixedClock
) -> None:
    execution = Execution(store, submitted(store))
    execution.step()
    execution.document["verdict"]["outcome"] = "maybe"
    assert execution.run_to(END) == [
        "Route by verdict",
        "Unexpected answer",
        "Record the error",
        "Verification failed",
    ]
    claim = store.get(execution.document["claimId"])
    assert claim.error_cause == (
        "UnexpectedAnswer: a step's answer matched no branch of a Choice state"
    )


def test_the_paths_above_cover_every_state_of_the_definition() -> None:
    covered = {
        "Verify the claim",
        "Verify without the receipt",
        "Route by verdict",
        "Wait for review",
        "Reviewer decided",
        "Close the review",
        "Reject after review",
        "Reject the claim",
        "Reserve the budget after review",
        "Reserve the budget",
        "Budget reserved?",
        "Credit the cashback",
        "Mark credited",
        "Claim rejected",
        "Unexpected answer",
        "Record the error",
        "Verification failed",
    }
    assert set(STATES) == covered


# -- replays, as a retried task runs -------------------------------------------------------


def test_every_step_replayed_answers_as_it_did(store: ClaimStore, clock: FixedClock) -> None:
    claim = submitted(store)
    claim_id = claim.claim_id
    for payload in (
        {"step": "verify", "claimId": claim_id},
        {"step": "approve", "claimId": claim_id},
        {"step": "credited", "claimId": claim_id, "lotId": "lot_1"},
    ):
        first = run_step(payload, store, SETTINGS)
        clock.advance(timedelta(seconds=5))
        assert run_step(payload, store, SETTINGS) == first
    assert budget_used() == (1000, 1)
    assert timeline(store.get(claim_id)) == ["submitted", "verifying", "approved", "credited"]


# -- payloads ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "named"),
    [
        pytest.param(
            {"step": "hold", "claimId": "clm_1", "taskToken": 5, "timeoutSeconds": "60"},
            ["request.hold.taskToken", "request.hold.timeoutSeconds"],
            id="wrong types",
        ),
        pytest.param({"step": "verify"}, ["request.verify.claimId"], id="no claim"),
        pytest.param({"step": "dance", "claimId": "clm_1"}, ["'dance'"], id="unknown step"),
        pytest.param({"claimId": "clm_1"}, ["step"], id="no step"),
        pytest.param(
            {"step": "reject", "claimId": "clm_1", "reasons": []},
            ["request.reject.reasons"],
            id="a rejection without reasons",
        ),
        pytest.param(
            {"step": "credited", "claimId": "", "lotId": "lot_1"},
            ["request.credited.claimId"],
            id="empty claim id",
        ),
        pytest.param(["verify"], ["request"], id="not an object"),
        pytest.param(None, ["request"], id="nothing"),
    ],
)
def test_a_payload_that_is_no_step_names_each_problem(event: Any, named: list[str]) -> None:
    with pytest.raises(InvalidStepRequest) as refused:
        parse(event)
    message = str(refused.value)
    assert message.startswith("not a claims step: ")
    for path in named:
        assert path in message


def test_a_step_ignores_fields_the_definition_adds() -> None:
    request = parse({"step": "verify", "claimId": "clm_1", "receiptWait": "over", "extra": 1})
    assert request.model_dump() == {"claimId": "clm_1", "step": "verify", "receiptWait": "over"}


def test_an_invalid_payload_touches_nothing(store: ClaimStore) -> None:
    with pytest.raises(InvalidStepRequest):
        run_step({"step": "approve"}, store, SETTINGS)


# -- which failures are retried --------------------------------------------------------------


def throttled(operation: str = "UpdateItem") -> ClientError:
    return ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, operation
    )


def failing(store: ClaimStore, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(store, "verify", fail)


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(throttled(), id="throttled"),
        pytest.param(
            ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "Query"),
            id="over throughput",
        ),
        pytest.param(
            TransactionCancelled({"claim": "TransactionConflict"}, cause=None),  # type: ignore[arg-type]
            id="contended",
        ),
    ],
)
def test_a_throttled_or_contended_store_is_a_transient_error(
    store: ClaimStore, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    failing(store, monkeypatch, error)
    with pytest.raises(TransientError) as raised:
        run_step({"step": "verify", "claimId": "clm_1"}, store, SETTINGS)
    assert type(raised.value) is TransientError  # the name the definition retries
    assert raised.value.__cause__ is error
    retried = STATES["Verify the claim"]["Retry"][1]["ErrorEquals"]
    assert type(raised.value).__name__ in retried


def test_a_cause_hidden_behind_another_error_is_still_transient(
    store: ClaimStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        try:
            raise throttled()
        except ClientError as inner:
            raise RuntimeError("the update failed") from inner
    except RuntimeError as outer:
        wrapped = outer
    failing(store, monkeypatch, wrapped)
    with pytest.raises(TransientError):
        run_step({"step": "verify", "claimId": "clm_1"}, store, SETTINGS)


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ValueError("a rejection has reasons"), id="a bug"),
        pytest.param(ClaimNotFound("clm_1"), id="a refusal"),
        pytest.param(
            ClientError({"Error": {"Code": "ValidationException"}}, "UpdateItem"), id="invalid"
        ),
        pytest.param(ReceiptPending("receipts/x/rcp_1.png"), id="receipt pending"),
    ],
)
def test_any_other_failure_stays_itself(
    store: ClaimStore, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    failing(store, monkeypatch, error)
    with pytest.raises(type(error)) as raised:
        run_step({"step": "verify", "claimId": "clm_1"}, store, SETTINGS)
    assert raised.value is error
