"""`Transaction`: a TransactWrite whose items carry labels, so that a cancellation says
which item refused (`TransactionCancelled.reasons`), sent with a fresh
``ClientRequestToken`` per commit."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Final, Literal, TypeVar

from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from functions.core.aws import resolve_region
from functions.core.models.binding import transaction_connection

M = TypeVar("M", bound=Model)


# PynamoDB sends a TransactWrite's items grouped by kind in this order, whatever the order
# of the calls (see pynamodb.connection.base.Connection.transact_write_items), and DynamoDB
# returns cancellation reasons in the order sent; labels are matched back the same way.
_KIND_ORDER: Final = ("condition_check", "delete", "put", "update")

_Kind = Literal["condition_check", "delete", "put", "update"]


class TransactionCancelled(Exception):
    """DynamoDB cancelled a transaction; `reasons` maps each refusing item's label to a code.

    Codes are DynamoDB's: ``ConditionalCheckFailed`` (the item's condition was false: a
    limit reached, a duplicate), ``TransactionConflict`` (a concurrent write; retrying is
    reasonable), ``ValidationError``, ``ThrottlingError``...
    """

    def __init__(self, reasons: Mapping[str, str], cause: TransactWriteError) -> None:
        self.reasons: dict[str, str] = dict(reasons)
        self.cause = cause
        summary = ", ".join(f"{label}: {code}" for label, code in self.reasons.items())
        super().__init__(f"transaction cancelled ({summary or 'no reason given'})")

    def failed(self, label: str) -> bool:
        """Whether the item labelled `label` was refused by its condition."""
        return self.reasons.get(label) == "ConditionalCheckFailed"

    @property
    def conflicted(self) -> bool:
        """A concurrent transaction touched the same items: safe to retry as a whole."""
        return "TransactionConflict" in self.reasons.values()


class Transaction:
    """One DynamoDB TransactWrite (all items or none), with a label per item.

    ::

        tx = Transaction()
        tx.update("code", Code.ref(code), *Code.use())
        tx.put("redemption", redemption, condition=Redemption.pk.does_not_exist())
        try:
            tx.commit()
        except TransactionCancelled as cancelled:
            if cancelled.failed("code"): ...

    Items may live in different tables; each model supplies its own table name.
    """

    def __init__(self, *, client_request_token: str | None = None) -> None:
        self._token = client_request_token
        self._ops: list[tuple[_Kind, str, Callable[[TransactWrite], None]]] = []

    @property
    def labels(self) -> list[str]:
        return [label for _, label, _ in self._ops]

    def _add(self, kind: _Kind, label: str, op: Callable[[TransactWrite], None]) -> None:
        if label in self.labels:
            raise ValueError(f"duplicate transaction label {label!r}")
        self._ops.append((kind, label, op))

    def condition_check(
        self,
        label: str,
        model: type[M],
        hash_key: str,
        range_key: str | None = None,
        *,
        condition: Condition,
    ) -> None:
        self._add(
            "condition_check",
            label,
            lambda tx: tx.condition_check(model, hash_key, range_key, condition=condition),
        )

    def put(self, label: str, item: Model, *, condition: Condition | None = None) -> None:
        self._add("put", label, lambda tx: tx.save(item, condition=condition))

    def update(
        self,
        label: str,
        item: Model,
        actions: list[Action],
        condition: Condition | None = None,
    ) -> None:
        """Update `item` (a key-only ``ref`` will do; an absent item is created).

        `actions` and `condition` come as the pair the models' helpers return, so
        ``tx.update("code", Code.ref(code), *Code.use())`` reads as it runs.
        """
        self._add("update", label, lambda tx: tx.update(item, actions, condition=condition))

    def delete(self, label: str, item: Model, *, condition: Condition | None = None) -> None:
        self._add("delete", label, lambda tx: tx.delete(item, condition=condition))

    def commit(self) -> None:
        """Send the transaction; raise `TransactionCancelled` if DynamoDB refuses it."""
        if not self._ops:
            raise ValueError("an empty transaction cannot be committed")
        try:
            # A token per commit: the SDK's own retries of this request (a lost response,
            # a dropped connection) resend it, and DynamoDB answers a repeat within 10
            # minutes with success instead of applying it again, when its conditions
            # would now refuse it. A caller retrying a cancelled commit gets a new one.
            with TransactWrite(
                connection=transaction_connection(resolve_region()),
                client_request_token=self._token or uuid.uuid4().hex,
            ) as tx:
                for _, _, op in self._ops:
                    op(tx)
        except TransactWriteError as error:
            if error.cause_response_code != "TransactionCanceledException":
                raise
            sent = sorted(self._ops, key=lambda entry: _KIND_ORDER.index(entry[0]))
            reasons = {
                label: reason.code
                for (_, label, _), reason in zip(sent, error.cancellation_reasons, strict=False)
                if reason is not None and reason.code not in ("None", "")
            }
            raise TransactionCancelled(reasons, error) from error
