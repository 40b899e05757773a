"""The claims domain's reads and writes: `ClaimStore`, on the Claims table, the campaigns'
(read, and the budget's counters) and the claims state machine.

Every step of a claim's verification is a method here, and every one is safe to run
twice, because Step Functions retries a task whose answer it did not get and Lambda may
run an invocation again:

- a status changes by an update conditional on the status it leaves (`Claim.transition`),
  and a step that finds the claim already where it would take it answers as if it had
  just done so, without writing;
- the duplicate guards and the per-customer count hold the claim id, so a retried check
  finds its own guard (`acquire_guard`) and re-adds the same id to the count;
- the budget is reserved in the same transaction as the move to ``approved``
  (`functions.campaigns.budget.reserve`), so it is reserved once whatever the retries,
  and never beyond the caps however many approvals run at once;
- a rejection gives back, in its own transaction, what the claim held: its guards (a
  rejected receipt may be claimed again, corrected) and its place in the count.

The store raises domain errors (`functions.claims.errors`); it never knows HTTP.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from botocore.exceptions import ClientError
from pydantic import Field
from pynamodb.exceptions import UpdateError

from functions.campaigns import budget
from functions.campaigns.budget import BudgetLimits
from functions.campaigns.config import CampaignConfig
from functions.campaigns.models import get_campaign
from functions.campaigns.published import PublishedFiles
from functions.campaigns.rewards import LineItem
from functions.campaigns.states import ACTIVE
from functions.claims import logic
from functions.claims.errors import (
    AlreadyDecided,
    CampaignArchived,
    CampaignNotFound,
    ClaimNotFound,
    ClaimRequestConflict,
    CurrencyNotCampaigns,
    InvalidPageToken,
    NotARebateCampaign,
    NotInReview,
    PurchaseInFuture,
    ReceiptNotYours,
    ReviewClosed,
)
from functions.claims.logic import EvidenceFound, Outcome, Reason, Verdict
from functions.claims.models import (
    Claim,
    ClaimRequest,
    CustomerClaimCount,
    DuplicateGuard,
    Evidence,
    PurchaseItem,
    PurchaseMap,
    Receipt,
    ReceiptFileUse,
    TimelineEntry,
    acquire_guard,
)
from functions.claims.receipts import customer_of
from functions.core import aws
from functions.core.clock import format_instant
from functions.core.ids import new_id
from functions.core.models import Transaction, TransactionCancelled
from functions.core.money import Money
from functions.core.settings import CoreSettings, load_settings

__all__ = [
    "ClaimDraft",
    "ClaimPage",
    "ClaimStore",
    "Decision",
    "PurchaseInput",
    "StateMachine",
    "StateMachineSettings",
    "Submitted",
    "TransientError",
    "deployed_state_machine",
]

REBATE: Final = "rebate"
# A purchase dated a little after the submission is a storefront's clock, not a lie.
CLOCK_SKEW: Final = timedelta(minutes=5)
# Transactions that meet a concurrent one on the same campaign item are retried this often.
_MAX_ATTEMPTS: Final = 8

_VERIFYING_FROM: Final = ("submitted", "verifying")
_OPEN: Final = ("submitted", "verifying", "in_review")


class TransientError(RuntimeError):
    """A dependency refused for now (throttled, contended): the state machine retries it.

    The class name is the error the ASL's Retry matches (``TransientError``).
    """


_THROTTLING: Final = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "TransactionConflictException",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


def is_transient(error: BaseException) -> bool:
    """Whether `error` (or what caused it) is one a retry may mend."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TransientError):
            return True
        if isinstance(current, ClientError):
            return current.response.get("Error", {}).get("Code") in _THROTTLING
        if isinstance(current, TransactionCancelled):
            return current.conflicted or "ThrottlingError" in current.reasons.values()
        code = getattr(current, "cause_response_code", None)
        if code in _THROTTLING:
            return True
        current = current.__cause__ or current.__context__
    return False


# -- inputs and outputs ---------------------------------------------------------------


@dataclass(frozen=True)
class PurchaseInput:
    order_id: str | None
    retailer: str
    receipt_number: str
    purchased_at: datetime
    currency: str
    items: tuple[LineItem, ...]
    total: int


@dataclass(frozen=True)
class ClaimDraft:
    campaign_id: str
    customer_id: str
    purchase: PurchaseInput
    receipt_key: str | None
    # The Idempotency-Key the storefront sent, if any: the claim it makes is kept for good.
    request_key: str | None = None

    def fingerprint(self) -> str:
        purchase = self.purchase
        document = {
            "campaignId": self.campaign_id,
            "customerId": self.customer_id,
            "receiptKey": self.receipt_key,
            "orderId": purchase.order_id,
            "retailer": purchase.retailer,
            "receiptNumber": purchase.receipt_number,
            "purchasedAt": format_instant(purchase.purchased_at),
            "currency": purchase.currency,
            "total": purchase.total,
            "items": [item.model_dump(mode="json") for item in purchase.items],
        }
        text = json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Submitted:
    claim: Claim
    new: bool


@dataclass(frozen=True)
class ClaimPage:
    claims: tuple[Claim, ...]
    next_token: str | None


@dataclass(frozen=True)
class Decision:
    """A reviewer's decision as recorded, and what the API answers with."""

    claim_id: str
    decision: str
    reviewer: str
    status: str


@dataclass(frozen=True)
class Approval:
    """The approve step's answer: approved with the reward to credit, or rejected."""

    outcome: str  # approved | rejected
    reward: Money | None
    approved_at: datetime | None
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class LiveCampaign:
    config: CampaignConfig
    version: int
    kind: str
    status: str
    limits: BudgetLimits


# -- collaborators ----------------------------------------------------------------------


class StateMachine:
    """The claims state machine: starts one execution per claim, named by its id, and
    carries reviewers' decisions to the waiting executions."""

    def __init__(self, arn: Callable[[], str], client: Any | None = None) -> None:
        self._arn = arn
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = aws.client("stepfunctions")
            return self._client

    def execution_arn(self, claim_id: str) -> str:
        return self._arn().replace(":stateMachine:", ":execution:") + f":{claim_id}"

    def start(self, claim: Claim) -> bool:
        """Start the claim's execution; False when it was started before (a replay)."""
        payload = {
            "claimId": claim.claim_id,
            "customerId": claim.customer_id,
            "campaignId": claim.campaign_id,
        }
        try:
            self.client.start_execution(
                stateMachineArn=self._arn(), name=claim.claim_id, input=json.dumps(payload)
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
                return False
            raise
        return True

    def send_decision(self, token: str, decision: Mapping[str, str]) -> bool:
        """Hand the decision to the waiting task; False if the wait is over (timed out)."""
        try:
            self.client.send_task_success(taskToken=token, output=json.dumps(dict(decision)))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("TaskTimedOut", "InvalidToken"):
                return False
            raise
        return True

    def heartbeat(self, token: str) -> bool:
        """Tell the waiting task the review is still held; False if the wait is over."""
        try:
            self.client.send_task_heartbeat(taskToken=token)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("TaskTimedOut", "InvalidToken"):
                return False
            raise
        return True


class StateMachineSettings(CoreSettings):
    """Functions that start executions or talk to waiting ones."""

    state_machine_arn: str = Field(alias="CLAIMS_STATE_MACHINE_ARN", min_length=1)


def deployed_state_machine() -> StateMachine:
    """The deployment's claims state machine; its ARN read from the environment on use."""
    return StateMachine(lambda: load_settings(StateMachineSettings).state_machine_arn)


class ClaimCampaigns:
    """Campaigns as the claims see them: the item read fresh (its budget caps and version
    change), the file of each version parsed once per container (it never changes)."""

    def __init__(self) -> None:
        self._files = PublishedFiles()

    def get(self, campaign_id: str) -> LiveCampaign | None:
        item = get_campaign(campaign_id)
        if item is None:
            return None
        return LiveCampaign(
            config=self._files.file(item.campaign_id, item.version),
            version=item.version,
            kind=item.kind,
            status=item.status,
            limits=BudgetLimits(item.budget_amount, item.budget_max_rewards),
        )


# -- the store --------------------------------------------------------------------------


class ClaimStore:
    def __init__(
        self,
        *,
        state_machine: StateMachine | None = None,
        campaigns: ClaimCampaigns | None = None,
    ) -> None:
        self._state_machine = state_machine
        self.campaigns = campaigns or ClaimCampaigns()

    @property
    def state_machine(self) -> StateMachine:
        if self._state_machine is None:
            raise RuntimeError("this store was made without the claims state machine")
        return self._state_machine

    # -- submission ---------------------------------------------------------------------

    def submit(self, draft: ClaimDraft, *, now: datetime) -> Submitted:
        """Store the claim and start its verification.

        Refused before anything is stored: an unknown campaign, one that is not a rebate
        campaign, a purchase in another currency or dated after now, a receipt key that
        was not granted to this customer. Everything else is verification's to judge.
        """
        campaign = self.campaigns.get(draft.campaign_id)
        if campaign is None:
            raise CampaignNotFound(draft.campaign_id)
        if campaign.kind != REBATE:
            raise NotARebateCampaign(draft.campaign_id, campaign.kind)
        if campaign.status != ACTIVE:
            # The marketers withdrew it (deleted its file): claims made before finish,
            # no new one starts.
            raise CampaignArchived(draft.campaign_id)
        if draft.purchase.currency != campaign.config.currency:
            raise CurrencyNotCampaigns(campaign.config.currency, draft.purchase.currency)
        if draft.purchase.purchased_at > now + CLOCK_SKEW:
            raise PurchaseInFuture(format_instant(draft.purchase.purchased_at))
        if draft.receipt_key is not None and customer_of(draft.receipt_key) != draft.customer_id:
            raise ReceiptNotYours(draft.receipt_key)
        claim = _new_claim(draft, now)
        if draft.request_key is None:
            # A new id: the condition only guards against an id collision. One PutItem
            # costs half the write capacity of a one-item transaction.
            claim.save(condition=Claim.pk.does_not_exist())
            self.state_machine.start(claim)
            return Submitted(claim, new=True)
        fingerprint = draft.fingerprint()
        pk, sk = ClaimRequest.key(draft.customer_id, draft.request_key)
        request = ClaimRequest(
            pk, sk, claim_id=claim.claim_id, fingerprint=fingerprint, created_at=now
        )
        transaction = Transaction()
        transaction.put("claim", claim, condition=Claim.pk.does_not_exist())
        transaction.put("request", request, condition=ClaimRequest.pk.does_not_exist())
        try:
            transaction.commit()
        except TransactionCancelled as cancelled:
            if not cancelled.failed("request"):
                raise
            existing = self._requested(draft, fingerprint)
            # Started again in case the first submission died before its start: Step
            # Functions refuses a second execution of one name, so this is harmless.
            self.state_machine.start(existing)
            return Submitted(existing, new=False)
        self.state_machine.start(claim)
        return Submitted(claim, new=True)

    def _requested(self, draft: ClaimDraft, fingerprint: str) -> Claim:
        assert draft.request_key is not None
        request = ClaimRequest.get(
            *ClaimRequest.key(draft.customer_id, draft.request_key), consistent_read=True
        )
        if request.fingerprint != fingerprint:
            raise ClaimRequestConflict(request.claim_id)
        return self.get(request.claim_id)

    # -- reading ------------------------------------------------------------------------

    def get(self, claim_id: str) -> Claim:
        claim = Claim.get_or_none(*Claim.key(claim_id), consistent_read=True)
        if claim is None:
            raise ClaimNotFound(claim_id)
        return claim

    def for_customer(
        self, customer_id: str, *, page_token: str | None, limit: int = 20
    ) -> ClaimPage:
        """A page of the customer's claims, newest first (gsi1, eventually consistent)."""
        start = _decode_page_token(page_token, customer_id) if page_token else None
        query = Claim.gsi1.query(
            Claim.customer_partition(customer_id),
            scan_index_forward=False,
            limit=limit + 1,
            last_evaluated_key=start,
        )
        claims = list(query)
        more = len(claims) > limit
        claims = claims[:limit]
        token = _encode_page_token(customer_id, claims[-1]) if more and claims else None
        return ClaimPage(tuple(claims), token)

    def receipt(self, receipt_key: str) -> Receipt | None:
        return Receipt.get_or_none(*Receipt.key(receipt_key), consistent_read=True)

    # -- step 1 and 2: verify -----------------------------------------------------------

    def verify(
        self,
        claim_id: str,
        *,
        now: datetime,
        velocity_limit: int = logic.DEFAULT_VELOCITY_PER_DAY,
        receipt_wait_over: bool = False,
    ) -> Verdict:
        """Validate the claim, run the duplicate and fraud checks, and route it.

        The verdict is stored on the claim (reward, review reasons, evidence) so the
        reviewer and the customer see why; the move to ``rejected`` or ``in_review`` is
        the next step's.
        """
        claim = self.get(claim_id)
        if claim.status not in _VERIFYING_FROM or claim.verdict is not None:
            return _recorded_verdict(claim)
        if claim.status == "submitted":
            self._move(claim, "verifying", now, from_statuses=("submitted",))
        campaign = self.campaigns.get(claim.campaign_id)
        if campaign is None:  # never published: the submission refuses that; a safe net
            verdict = Verdict(
                Outcome.REJECT, Money.zero(claim.purchase.currency), ("not_eligible",)
            )
            self._record_verdict(claim, verdict, now)
            return verdict
        config = campaign.config
        receipt = self.receipt(claim.receipt_key) if claim.receipt_key else None
        if receipt is not None and receipt.customer_id != claim.customer_id:
            receipt = None
        if receipt is not None and receipt.status == "awaiting_upload" and not receipt_wait_over:
            # The object may have landed a moment ago and not been checked yet.
            raise ReceiptPending(claim.receipt_key or "")
        facts = logic.ClaimFacts(
            purchased_at=claim.purchase.purchased_at,
            submitted_at=claim.submitted_at,
            currency=claim.purchase.currency,
            items=tuple(_line(item) for item in claim.purchase.items),
            receipt_status=receipt.status if receipt is not None else None,
        )
        validation = logic.validate(config, facts)
        if not validation.passed:
            verdict = logic.route(validation)
            self._record_verdict(claim, verdict, now)
            return verdict
        duplicates = self._guards(claim, config, receipt, now)
        # A duplicate takes no place in the customer's count: it would keep the original
        # of the same customer, verified at the same moment, from its own.
        limit = None if duplicates else self._count(claim, config, now)
        if limit is not None:
            duplicates.append(limit)
        review: tuple[str, ...] = ()
        evidence: list[EvidenceFound] = []
        if not duplicates:
            recent = self._claims_since(claim.customer_id, now - logic.VELOCITY_PERIOD)
            others = self._other_customers_on_file(claim, receipt, now)
            review = logic.review_reasons(
                validation.reward,
                config,
                claims_in_period=len(recent),
                velocity_limit=velocity_limit,
                other_customers_on_file=[customer for customer, _ in others],
            )
            if logic.ReviewReason.VELOCITY in review:
                evidence.append(
                    EvidenceFound(
                        "velocity",
                        logic.ReviewReason.VELOCITY,
                        tuple(c for c in recent if c != claim.claim_id),
                        f"{len(recent)} claims by this customer in 24 hours "
                        f"(more than {velocity_limit})",
                    )
                )
            if others:
                evidence.append(
                    EvidenceFound(
                        "receipt_file_shared",
                        logic.ReviewReason.SHARED_RECEIPT_FILE,
                        tuple(other for _, other in others),
                        "the same receipt file was sent by another customer",
                    )
                )
        verdict = logic.route(validation, duplicates=duplicates, review=review, evidence=evidence)
        self._record_verdict(claim, verdict, now, receipt)
        return verdict

    def _guards(
        self, claim: Claim, config: CampaignConfig, receipt: Receipt | None, now: datetime
    ) -> list[EvidenceFound]:
        found: list[EvidenceFound] = []
        by_number = DuplicateGuard.for_receipt(
            campaign_id=claim.campaign_id,
            retailer=logic.normalise_receipt_part(claim.purchase.retailer),
            receipt_number=logic.normalise_receipt_part(claim.purchase.receipt_number),
            purchase_date=logic.purchase_day(claim.purchase.purchased_at, config),
            claim_id=claim.claim_id,
            at=now,
        )
        holder = acquire_guard(by_number)
        if holder != claim.claim_id:
            found.append(
                EvidenceFound(
                    "same_receipt_number",
                    Reason.DUPLICATE_RECEIPT,
                    (holder,),
                    "the same retailer, receipt number and purchase date were claimed before",
                )
            )
        if receipt is not None and receipt.sha256:
            by_file = DuplicateGuard.for_image(
                campaign_id=claim.campaign_id,
                sha256=receipt.sha256,
                claim_id=claim.claim_id,
                at=now,
            )
            # A duplicate already found takes no further guard, only reads it: two copies
            # of one claim racing would otherwise each win one guard and both be rejected.
            file_holder = _holder(by_file) if found else acquire_guard(by_file)
            if file_holder is not None and file_holder != claim.claim_id:
                found.append(
                    EvidenceFound(
                        "same_receipt_file",
                        Reason.DUPLICATE_RECEIPT,
                        (file_holder,),
                        "the same receipt file (SHA-256) was claimed before in this campaign",
                    )
                )
        return found

    def _count(self, claim: Claim, config: CampaignConfig, now: datetime) -> EvidenceFound | None:
        """Count the claim towards the customer's limit; the evidence when it is full."""
        limit = config.limits.per_customer if config.limits is not None else None
        actions, condition = CustomerClaimCount.count_claim(
            claim.claim_id,
            limit,
            now,
            customer_id=claim.customer_id,
            campaign_id=claim.campaign_id,
        )
        try:
            CustomerClaimCount.ref(claim.customer_id, claim.campaign_id).update(
                actions, condition=condition
            )
        except UpdateError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise
            counted = CustomerClaimCount.get_or_none(
                *CustomerClaimCount.key(claim.customer_id, claim.campaign_id),
                consistent_read=True,
            )
            holders = tuple(sorted(counted.claim_ids or ())) if counted is not None else ()
            return EvidenceFound(
                "per_customer_limit",
                Reason.LIMIT_REACHED,
                holders,
                f"the customer has {len(holders)} of {limit} rewards of this campaign",
            )
        return None

    def _claims_since(self, customer_id: str, since: datetime) -> list[str]:
        return [c.claim_id for c in Claim.for_customer(customer_id, since=since)]

    def _other_customers_on_file(
        self, claim: Claim, receipt: Receipt | None, now: datetime
    ) -> list[tuple[str, str]]:
        if receipt is None or not receipt.sha256:
            return []
        ReceiptFileUse(
            sha256=receipt.sha256,
            customer_id=claim.customer_id,
            claim_id=claim.claim_id,
            used_at=now,
        ).save()
        uses = ReceiptFileUse.query(ReceiptFileUse.partition(receipt.sha256))
        return [
            (use.customer_id, use.claim_id) for use in uses if use.customer_id != claim.customer_id
        ]

    def _record_verdict(
        self, claim: Claim, verdict: Verdict, now: datetime, receipt: Receipt | None = None
    ) -> None:
        # The receipt's hash as judged: a receipt key can be uploaded to again while its
        # grant lasts, and the guards this claim holds are the ones of this hash.
        receipt_hash = (
            [Claim.receipt_hash.set(receipt.sha256)] if receipt and receipt.sha256 else []
        )
        claim.update(
            [
                *receipt_hash,
                Claim.reward.set(verdict.reward if verdict.outcome != Outcome.REJECT else None),
                Claim.review_reasons.set(list(verdict.review_reasons)),
                Claim.evidence.set([_evidence(e) for e in verdict.evidence]),
                Claim.verdict.set(verdict.outcome.value),
                Claim.verdict_reasons.set(list(verdict.reasons)),
                Claim.updated_at.set(now),
            ],
            condition=Claim.status.is_in(*_VERIFYING_FROM),
        )

    # -- step 3 and 4: review -----------------------------------------------------------

    def hold_for_review(
        self, claim_id: str, *, token: str, due_at: datetime, now: datetime
    ) -> Claim:
        """The review wait has begun: keep its task token; the claim is ``in_review``."""
        claim = self.get(claim_id)
        if claim.status == "in_review":
            claim.update(
                [Claim.task_token.set(token), Claim.review_due_at.set(due_at)],
                condition=Claim.status == "in_review",
            )
            return claim
        actions, condition = Claim.transition(
            "in_review", now, from_statuses=("verifying",), note=", ".join(claim.review_reasons)
        )
        actions += [Claim.task_token.set(token), Claim.review_due_at.set(due_at)]
        claim.update(actions, condition=condition)
        return claim

    def decide(
        self, claim_id: str, *, decision: str, reason: str, reviewer: str, now: datetime
    ) -> Decision:
        """Record a reviewer's decision, once, and send it to the waiting execution."""
        claim = self.get(claim_id)
        if claim.decision is not None:
            if (
                claim.status == "in_review"
                and claim.decision == decision
                and claim.reviewer == reviewer
                and claim.task_token
            ):
                # The same decision again: its first delivery failed, or it went through
                # and the execution has not moved the claim on yet. Deliver it (again).
                self._deliver(claim, decision, reason, reviewer, now=now, again=True)
                return Decision(claim_id, decision, reviewer, claim.status)
            raise AlreadyDecided(claim_id, claim.decision, claim.reviewer)
        if claim.status != "in_review" or not claim.task_token:
            raise _not_open(claim)
        try:
            claim.update(
                [
                    Claim.decision.set(decision),
                    Claim.decision_reason.set(reason),
                    Claim.reviewer.set(reviewer),
                    Claim.decided_at.set(now),
                ],
                condition=(Claim.status == "in_review") & Claim.decision.does_not_exist(),
            )
        except UpdateError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise
            raise _not_open(self.get(claim_id)) from None
        self._deliver(claim, decision, reason, reviewer, now=now, again=False)
        return Decision(claim_id, decision, reviewer, "in_review")

    def _deliver(
        self,
        claim: Claim,
        decision: str,
        reason: str,
        reviewer: str,
        *,
        now: datetime,
        again: bool,
    ) -> None:
        assert claim.task_token is not None
        delivered = self.state_machine.send_decision(
            claim.task_token, {"decision": decision, "reason": reason, "reviewer": reviewer}
        )
        if not delivered and again and claim.review_due_at and now < claim.review_due_at:
            # The token was spent before its deadline: by this decision's first delivery.
            return
        if not delivered:
            # The wait ended first: the timeout path rejects the claim; undo the decision
            # so the record says what happened, not what came too late.
            claim.update(
                [
                    Claim.decision.remove(),
                    Claim.decision_reason.remove(),
                    Claim.reviewer.remove(),
                    Claim.decided_at.remove(),
                ],
                condition=Claim.decision == decision,
            )
            raise ReviewClosed(claim.claim_id)

    def review_queue(self, *, limit: int | None = None) -> list[Claim]:
        return list(Claim.with_status("in_review", limit=limit))

    # -- step 5: approve, credit, mark credited -------------------------------------------

    def approve(
        self, claim_id: str, *, reviewer: str | None, reason: str | None, now: datetime
    ) -> Approval:
        """Reserve the reward in the campaign's budget and approve the claim, together.

        An exhausted budget rejects the claim (``budget_exhausted``) and gives back what
        it held. Replayed on an approved or credited claim, it answers the approval that
        was made.
        """
        for _ in range(_MAX_ATTEMPTS):
            claim = self.get(claim_id)
            if claim.status in ("approved", "credited"):
                return Approval("approved", claim.reward, _approved_at(claim))
            if claim.status == "rejected":
                return Approval("rejected", None, None, tuple(claim.reasons))
            if claim.status not in ("verifying", "in_review") or claim.reward is None:
                raise NotInReview(claim_id, claim.status)
            campaign = self.campaigns.get(claim.campaign_id)
            if campaign is None:
                raise CampaignNotFound(claim.campaign_id)
            note = f"approved by {reviewer}" if reviewer else "approved automatically"
            if reason:
                note += f": {reason}"
            actions, condition = Claim.transition(
                "approved", now, from_statuses=("verifying", "in_review"), note=note
            )
            actions += [Claim.task_token.remove()]
            if reviewer:
                actions.append(Claim.reviewer.set(reviewer))
            transaction = Transaction()
            budget.reserve(
                transaction,
                claim.campaign_id,
                claim.reward.amount,
                1,
                limits=campaign.limits,
            )
            transaction.update("claim", Claim.ref(claim_id), actions, condition)
            try:
                transaction.commit()
            except TransactionCancelled as cancelled:
                if cancelled.failed("claim") or cancelled.conflicted:
                    continue  # moved meanwhile, or contended: read again
                if cancelled.failed(budget.LABEL):
                    fresh = get_campaign(claim.campaign_id)
                    if fresh is not None and not budget.would_exceed(fresh, claim.reward.amount):
                        continue  # the caps changed under us (a republish): decide again
                    self.reject(
                        claim_id, reasons=(Reason.BUDGET_EXHAUSTED,), reviewer=None, now=now
                    )
                    return Approval("rejected", None, None, (Reason.BUDGET_EXHAUSTED,))
                raise
            return Approval("approved", claim.reward, now)
        raise TransientError(f"claim {claim_id}: approval kept meeting concurrent changes")

    def mark_credited(self, claim_id: str, *, lot_id: str, now: datetime) -> Claim:
        claim = self.get(claim_id)
        if claim.status == "credited":
            return claim
        actions, condition = Claim.transition(
            "credited", now, from_statuses=("approved",), note=f"lot {lot_id}"
        )
        actions.append(Claim.lot_id.set(lot_id))
        claim.update(actions, condition=condition)
        return claim

    # -- the ends: rejected, error --------------------------------------------------------

    def reject(
        self,
        claim_id: str,
        *,
        reasons: Sequence[str],
        reviewer: str | None,
        now: datetime,
        note: str | None = None,
    ) -> Claim:
        """Reject the claim with `reasons`, giving back its guards and its count."""
        if not reasons:
            raise ValueError("a rejection has reasons")
        claim = self.get(claim_id)
        if claim.status == "rejected":
            return claim
        # Not from approved: the budget is reserved by then, and only crediting follows.
        actions, condition = Claim.transition(
            "rejected",
            now,
            from_statuses=_OPEN,
            note=note or ", ".join(reasons),
        )
        stored = [str(reason) for reason in dict.fromkeys(reasons)]
        # A rejected claim pays nothing: what it would have been paid goes with it.
        actions += [Claim.reasons.set(stored), Claim.task_token.remove(), Claim.reward.remove()]
        if reviewer:
            actions.append(Claim.reviewer.set(reviewer))
        transaction = Transaction()
        transaction.update("claim", Claim.ref(claim_id), actions, condition)
        for label, guard in self._held_guards(claim):
            transaction.delete(label, guard, condition=DuplicateGuard.claim_id == claim_id)
        transaction.update(
            "count",
            CustomerClaimCount.ref(claim.customer_id, claim.campaign_id),
            CustomerClaimCount.release_claim(claim_id, now),
            CustomerClaimCount.pk.exists(),
        )
        try:
            transaction.commit()
        except TransactionCancelled as cancelled:
            if cancelled.failed("claim"):
                return self._settled(claim_id, "rejected")
            guards_elsewhere = [label for label in cancelled.reasons if label.startswith("guard")]
            if cancelled.failed("count") or guards_elsewhere:
                # Nothing of the claim's to give back there: reject without it.
                claim.update(actions, condition=condition)
                return self.get(claim_id)
            raise
        return self.get(claim_id)

    def _held_guards(self, claim: Claim) -> Iterable[tuple[str, DuplicateGuard]]:
        """The guards this claim may hold, as key-only items (held: their claimId is it)."""
        campaign = self.campaigns.get(claim.campaign_id)
        if campaign is None:
            return []
        guards = [
            (
                "guard-receipt",
                DuplicateGuard.for_receipt(
                    campaign_id=claim.campaign_id,
                    retailer=logic.normalise_receipt_part(claim.purchase.retailer),
                    receipt_number=logic.normalise_receipt_part(claim.purchase.receipt_number),
                    purchase_date=logic.purchase_day(claim.purchase.purchased_at, campaign.config),
                    claim_id=claim.claim_id,
                    at=claim.updated_at,
                ),
            )
        ]
        if claim.receipt_hash:
            guards.append(
                (
                    "guard-file",
                    DuplicateGuard.for_image(
                        campaign_id=claim.campaign_id,
                        sha256=claim.receipt_hash,
                        claim_id=claim.claim_id,
                        at=claim.updated_at,
                    ),
                )
            )
        return [(label, guard) for label, guard in guards if self._holds(guard, claim)]

    @staticmethod
    def _holds(guard: DuplicateGuard, claim: Claim) -> bool:
        stored = DuplicateGuard.get_or_none(guard.pk, guard.sk, consistent_read=True)
        return stored is not None and stored.claim_id == claim.claim_id

    def fail(self, claim_id: str, *, error: str, cause: str, now: datetime) -> Claim:
        """End the claim in ``error`` with the cause kept, from any status but the ends."""
        claim = self.get(claim_id)
        if claim.status in logic.TERMINAL:
            return claim
        cause_text = f"{error}: {cause}"[:4000]
        actions, condition = Claim.transition(
            "error",
            now,
            from_statuses=(*_OPEN, "approved"),
            note=error,
        )
        actions += [Claim.error_cause.set(cause_text), Claim.task_token.remove()]
        try:
            claim.update(actions, condition=condition)
        except UpdateError as update_error:
            if update_error.cause_response_code != "ConditionalCheckFailedException":
                raise
            return self.get(claim_id)
        return self.get(claim_id)

    def _move(
        self, claim: Claim, to: str, now: datetime, *, from_statuses: tuple[str, ...]
    ) -> None:
        actions, condition = Claim.transition(to, now, from_statuses=from_statuses)
        try:
            claim.update(actions, condition=condition)
        except UpdateError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise
            claim.refresh(consistent_read=True)

    def _settled(self, claim_id: str, status: str) -> Claim:
        claim = self.get(claim_id)
        if claim.status != status:
            raise NotInReview(claim_id, claim.status)
        return claim


class ReceiptPending(TransientError):
    """The claim's receipt was granted but its upload is not checked yet: retried a few
    times by the state machine, then judged without it (``receipt_missing``)."""

    def __init__(self, receipt_key: str) -> None:
        super().__init__(f"receipt {receipt_key} is not uploaded (or not checked) yet")


# -- helpers ------------------------------------------------------------------------------


def _new_claim(draft: ClaimDraft, now: datetime) -> Claim:
    purchase = draft.purchase
    claim = Claim(
        claim_id=new_id("clm"),
        campaign_id=draft.campaign_id,
        customer_id=draft.customer_id,
        status="submitted",
        purchase=PurchaseMap(
            order_id=purchase.order_id,
            retailer=purchase.retailer,
            receipt_number=purchase.receipt_number,
            purchased_at=purchase.purchased_at,
            currency=purchase.currency,
            total=purchase.total,
            items=[
                PurchaseItem(
                    sku=item.sku,
                    category=item.category,
                    quantity=item.quantity,
                    unit_price=item.unitPrice,
                )
                for item in purchase.items
            ],
        ),
        receipt_key=draft.receipt_key,
        submitted_at=now,
        updated_at=now,
    )
    claim.timeline = [TimelineEntry(at=now, status="submitted")]
    return claim


def _holder(guard: DuplicateGuard) -> str | None:
    stored = DuplicateGuard.get_or_none(guard.pk, guard.sk, consistent_read=True)
    return stored.claim_id if stored is not None else None


def _line(item: PurchaseItem) -> LineItem:
    return LineItem(
        sku=item.sku, category=item.category, quantity=item.quantity, unitPrice=item.unit_price
    )


def _evidence(found: EvidenceFound) -> Evidence:
    return Evidence(
        rule=found.rule, reason=str(found.reason), claim_ids=list(found.claim_ids), note=found.note
    )


def _recorded_verdict(claim: Claim) -> Verdict:
    """The verdict a claim past verification was given, for a replayed verify step."""
    reward = claim.reward or Money.zero(claim.purchase.currency)
    evidence = tuple(
        EvidenceFound(e.rule, e.reason, tuple(e.claim_ids or ()), e.note or "")
        for e in claim.evidence
    )
    if claim.verdict is not None:
        outcome = Outcome(claim.verdict)
        reasons = tuple(claim.verdict_reasons) if outcome == Outcome.REJECT else ()
        return Verdict(outcome, reward, reasons, tuple(claim.review_reasons), evidence)
    # A claim that ended before verification recorded its verdict (an error).
    if claim.status == "rejected":
        return Verdict(Outcome.REJECT, reward, tuple(claim.reasons), (), evidence)
    if claim.status == "in_review" or claim.review_reasons:
        return Verdict(Outcome.REVIEW, reward, (), tuple(claim.review_reasons), evidence)
    return Verdict(Outcome.APPROVE, reward, (), (), evidence)


def _approved_at(claim: Claim) -> datetime:
    for entry in claim.timeline:
        if entry.status == "approved":
            return entry.at
    return claim.updated_at


def _not_open(claim: Claim) -> Exception:
    if claim.status == "rejected" and Reason.REVIEW_TIMEOUT in claim.reasons:
        return ReviewClosed(claim.claim_id)
    if claim.decision is not None or (
        claim.reviewer is not None and claim.status in ("approved", "credited", "rejected")
    ):
        return AlreadyDecided(claim.claim_id, claim.decision, claim.reviewer)
    return NotInReview(claim.claim_id, claim.status)


def _encode_page_token(customer_id: str, last: Claim) -> str:
    document = {"c": customer_id, "k": last.gsi1sk, "id": last.claim_id}
    text = json.dumps(document, ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_page_token(token: str, customer_id: str) -> dict[str, dict[str, str]]:
    try:
        padded = token + "=" * (-len(token) % 4)
        document = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")).decode())
    except (ValueError, binascii.Error, UnicodeError):
        raise InvalidPageToken() from None
    if (
        not isinstance(document, dict)
        or document.get("c") != customer_id
        or not isinstance(document.get("k"), str)
        or not isinstance(document.get("id"), str)
    ):
        raise InvalidPageToken()
    pk, sk = Claim.key(document["id"])
    return {
        "pk": {"S": pk},
        "sk": {"S": sk},
        "gsi1pk": {"S": Claim.customer_partition(customer_id)},
        "gsi1sk": {"S": document["k"]},
    }
