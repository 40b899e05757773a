"""What the wallet refuses, in its own terms.

The store raises these; none of them knows HTTP. The API handler maps each to its status
in one place, so a status is decided once whichever layer found the problem, and the CLI
or a consumer that reuses the store gets plain domain exceptions. Every error carries a
stable snake_case `code`, a message for people and the ids it concerns.
"""

from __future__ import annotations

from typing import Final

from functions.core.errors import DomainError

__all__ = [
    "Contended",
    "CurrencyNotHeld",
    "CurrencyRequired",
    "InsufficientBalance",
    "InvalidPageToken",
    "OrderNotFound",
    "PurchaseConflict",
    "RefundConflict",
    "RefundCurrencyMismatch",
    "RefundExceedsTotal",
    "SpendConflict",
    "SpendNotFound",
    "TooManyLots",
    "UnknownRefundItem",
    "WalletError",
]


class WalletError(DomainError):
    """Base of the wallet's refusals."""

    code = "wallet_error"


class OrderNotFound(WalletError):
    """A refund names an order the wallet never recorded."""

    code = "order_not_found"

    def __init__(self, order_id: str) -> None:
        super().__init__("No such order.", {"orderId": order_id})


class PurchaseConflict(WalletError):
    """The same orderId was recorded before with another body."""

    code = "purchase_conflict"

    def __init__(self, order_id: str) -> None:
        super().__init__(
            "This orderId was recorded before with a different purchase.", {"orderId": order_id}
        )


class RefundConflict(WalletError):
    """The same refundId was recorded before with another body."""

    code = "refund_conflict"

    def __init__(self, order_id: str, refund_id: str) -> None:
        super().__init__(
            "This refundId was recorded before with a different refund.",
            {"orderId": order_id, "refundId": refund_id},
        )


class RefundExceedsTotal(WalletError):
    """The refund would take the order's refunded total beyond what was paid."""

    code = "refund_exceeds_total"

    def __init__(self, order_id: str, *, total: int, refunded: int, amount: int) -> None:
        super().__init__(
            "The refund exceeds what is left of the order's total.",
            {
                "orderId": order_id,
                "total": total,
                "refunded": refunded,
                "amount": amount,
                "refundable": max(total - refunded, 0),
            },
        )


class RefundCurrencyMismatch(WalletError):
    """The refund is in another currency than the purchase."""

    code = "currency_mismatch"

    def __init__(self, order_id: str, *, expected: str, given: str) -> None:
        super().__init__(
            "The refund's currency is not the purchase's.",
            {"orderId": order_id, "expected": expected, "currency": given},
        )


class UnknownRefundItem(WalletError):
    """A refunded sku is not in the order, or more of it than bought and not yet refunded."""

    code = "unknown_item"

    def __init__(self, order_id: str, sku: str, *, refundable: int) -> None:
        super().__init__(
            "The order does not hold that many of this item to refund.",
            {"orderId": order_id, "sku": sku, "refundable": refundable},
        )


class InsufficientBalance(WalletError):
    """The available balance does not cover the spend."""

    code = "insufficient_balance"

    def __init__(self, customer_id: str, *, available: int, amount: int, currency: str) -> None:
        super().__init__(
            "The available cashback does not cover this amount.",
            {
                "customerId": customer_id,
                "available": available,
                "amount": amount,
                "currency": currency,
            },
        )


class CurrencyNotHeld(WalletError):
    """The wallet holds no balance in that currency."""

    code = "currency_not_held"

    def __init__(self, customer_id: str, currency: str) -> None:
        super().__init__(
            "The wallet holds no cashback in this currency.",
            {"customerId": customer_id, "currency": currency},
        )


class SpendConflict(WalletError):
    """The same orderId was spent before with another amount."""

    code = "spend_conflict"

    def __init__(self, customer_id: str, order_id: str) -> None:
        super().__init__(
            "This orderId was spent before with a different amount.",
            {"customerId": customer_id, "orderId": order_id},
        )


class SpendNotFound(WalletError):
    """A cancel names a spend that does not exist."""

    code = "spend_not_found"

    def __init__(self, customer_id: str, order_id: str) -> None:
        super().__init__(
            "No spend for this order.", {"customerId": customer_id, "orderId": order_id}
        )


class CurrencyRequired(WalletError):
    """The wallet holds several currencies and the read did not say which."""

    code = "currency_required"

    def __init__(self, customer_id: str, currencies: tuple[str, ...]) -> None:
        super().__init__(
            "The wallet holds several currencies; ask for one.",
            {"customerId": customer_id, "currencies": list(currencies)},
        )


class InvalidPageToken(WalletError):
    """A nextToken that this wallet did not hand out (or for another customer)."""

    code = "invalid_request"

    def __init__(self) -> None:
        super().__init__("nextToken is not a valid page token.", {"field": "nextToken"})


class TooManyLots(WalletError):
    """A spend would draw on more lots than one transaction can move at once."""

    code = "too_many_lots"

    def __init__(self, customer_id: str, *, lots: int, most: int, covered: int) -> None:
        super().__init__(
            f"This amount would draw on {lots} cashback lots at once, more than {most}; "
            "spend it in smaller parts.",
            {"customerId": customer_id, "lots": lots, "maxLots": most, "maxAmount": covered},
        )


class Contended(WalletError):
    """Too many concurrent changes to the same items got in the way; retrying shortly
    will likely get through."""

    code = "contended"
    RETRY_AFTER_SECONDS: Final = 1

    def __init__(self, message: str) -> None:
        super().__init__(message, {"retryAfterSeconds": self.RETRY_AFTER_SECONDS})
