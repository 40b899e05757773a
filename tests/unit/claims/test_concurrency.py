"""The claims' rules under concurrency: threads racing on in-process moto.

moto is given one request at a time (as the local cloud's gate does), so every race a
read-then-write could lose is run at the granularity of DynamoDB calls, and only the
conditional writes (the duplicate guards, the budget's transaction, the decision's
condition) can keep the outcome right.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from typing import Any

import pytest

from functions.claims.dal import ClaimStore
from functions.claims.errors import ClaimError
from functions.claims.handlers import api
from functions.claims.logic import Outcome
from functions.claims.models import CustomerClaimCount, DuplicateGuard
from functions.core.clock import frozen_at
from tests.support.api_calls import api_call
from tests.unit.claims.conftest import (
    CAMPAIGN,
    PNG,
    SUBMITTED,
    RecordingStateMachine,
    aws_env,
    budget_used,
    draft,
    publish,
    rebate,
    serialised_moto,
    uploaded,
)

__all__ = ["aws_env", "serialised_moto"]

pytestmark = pytest.mark.usefixtures("serialised_moto")

VERIFIED = SUBMITTED + timedelta(minutes=1)
APPROVED = VERIFIED + timedelta(minutes=1)


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run every call at once (a thread each); domain refusals are returned, not raised."""

    def attempt(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except ClaimError as refused:
            return refused

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(attempt, calls))


def test_two_identical_claims_verified_at_once_pass_once(store: ClaimStore) -> None:
    # The same receipt, photographed twice, by two customers at the same instant.
    claims = [
        store.submit(
            draft(customer, receipt=uploaded(customer, content=PNG + customer.encode())),
            now=SUBMITTED,
        ).claim
        for customer in ("cust-1", "cust-2")
    ]
    verdicts = race([partial(store.verify, c.claim_id, now=VERIFIED) for c in claims])

    assert Counter(v.outcome for v in verdicts) == {Outcome.APPROVE: 1, Outcome.REJECT: 1}
    winner, loser = sorted(zip(verdicts, claims, strict=True), key=lambda p: p[0].outcome)
    assert winner[0].outcome is Outcome.APPROVE
    assert loser[0].reasons == ("duplicate_receipt",)
    assert [e.claim_ids for e in loser[0].evidence] == [(winner[1].claim_id,)]
    by_number = [g for g in DuplicateGuard.scan() if "#RECEIPT#" in g.pk]
    assert [g.claim_id for g in by_number] == [winner[1].claim_id]


def test_one_claim_sent_twice_and_verified_at_once_passes_once(store: ClaimStore) -> None:
    # The storefront sent the same claim twice without a key: the same number and photo.
    publish(rebate(limits={"per_customer": 1}))
    key = uploaded()
    claims = [store.submit(draft(receipt=key), now=SUBMITTED).claim for _ in range(2)]
    verdicts = race([partial(store.verify, c.claim_id, now=VERIFIED) for c in claims])

    assert sorted(v.outcome for v in verdicts) == [Outcome.APPROVE, Outcome.REJECT]
    assert [v.reasons for v in verdicts if v.outcome is Outcome.REJECT] == [("duplicate_receipt",)]
    (passed,) = [c for c, v in zip(claims, verdicts, strict=True) if v.outcome is Outcome.APPROVE]
    guards = [g for g in DuplicateGuard.scan() if g.pk.startswith("DUP#")]
    assert [g.claim_id for g in guards] == [passed.claim_id] * 2
    count = CustomerClaimCount.get(*CustomerClaimCount.key("cust-1", CAMPAIGN))
    assert count.claim_ids == {passed.claim_id}


def test_the_same_receipt_file_verified_at_once_passes_once(store: ClaimStore) -> None:
    # One photo, two receipt numbers typed for it.
    claims = [
        store.submit(
            draft(customer, receipt_number=f"R-{n}", receipt=uploaded(customer)), now=SUBMITTED
        ).claim
        for n, customer in enumerate(("cust-1", "cust-2"))
    ]
    verdicts = race([partial(store.verify, c.claim_id, now=VERIFIED) for c in claims])
    assert sorted(v.outcome for v in verdicts) == [Outcome.APPROVE, Outcome.REJECT]
    assert [v.reasons for v in verdicts if v.outcome is Outcome.REJECT] == [("duplicate_receipt",)]


def test_one_customers_claims_racing_for_the_per_customer_limit(store: ClaimStore) -> None:
    publish(rebate(limits={"per_customer": 2}))
    claims = [
        store.submit(
            draft(receipt_number=f"R-{n}", receipt=uploaded(content=PNG + bytes([n]))),
            now=SUBMITTED,
        ).claim
        for n in range(5)
    ]
    verdicts = race(
        [partial(store.verify, c.claim_id, now=VERIFIED, velocity_limit=10) for c in claims]
    )
    assert Counter(v.outcome for v in verdicts) == {Outcome.APPROVE: 2, Outcome.REJECT: 3}
    assert {v.reasons for v in verdicts if v.outcome is Outcome.REJECT} == {("limit_reached",)}
    count = CustomerClaimCount.get(*CustomerClaimCount.key("cust-1", CAMPAIGN))
    assert count.claims_counted == 2


def test_twenty_approvals_against_a_budget_covering_five(store: ClaimStore) -> None:
    # Without receipts: fewer calls to make twenty claims ready, the same approvals.
    claims_section = {"window_days": 30, "auto_approve_up_to": 1000, "require_receipt": False}
    publish(rebate(budget={"amount": 5000}, claims=claims_section))
    claims = []
    for n in range(20):
        claim = store.submit(draft(f"cust-{n}", receipt_number=f"R-{n}"), now=SUBMITTED).claim
        assert store.verify(claim.claim_id, now=VERIFIED).outcome is Outcome.APPROVE
        claims.append(claim)

    approvals = race(
        [
            partial(store.approve, c.claim_id, reviewer=None, reason=None, now=APPROVED)
            for c in claims
        ]
    )
    assert Counter(a.outcome for a in approvals) == {"approved": 5, "rejected": 15}
    assert {a.reasons for a in approvals if a.outcome == "rejected"} == {("budget_exhausted",)}
    assert budget_used() == (5000, 5)
    statuses = Counter(store.get(c.claim_id).status for c in claims)
    assert statuses == {"approved": 5, "rejected": 15}


def test_two_reviewers_deciding_at_once_one_decides(
    store: ClaimStore, machine: RecordingStateMachine, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(rebate(claims={"window_days": 30, "auto_approve_up_to": 500}))
    claim = store.submit(draft(receipt=uploaded()), now=SUBMITTED).claim
    store.verify(claim.claim_id, now=VERIFIED)
    store.hold_for_review(
        claim.claim_id, token="token-1", due_at=VERIFIED + timedelta(hours=72), now=VERIFIED
    )
    monkeypatch.setattr(api, "store", store)

    def decide(decision: str, reviewer: str) -> tuple[int, Any]:
        body = {"decision": decision, "reason": "checked", "reviewer": reviewer}
        status, answer, _ = api_call(api.app, "POST", f"/v1/claims/{claim.claim_id}/review", body)
        return status, answer

    with frozen_at(APPROVED):
        answers = race([partial(decide, "approve", "op-1"), partial(decide, "reject", "op-2")])

    assert sorted(status for status, _ in answers) == [200, 409]
    (decided,) = [answer for status, answer in answers if status == 200]
    (refused,) = [answer for status, answer in answers if status == 409]
    assert refused["error"]["code"] == "already_decided"
    assert refused["error"]["details"]["reviewer"] == decided["reviewer"]
    assert len(machine.decisions) == 1
    assert machine.decisions[0][1]["reviewer"] == decided["reviewer"]
    stored = store.get(claim.claim_id)
    assert (stored.decision, stored.reviewer) == (decided["decision"], decided["reviewer"])
