"""The storefront's wallet API: purchases that earn cashback, refunds, the wallet, spends.

Routes (DESIGN "HTTP API"): POST /v1/purchases, POST /v1/purchases/{orderId}/refunds,
GET /v1/customers/{customerId}/wallet, POST /v1/customers/{customerId}/wallet/spend,
POST /v1/customers/{customerId}/wallet/spend/{orderId}/cancel. The POSTs honour
``Idempotency-Key``; each is also idempotent by its own ids (the same orderId, refundId or
spend orderId twice is one fact), so a retry without a key is harmless too.

The handler parses, calls `WalletStore` and shapes the answer; the store raises domain
errors (`functions.wallet.errors`), which `api_error` maps to statuses in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Annotated, Any, Final

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.core.api import ResolverPerThread, domain_errors, responses, status_mapping
from functions.core.clock import utc_now
from functions.core.errors import (
    BadRequest,
    Conflict,
    NotFound,
    RebatesError,
    Throttled,
    Unprocessable,
)
from functions.core.idempotency import idempotent
from functions.core.money import CurrencyCode, Money
from functions.core.observability import (
    instrumented,
    record_cashback_credited,
    record_cashback_reversed,
    record_cashback_spent,
)
from functions.wallet.dal import (
    LotDraw,
    NextMove,
    PurchaseInput,
    PurchaseLine,
    RefundInput,
    WalletEntryView,
    WalletStore,
)
from functions.wallet.errors import (
    Contended,
    CurrencyNotHeld,
    CurrencyRequired,
    InsufficientBalance,
    InvalidPageToken,
    OrderNotFound,
    PurchaseConflict,
    RefundConflict,
    RefundCurrencyMismatch,
    RefundExceedsTotal,
    SpendConflict,
    SpendNotFound,
    TooManyLots,
    UnknownRefundItem,
    WalletError,
)
from functions.wallet.schemas import (
    MAX_CUSTOMER_ID_LENGTH,
    PRINTABLE,
    CancelledSpend,
    EarningView,
    EntryView,
    LotDrawView,
    MoveView,
    PurchaseRecordedView,
    PurchaseRequest,
    RefundRecordedView,
    RefundRequest,
    ReversalView,
    SpendRequest,
    SpentView,
    WalletBody,
)

router = Router()
store = WalletStore()

CREDITED: Final = "credited"

CustomerPath = Annotated[
    str, Path(min_length=1, max_length=MAX_CUSTOMER_ID_LENGTH, pattern=PRINTABLE)
]
OrderPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^\S+$")]
# base64 of the last key read: long enough for any key the table holds.
PageToken = Annotated[str | None, Query(min_length=1, max_length=2048)]


_CONTENDED = "contended: too many concurrent changes to the same wallet, retry shortly"


# -- domain errors to HTTP, in one place ------------------------------------------------

# An unknown id: 404; a conflict with what is recorded or a balance too small: 409; a
# property of the request measured against the order or the wallet: 422; a read that
# cannot be answered as asked: 400; contention: 429 (the storefront retries).
_STATUSES: Final[dict[type[WalletError], type[RebatesError]]] = {
    OrderNotFound: NotFound,
    SpendNotFound: NotFound,
    PurchaseConflict: Conflict,
    RefundConflict: Conflict,
    SpendConflict: Conflict,
    InsufficientBalance: Conflict,
    RefundExceedsTotal: Unprocessable,
    RefundCurrencyMismatch: Unprocessable,
    UnknownRefundItem: Unprocessable,
    CurrencyNotHeld: Unprocessable,
    TooManyLots: Unprocessable,
    CurrencyRequired: BadRequest,
    InvalidPageToken: BadRequest,
    Contended: Throttled,
}


# The API's answer to what the domain refused, by the error's class.
api_error = status_mapping(_STATUSES)


# Refusals the very same request may see lifted later, so an Idempotency-Key answers them
# without pinning them for the record's day: a balance too small or a currency not held
# yet (a release, a credit or a cancel changes both), an order or a spend not recorded yet
# (the purchase or the spend may arrive after its refund or cancel), and contention.
# Replayed, as permanent: a conflict with what is recorded (the same id with another
# body), and a refund measured against the order (its total and its lines never change).
_PROVISIONAL: Final = frozenset(
    {
        InsufficientBalance.code,
        CurrencyNotHeld.code,
        OrderNotFound.code,
        SpendNotFound.code,
        Contended.code,
    }
)

# Innermost on every route: a refusal is answered (and replayed) as one, counted once.
_DOMAIN_ERRORS: Final = domain_errors(WalletError, api_error)
_READS: list[Callable[..., Any]] = [_DOMAIN_ERRORS]
_CHANGES: list[Callable[..., Any]] = [idempotent(provisional=_PROVISIONAL), _DOMAIN_ERRORS]


# -- purchases and refunds ------------------------------------------------------------


@router.post(
    "/v1/purchases",
    summary="Record a purchase; it earns cashback in running cashback campaigns",
    tags=["purchases"],
    middlewares=_CHANGES,
    status_code=HTTPStatus.ACCEPTED,
    responses=responses(
        HTTPStatus.ACCEPTED,
        PurchaseRecordedView,
        e409="purchase_conflict: this orderId was recorded with another purchase",
        e429=_CONTENDED,
    ),
)
def record_purchase(body: PurchaseRequest) -> PurchaseRecordedView:
    purchase = PurchaseInput(
        order_id=body.orderId,
        customer_id=body.customerId,
        channel=body.channel,
        placed_at=body.placedAt,
        currency=body.currency,
        items=tuple(
            PurchaseLine(
                sku=item.sku,
                category=item.category,
                quantity=item.quantity,
                unit_price=item.unitPrice,
            )
            for item in body.items
        ),
        total=body.total,
    )
    outcome = store.record_purchase(purchase, now=utc_now())
    earnings = []
    for earning in outcome.earnings:
        credited = earning.outcome == CREDITED
        if credited and outcome.new and earning.amount is not None:
            record_cashback_credited(earning.amount)
        earnings.append(
            EarningView(
                campaignId=earning.campaign_id,
                outcome=earning.outcome,
                amount=earning.amount if credited else None,
                availableAt=earning.available_at if credited else None,
            )
        )
    return PurchaseRecordedView(
        orderId=outcome.order_id, customerId=outcome.customer_id, earnings=earnings
    )


@router.post(
    "/v1/purchases/<orderId>/refunds",
    summary="Refund part or all of a purchase; the cashback it earned is reversed in proportion",
    tags=["purchases"],
    middlewares=_CHANGES,
    status_code=HTTPStatus.ACCEPTED,
    responses=responses(
        HTTPStatus.ACCEPTED,
        RefundRecordedView,
        e404="order_not_found",
        e409="refund_conflict: this refundId was recorded with another refund",
        e422="refund_exceeds_total, currency_mismatch, unknown_item",
        e429=_CONTENDED,
    ),
)
def refund(orderId: OrderPath, body: RefundRequest) -> RefundRecordedView:
    request = RefundInput(
        refund_id=body.refundId,
        amount=body.amount,
        currency=body.currency,
        items=None
        if body.items is None
        else tuple((line.sku, line.quantity) for line in body.items),
    )
    outcome = store.refund(orderId, request, now=utc_now())
    if outcome.new:
        for reversal in outcome.reversals:
            if reversal.reversed.is_positive:
                record_cashback_reversed(reversal.reversed)
    return RefundRecordedView(
        orderId=outcome.order_id,
        refundId=outcome.refund_id,
        amount=outcome.amount,
        refundedTotal=outcome.refunded_total,
        reversals=[
            ReversalView(
                campaignId=reversal.campaign_id,
                lotId=reversal.lot_id,
                reversed=reversal.reversed,
                owed=reversal.owed,
            )
            for reversal in outcome.reversals
        ],
    )


# -- the wallet -----------------------------------------------------------------------


@router.get(
    "/v1/customers/<customerId>/wallet",
    summary="Balances, the next release and expiry, and entries newest first",
    tags=["wallet"],
    middlewares=_READS,
    responses=responses(
        HTTPStatus.OK,
        WalletBody,
        e400="currency_required: the wallet holds several currencies; invalid_request: "
        "a bad nextToken",
    ),
)
def get_wallet(
    customerId: CustomerPath,
    currency: Annotated[CurrencyCode | None, Query()] = None,
    nextToken: PageToken = None,
) -> WalletBody:
    view = store.wallet(customerId, currency=currency, page_token=nextToken)
    return WalletBody(
        customerId=view.customer_id,
        available=view.available,
        pending=view.pending,
        owed=view.owed,
        nextRelease=_move(view.next_release),
        nextExpiry=_move(view.next_expiry),
        entries=[_entry(entry) for entry in view.entries],
        nextToken=view.next_token,
    )


def _move(move: NextMove | None) -> MoveView | None:
    return None if move is None else MoveView(at=move.at, amount=move.amount)


def _draws(lots: tuple[LotDraw, ...]) -> list[LotDrawView]:
    return [LotDrawView(lotId=d.lot_id, campaignId=d.campaign_id, amount=d.amount) for d in lots]


def _entry(entry: WalletEntryView) -> EntryView:
    return EntryView(
        entryId=entry.entry_id,
        kind=entry.kind,
        amount=entry.amount,
        recordedAt=entry.recorded_at,
        campaignId=entry.campaign_id,
        orderId=entry.order_id,
        claimId=entry.claim_id,
        refundId=entry.refund_id,
        lots=_draws(entry.lots),
    )


@router.post(
    "/v1/customers/<customerId>/wallet/spend",
    summary="Spend available cashback at checkout, the lots expiring first first",
    tags=["wallet"],
    middlewares=_CHANGES,
    status_code=HTTPStatus.CREATED,
    responses=responses(
        HTTPStatus.CREATED,
        SpentView,
        e409="insufficient_balance, spend_conflict: this orderId was spent with another amount",
        e422="currency_not_held, too_many_lots: the spend would draw on more lots than one "
        "transaction holds (details.maxAmount: the largest spend that would go through)",
        e429=_CONTENDED,
    ),
)
def spend(customerId: CustomerPath, body: SpendRequest) -> SpentView:
    amount = Money.of(body.amount, body.currency)
    outcome = store.spend(customerId, body.orderId, amount, now=utc_now())
    if outcome.new:
        record_cashback_spent(outcome.amount)
    return SpentView(
        spendId=outcome.spend_id,
        orderId=outcome.order_id,
        amount=outcome.amount,
        lots=_draws(outcome.lots),
        available=outcome.available_after,
    )


@router.post(
    "/v1/customers/<customerId>/wallet/spend/<orderId>/cancel",
    summary="The order was cancelled: its spend returns to the lots it drew from, once",
    tags=["wallet"],
    middlewares=_CHANGES,
    responses=responses(HTTPStatus.OK, CancelledSpend, e404="spend_not_found", e429=_CONTENDED),
)
def cancel_spend(customerId: CustomerPath, orderId: OrderPath) -> CancelledSpend:
    outcome = store.cancel_spend(customerId, orderId, now=utc_now())
    return CancelledSpend(
        spendId=outcome.spend_id,
        orderId=outcome.order_id,
        amount=outcome.amount,
        status="cancelled",
        alreadyCancelled=not outcome.new,
    )


app = ResolverPerThread(router)


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
