"""The review keeper, run by a schedule: keeps the review queue alive and visible.

- Every claim waiting for review gets a Step Functions heartbeat (`SendTaskHeartbeat` with
  the token its wait stored). The review state's ``HeartbeatSeconds`` is several times the
  schedule's rate, so a wait whose token was lost (its hold step's write failed, or the
  claim was changed by hand) fails with ``States.HeartbeatTimeout`` within hours, and the
  claim ends in ``error``, instead of sitting unseen until its review times out.
- A claim still ``submitted`` a while after its submission has no running execution (the
  submission died between storing it and starting it): its execution is started, which
  Step Functions refuses harmlessly if it was started after all.
- The queue's depth and the age of its oldest claim are metrics (`ReviewQueueDepth`,
  `ReviewQueueOldestAge`), which the operators' alarm watches.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.claims.dal import ClaimStore, deployed_state_machine
from functions.claims.models import Claim
from functions.core.clock import utc_now
from functions.core.observability import instrumented, logger, record_review_queue

__all__ = ["STALE_SUBMISSION", "KeeperRoundFailed", "handler", "keep"]

# Submission starts the execution right after storing the claim; a claim this old and
# still `submitted` had its start lost.
STALE_SUBMISSION: Final = timedelta(minutes=5)


store = ClaimStore(state_machine=deployed_state_machine())


class KeeperRoundFailed(RuntimeError):
    """Some claims of the round could not be heartbeaten or started; the others were.

    Raised after the round, so one claim's failure (throttling outlasting the client's
    retries) neither stops the rest nor passes unseen: the invocation fails, is retried,
    and pages.
    """


def keep(claims: ClaimStore) -> dict[str, int]:
    """One round: heartbeats, restarts and the queue's metrics; the counts as JSON."""
    now = utc_now()
    waiting = claims.review_queue()
    beats = lost = 0
    failed: list[str] = []
    for claim in waiting:
        if not claim.task_token:
            continue
        try:
            alive = claims.state_machine.heartbeat(claim.task_token)
        except Exception:
            logger.exception("review heartbeat failed", extra=_ids(claim))
            failed.append(claim.claim_id)
            continue
        if alive:
            beats += 1
        else:
            lost += 1
            logger.warning("review wait is over for a claim in review", extra=_ids(claim))
    oldest = min((claim.submitted_at for claim in waiting), default=None)
    record_review_queue(len(waiting), (now - oldest).total_seconds() if oldest else 0.0)
    restarted = 0
    for claim in Claim.with_status("submitted"):
        if now - claim.submitted_at < STALE_SUBMISSION:
            break  # oldest first: the rest are younger
        try:
            started = claims.state_machine.start(claim)
        except Exception:
            logger.exception("late start of a claim's verification failed", extra=_ids(claim))
            failed.append(claim.claim_id)
            continue
        if started:
            restarted += 1
            logger.warning("claim's verification started late", extra=_ids(claim))
    if failed:
        raise KeeperRoundFailed(
            f"{len(failed)} claims not kept this round: {', '.join(failed[:20])}"
        )
    return {"inReview": len(waiting), "heartbeats": beats, "lost": lost, "restarted": restarted}


def _ids(claim: Claim) -> dict[str, str]:
    return {"claimId": claim.claim_id, "campaignId": claim.campaign_id}


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    return keep(store)
