"""The credit function: the claims state machine's "credit cashback" task.

Invoked synchronously by Step Functions with an approved claim's reward,
``{customerId, campaignId, claimId, amount: {amount, currency}, approvedAt}``, it credits
one lot through `WalletStore.credit` and answers with the lot as JSON (`ClaimCredited`).
The credit is idempotent by claim id, so the task's retries (a timeout, a lost answer)
credit once and answer the same lot with ``new: false``.

A payload that does not parse raises `InvalidCreditRequest`, naming every problem: the
state machine sent something it should not have, which no retry mends, so its Catch
matches the error type and ends the claim in ``error`` with the cause kept.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from functions.core.clock import utc_now
from functions.core.observability import instrumented, logger, record_cashback_credited
from functions.core.validation import MAX_REPORTED_ERRORS, describe_errors, explained_errors
from functions.wallet.dal import CreditRequest, WalletStore
from functions.wallet.schemas import ClaimCredit, ClaimCredited

__all__ = ["InvalidCreditRequest", "credit", "handler"]

store = WalletStore()


class InvalidCreditRequest(ValueError):
    """The task's input is not a claim credit; the message lists each problem by path."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        self.problems = problems
        listed = "; ".join(f"{problem['path']}: {problem['message']}" for problem in problems)
        super().__init__(f"not a claim credit: {listed}")


def parse(event: Any) -> ClaimCredit:
    try:
        return ClaimCredit.model_validate(event)
    except ValidationError as error:
        raise InvalidCreditRequest(
            describe_errors(explained_errors(error.errors()), limit=MAX_REPORTED_ERRORS)
        ) from None


def credit(event: Any, wallet: WalletStore) -> dict[str, Any]:
    """Credit the claim `event` describes in `wallet`; the lot as JSON."""
    request = parse(event)
    outcome = wallet.credit(
        CreditRequest(
            customer_id=request.customerId,
            campaign_id=request.campaignId,
            claim_id=request.claimId,
            amount=request.amount,
            approved_at=request.approvedAt,
        ),
        now=utc_now(),
    )
    if outcome.new:
        record_cashback_credited(outcome.amount)
    logger.info(
        "claim credited" if outcome.new else "claim credited before",
        extra={"claimId": request.claimId, "lotId": outcome.lot_id, "entryId": outcome.entry_id},
    )
    answer = ClaimCredited(
        lotId=outcome.lot_id,
        entryId=outcome.entry_id,
        amount=outcome.amount,
        availableAt=outcome.available_at,
        expiresAt=outcome.expires_at,
        new=outcome.new,
    )
    return answer.model_dump(mode="json")


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return credit(event, store)
