"""The review keeper: one round heartbeats every claim waiting with a token, counts the
waits that are over, and starts the executions of submissions whose start was lost."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from functions.claims.dal import ClaimStore
from functions.claims.handlers.review_keeper import STALE_SUBMISSION, KeeperRoundFailed, keep
from functions.claims.models import Claim
from functions.core.clock import FixedClock, frozen_at
from tests.unit.claims.conftest import (
    SUBMITTED,
    RecordingStateMachine,
    aws_env,
    draft,
    publish,
    rebate,
    uploaded,
)
from tests.unit.core.log_capture import metric_values

__all__ = ["aws_env"]

NOW = SUBMITTED + timedelta(hours=6)


@pytest.fixture
def clock(store: ClaimStore) -> Iterator[FixedClock]:
    publish(rebate(claims={"window_days": 30, "auto_approve_up_to": 500}))
    with frozen_at(NOW) as fixed:
        yield fixed


def waiting(store: ClaimStore, n: int, *, token: str | None, at: datetime = SUBMITTED) -> str:
    """A claim in review since `at`, its wait's token kept (or lost: None)."""
    customer = f"cust-{n}"
    claim_id = store.submit(
        draft(customer, receipt_number=f"R-{n}", receipt=uploaded(customer, content=bytes([n]))),
        now=at,
    ).claim.claim_id
    store.verify(claim_id, now=at)
    store.hold_for_review(claim_id, token=token or "lost", due_at=at + timedelta(hours=72), now=at)
    if token is None:
        Claim.ref(claim_id).update([Claim.task_token.remove()])
    return claim_id


def submitted(store: ClaimStore, machine: RecordingStateMachine, at: datetime) -> str:
    """A claim stored at `at` whose execution never started."""
    claim_id = store.submit(draft(f"late-{at.isoformat()}"), now=at).claim.claim_id
    machine.executions.discard(claim_id)
    machine.started.clear()
    return claim_id


def test_every_waiting_claim_with_a_token_is_heartbeaten(
    store: ClaimStore, machine: RecordingStateMachine, clock: FixedClock
) -> None:
    waiting(store, 1, token="token-1")
    waiting(store, 2, token="token-2", at=SUBMITTED + timedelta(hours=1))
    waiting(store, 3, token=None)
    machine.started.clear()

    counts = keep(store)

    assert counts == {"inReview": 3, "heartbeats": 2, "lost": 0, "restarted": 0}
    assert sorted(machine.heartbeats) == ["token-1", "token-2"]
    assert machine.started == []


def test_a_heartbeat_that_fails_does_not_stop_the_round_and_fails_it_after(
    store: ClaimStore,
    machine: RecordingStateMachine,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = waiting(store, 1, token="token-1")
    waiting(store, 2, token="token-2", at=SUBMITTED + timedelta(hours=1))
    beat = machine.heartbeat

    def throttled(token: str) -> bool:
        if token == "token-1":
            raise ClientError({"Error": {"Code": "ThrottlingException"}}, "SendTaskHeartbeat")
        return beat(token)

    monkeypatch.setattr(machine, "heartbeat", throttled)
    with pytest.raises(KeeperRoundFailed, match=first):
        keep(store)
    assert machine.heartbeats == ["token-2"]  # the rest of the round still ran


def test_a_wait_that_is_over_is_counted_lost(
    store: ClaimStore, machine: RecordingStateMachine, clock: FixedClock
) -> None:
    waiting(store, 1, token="token-1")
    waiting(store, 2, token="token-2")
    machine.closed.add("token-2")

    assert keep(store) == {"inReview": 2, "heartbeats": 1, "lost": 1, "restarted": 0}
    assert sorted(machine.heartbeats) == ["token-1", "token-2"]


def test_the_queue_depth_and_its_oldest_age_are_measured(
    store: ClaimStore, clock: FixedClock, capsys: pytest.CaptureFixture[str]
) -> None:
    waiting(store, 1, token="token-1")
    waiting(store, 2, token="token-2", at=SUBMITTED + timedelta(hours=2))
    capsys.readouterr()

    keep(store)

    output = capsys.readouterr().out
    assert metric_values(output, "ReviewQueueDepth") == [2]
    assert metric_values(output, "ReviewQueueOldestAge") == [6 * 3600]


def test_an_empty_queue_is_measured_as_empty(
    store: ClaimStore, clock: FixedClock, capsys: pytest.CaptureFixture[str]
) -> None:
    assert keep(store) == {"inReview": 0, "heartbeats": 0, "lost": 0, "restarted": 0}
    output = capsys.readouterr().out
    assert metric_values(output, "ReviewQueueDepth") == [0]
    assert metric_values(output, "ReviewQueueOldestAge") == [0]


def test_a_stale_submission_is_started_and_a_fresh_one_left(
    store: ClaimStore, machine: RecordingStateMachine, clock: FixedClock
) -> None:
    stale = submitted(store, machine, NOW - STALE_SUBMISSION)
    older = submitted(store, machine, NOW - timedelta(hours=1))
    fresh = submitted(store, machine, NOW - STALE_SUBMISSION + timedelta(seconds=1))

    assert keep(store)["restarted"] == 2
    assert machine.started == [older, stale]
    assert fresh not in machine.executions

    # The next round finds the executions started: Step Functions refuses them again.
    assert keep(store)["restarted"] == 0
    assert machine.started == [older, stale, older, stale]


def test_a_claim_that_moved_on_is_not_started_again(
    store: ClaimStore, machine: RecordingStateMachine, clock: FixedClock
) -> None:
    claim_id = submitted(store, machine, NOW - timedelta(hours=1))
    store.verify(claim_id, now=NOW - timedelta(minutes=50))
    assert keep(store)["restarted"] == 0
    assert machine.started == []
