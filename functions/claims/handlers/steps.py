"""The claims state machine's tasks (`infra/statemachines/claims.asl.json`), one function.

Each task invokes it with ``{"step": <name>, "claimId": ..., ...}`` and gets JSON back:

- ``verify``: validate, check duplicates and fraud, route. Answers the verdict with the
  review's timeout and heartbeat in seconds (``review_timeout_hours`` times
  ``CLAIMS_REVIEW_SECONDS_PER_HOUR``: 3600 in a deployment, one in a test that wants a
  review to time out in seconds). ``receiptWait: "over"`` judges a receipt still not
  uploaded as missing, after the state machine's retries of ``ReceiptPending``.
- ``hold``: the review wait began (``.waitForTaskToken``): keep the token on the claim.
- ``approve``: reserve the budget and approve (or reject ``budget_exhausted``).
- ``credited``: the wallet credited the reward (its lot id): mark the claim credited.
- ``reject``: reject with the reasons given (verification's, the reviewer's).
- ``review_timeout``: nobody decided in time: reject with ``review_timeout``.
- ``error``: a failure nothing mends: end in ``error`` with the cause kept.

Every step is idempotent (`functions.claims.dal`). Failures a retry may mend (throttling,
contention) are raised as `TransientError`, which the ASL retries with backoff and
jitter; any other exception ends up in its Catch under its own class name, and the claim
in ``error``. A payload that does not parse is `InvalidStepRequest`: a definition bug.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Annotated, Any, Final, Literal

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from functions.claims import logic
from functions.claims.dal import ClaimStore, TransientError, is_transient
from functions.claims.logic import Reason
from functions.claims.models import Claim
from functions.core.clock import format_instant, utc_now
from functions.core.observability import (
    instrumented,
    logger,
    record_claim_decision_time,
    record_claim_error,
    record_claim_outcome,
)
from functions.core.settings import CoreSettings, load_settings
from functions.core.validation import MAX_REPORTED_ERRORS, describe_errors, explained_errors

__all__ = ["InvalidStepRequest", "StepSettings", "handler", "run_step"]

store = ClaimStore()

Id = Annotated[StrictStr, Field(min_length=1, max_length=80)]


class StepSettings(CoreSettings):
    seconds_per_hour: Annotated[int, Field(ge=1, le=3600)] = Field(
        default=logic.SECONDS_PER_HOUR, alias="CLAIMS_REVIEW_SECONDS_PER_HOUR"
    )
    heartbeat_seconds: Annotated[int, Field(ge=1)] = Field(
        default=logic.DEFAULT_HEARTBEAT_SECONDS, alias="CLAIMS_REVIEW_HEARTBEAT_SECONDS"
    )
    velocity_per_day: Annotated[int, Field(ge=1)] = Field(
        default=logic.DEFAULT_VELOCITY_PER_DAY, alias="CLAIMS_VELOCITY_PER_DAY"
    )


class InvalidStepRequest(ValueError):
    """The task's input is not a step request; the message lists each problem by path."""


class _Step(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    claimId: Id


class VerifyStep(_Step):
    step: Literal["verify"]
    receiptWait: Literal["over"] | None = None


class HoldStep(_Step):
    step: Literal["hold"]
    taskToken: Annotated[StrictStr, Field(min_length=1, max_length=4096)]
    timeoutSeconds: Annotated[StrictInt, Field(ge=1)]


class ApproveStep(_Step):
    step: Literal["approve"]
    reviewer: StrictStr | None = None
    reason: StrictStr | None = None


class CreditedStep(_Step):
    step: Literal["credited"]
    lotId: Id


class RejectStep(_Step):
    step: Literal["reject"]
    reasons: Annotated[list[StrictStr], Field(min_length=1)]
    reviewer: StrictStr | None = None
    note: StrictStr | None = None


class ReviewTimeoutStep(_Step):
    step: Literal["review_timeout"]


class ErrorStep(_Step):
    step: Literal["error"]
    # The Catch's output as JSON text ({"Error", "Cause"}, either may be missing).
    failure: Annotated[StrictStr, Field(max_length=262_144)] = "{}"

    def _caught(self) -> dict[str, Any]:
        try:
            caught = json.loads(self.failure)
        except ValueError:
            return {"Cause": self.failure}
        return caught if isinstance(caught, dict) else {"Cause": self.failure}

    @property
    def error(self) -> str:
        return str(self._caught().get("Error") or "Unknown")

    @property
    def cause(self) -> str:
        cause = self._caught().get("Cause")
        return cause if isinstance(cause, str) else json.dumps(cause) if cause else ""


class _Request(BaseModel):
    request: Annotated[
        VerifyStep
        | HoldStep
        | ApproveStep
        | CreditedStep
        | RejectStep
        | ReviewTimeoutStep
        | ErrorStep,
        Field(discriminator="step"),
    ]


def parse(event: Any) -> BaseModel:
    try:
        return _Request.model_validate({"request": event}).request
    except ValidationError as error:
        problems = describe_errors(explained_errors(error.errors()), limit=MAX_REPORTED_ERRORS)
        listed = "; ".join(f"{p['path']}: {p['message']}" for p in problems)
        raise InvalidStepRequest(f"not a claims step: {listed}") from None


# -- the steps --------------------------------------------------------------------------


def _verify(request: VerifyStep, claims: ClaimStore, settings: StepSettings) -> dict[str, Any]:
    now = utc_now()
    verdict = claims.verify(
        request.claimId,
        now=now,
        velocity_limit=settings.velocity_per_day,
        receipt_wait_over=request.receiptWait == "over",
    )
    campaign = claims.campaigns.get(claims.get(request.claimId).campaign_id)
    hours = (
        campaign.config.claims.review_timeout_hours
        if campaign is not None and campaign.config.claims is not None
        else 72
    )
    timing = logic.review_timing(
        hours,
        seconds_per_hour=settings.seconds_per_hour,
        heartbeat_seconds=settings.heartbeat_seconds,
    )
    logger.info(
        "claim verified",
        extra={
            "claimId": request.claimId,
            "outcome": verdict.outcome.value,
            "reasons": list(verdict.reasons),
            "reviewReasons": list(verdict.review_reasons),
        },
    )
    return {
        "outcome": verdict.outcome.value,
        "reward": verdict.reward.model_dump(mode="json"),
        "reasons": list(verdict.reasons),
        "reviewReasons": list(verdict.review_reasons),
        "reviewTimeoutSeconds": timing.timeout_seconds,
        "reviewHeartbeatSeconds": timing.heartbeat_seconds,
    }


def _hold(request: HoldStep, claims: ClaimStore, settings: StepSettings) -> dict[str, Any]:
    now = utc_now()
    due = now + timedelta(seconds=request.timeoutSeconds)
    claim = claims.hold_for_review(request.claimId, token=request.taskToken, due_at=due, now=now)
    logger.info("claim waits for review", extra={"claimId": claim.claim_id})
    return {"status": "in_review", "reviewDueAt": format_instant(due)}


def _approve(request: ApproveStep, claims: ClaimStore, settings: StepSettings) -> dict[str, Any]:
    now = utc_now()
    approval = claims.approve(
        request.claimId, reviewer=request.reviewer, reason=request.reason, now=now
    )
    claim = claims.get(request.claimId)
    path = "review" if request.reviewer else "auto"
    if approval.outcome == "approved":
        record_claim_outcome("approved", path)
        record_claim_decision_time((claim.updated_at - claim.submitted_at).total_seconds(), path)
    else:
        _rejected(claim, approval.reasons, path)
    return {
        "outcome": approval.outcome,
        "reward": approval.reward.model_dump(mode="json") if approval.reward else None,
        "approvedAt": format_instant(approval.approved_at) if approval.approved_at else None,
        "reasons": list(approval.reasons),
    }


def _credited(request: CreditedStep, claims: ClaimStore, settings: StepSettings) -> dict[str, Any]:
    claim = claims.mark_credited(request.claimId, lot_id=request.lotId, now=utc_now())
    record_claim_outcome("credited", "lot")
    return {"status": claim.status, "lotId": request.lotId}


def _reject(request: RejectStep, claims: ClaimStore, settings: StepSettings) -> dict[str, Any]:
    claim = claims.reject(
        request.claimId,
        reasons=request.reasons,
        reviewer=request.reviewer,
        note=request.note,
        now=utc_now(),
    )
    _rejected(claim, tuple(request.reasons), "review" if request.reviewer else "auto")
    return {"status": claim.status, "reasons": list(claim.reasons)}


def _review_timeout(
    request: ReviewTimeoutStep, claims: ClaimStore, settings: StepSettings
) -> dict[str, Any]:
    claim = claims.reject(
        request.claimId,
        reasons=(Reason.REVIEW_TIMEOUT,),
        reviewer=None,
        note="nobody decided before the review's timeout",
        now=utc_now(),
    )
    _rejected(claim, (Reason.REVIEW_TIMEOUT,), "review")
    return {"status": claim.status, "reasons": list(claim.reasons)}


def _error(request: ErrorStep, claims: ClaimStore, settings: StepSettings) -> dict[str, Any]:
    claim = claims.fail(request.claimId, error=request.error, cause=request.cause, now=utc_now())
    record_claim_error()
    logger.error(
        "claim verification failed",
        extra={"claimId": request.claimId, "error": request.error, "cause": request.cause[:500]},
    )
    return {"status": claim.status}


def _rejected(claim: Claim, reasons: tuple[str, ...], path: str) -> None:
    for reason in reasons:
        record_claim_outcome("rejected", reason)
    record_claim_decision_time((claim.updated_at - claim.submitted_at).total_seconds(), path)


_Runner = Callable[[Any, ClaimStore, StepSettings], dict[str, Any]]
_STEPS: Final[Mapping[type[BaseModel], _Runner]] = {
    VerifyStep: _verify,
    HoldStep: _hold,
    ApproveStep: _approve,
    CreditedStep: _credited,
    RejectStep: _reject,
    ReviewTimeoutStep: _review_timeout,
    ErrorStep: _error,
}


def run_step(event: Any, claims: ClaimStore, settings: StepSettings) -> dict[str, Any]:
    """Run the step `event` names against `claims`; its answer as JSON."""
    request = parse(event)
    try:
        return _STEPS[type(request)](request, claims, settings)
    except TransientError:
        raise
    except Exception as error:
        if is_transient(error):
            raise TransientError(f"{type(error).__name__}: {error}") from error
        raise


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return run_step(event, store, load_settings(StepSettings))
