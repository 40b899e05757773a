"""Claims table: rebate claims, their duplicate guards and per-customer claim counts.

Items (pk / sk):

- ``Claim``               ``CLAIM#<claimId>`` / ``META``
- ``DuplicateGuard``      ``DUP#<campaignId>#RECEIPT#<retailer>#<receiptNumber>#<date>`` or
                          ``DUP#<campaignId>#IMAGE#<sha256>`` / ``META``
- ``CustomerClaimCount``  ``CUSTOMER#<customerId>`` / ``CLAIMS#<campaignId>``
- ``ClaimRequest``        ``CLAIMREQ#<customerId>#<idempotency key digest>`` / ``META``
- ``Receipt``             ``RECEIPT#<receiptKey>`` / ``META``
- ``ReceiptFileUse``      ``FILE#<sha256>`` / ``CUSTOMER#<customerId>``
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any, Final

from pynamodb.attributes import ListAttribute, UnicodeAttribute, UnicodeSetAttribute
from pynamodb.exceptions import PutError
from pynamodb.expressions.condition import Condition, size
from pynamodb.expressions.update import Action
from pynamodb.indexes import GlobalSecondaryIndex

from functions.core.clock import instant_key
from functions.core.models import (
    InstantAttribute,
    IntegerAttribute,
    MoneyAttribute,
    TableModel,
    TypedMap,
    day_key,
    global_index,
    key_part,
    optional,
    table_meta,
)
from functions.core.tables import CLAIMS

__all__ = [
    "CLAIM_STATUSES",
    "RECEIPT_STATUSES",
    "Claim",
    "ClaimRequest",
    "CustomerClaimCount",
    "DuplicateGuard",
    "Evidence",
    "PurchaseItem",
    "PurchaseMap",
    "Receipt",
    "ReceiptFileUse",
    "TimelineEntry",
    "acquire_guard",
    "get_claim",
]

CLAIM_STATUSES: Final = (
    "submitted",
    "verifying",
    "in_review",
    "approved",
    "rejected",
    "credited",
    "error",
)


# A receipt's upload is granted (`awaiting_upload`), then checked once the object lands:
# its bytes are what its declared content type says (`valid`) or not (`invalid`).
RECEIPT_STATUSES: Final = ("awaiting_upload", "valid", "invalid")


class PurchaseItem(TypedMap):
    """A purchased line: amounts in the purchase's currency minor unit."""

    sku = UnicodeAttribute()
    category = optional(UnicodeAttribute())
    quantity = IntegerAttribute()
    unit_price = IntegerAttribute(attr_name="unitPrice")


class PurchaseMap(TypedMap):
    """The purchase a claim is about, as submitted."""

    order_id = optional(UnicodeAttribute(attr_name="orderId"))
    retailer = UnicodeAttribute()
    receipt_number = UnicodeAttribute(attr_name="receiptNumber")
    purchased_at = InstantAttribute(attr_name="purchasedAt")
    currency = UnicodeAttribute()
    total = IntegerAttribute()
    items = ListAttribute[PurchaseItem](of=PurchaseItem, default=list)


class TimelineEntry(TypedMap):
    """One step of a claim's history: when, which status, and an optional note."""

    at = InstantAttribute()
    status = UnicodeAttribute()
    note = optional(UnicodeAttribute())


class Evidence(TypedMap):
    """Why a verification rule fired, for the reviewer: the rule, the reason code it gives
    (a rejection or a review reason), the other claims it matched and a note in words."""

    rule = UnicodeAttribute()
    reason = UnicodeAttribute()
    claim_ids = ListAttribute[str](attr_name="claimIds", default=list)
    note = optional(UnicodeAttribute())


class Claim(TableModel):
    """A rebate claim and its verification state.

    Access patterns:

    - get a claim by id: pk=``CLAIM#<claimId>``, sk=``META`` (`get_claim`)
    - a customer's claims, newest first (also the velocity check, with a time range):
      gsi1 pk=``CUSTOMER#<customerId>``, sk=``<submittedAt>#<claimId>`` (`for_customer`)
    - claims by status in submission order (the review queue is ``in_review``): gsi2
      pk=``CLAIMS#<status>``, sk=``<submittedAt>#<claimId>`` (`with_status`)
    - move to a status, once: update conditional on the current status (`transition`);
      it sets gsi2pk too, so the queue follows the status in the same write
    """

    Meta = table_meta(CLAIMS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    gsi1pk = optional(UnicodeAttribute())
    gsi1sk = optional(UnicodeAttribute())
    gsi2pk = optional(UnicodeAttribute())
    gsi2sk = optional(UnicodeAttribute())
    gsi1: GlobalSecondaryIndex[Claim] = global_index(CLAIMS, "gsi1")
    gsi2: GlobalSecondaryIndex[Claim] = global_index(CLAIMS, "gsi2")

    claim_id = UnicodeAttribute(attr_name="claimId")
    campaign_id = UnicodeAttribute(attr_name="campaignId")
    customer_id = UnicodeAttribute(attr_name="customerId")
    status = UnicodeAttribute(default="submitted")
    purchase = PurchaseMap()
    receipt_key = optional(UnicodeAttribute(attr_name="receiptKey"))
    receipt_hash = optional(UnicodeAttribute(attr_name="receiptHash"))
    reward = optional(MoneyAttribute())
    # Rejection reasons once rejected; empty otherwise.
    reasons = ListAttribute[str](default=list)
    # Why verification sent the claim to a person (e.g. above_auto_approve_limit, velocity).
    review_reasons = ListAttribute[str](attr_name="reviewReasons", default=list)
    evidence = ListAttribute[Evidence](of=Evidence, default=list)
    # Verification's route (reject | approve | review) and its rejection reasons, stored
    # with the evidence so a retried verify answers the same verdict, even if the signals
    # it reads (the customer's recent claims) moved in between.
    verdict = optional(UnicodeAttribute())
    verdict_reasons = ListAttribute[str](attr_name="verdictReasons", default=list)
    timeline = ListAttribute[TimelineEntry](of=TimelineEntry, default=list)
    execution_arn = optional(UnicodeAttribute(attr_name="executionArn"))
    # The Step Functions task token of the review wait; removed once decided.
    task_token = optional(UnicodeAttribute(attr_name="taskToken"))
    review_due_at = optional(InstantAttribute(attr_name="reviewDueAt"))
    reviewer = optional(UnicodeAttribute())
    # The reviewer's decision (approve | reject) and their reason, recorded before the
    # decision is sent to the waiting execution, so a second decision is refused.
    decision = optional(UnicodeAttribute())
    decision_reason = optional(UnicodeAttribute(attr_name="decisionReason"))
    decided_at = optional(InstantAttribute(attr_name="decidedAt"))
    lot_id = optional(UnicodeAttribute(attr_name="lotId"))
    error_cause = optional(UnicodeAttribute(attr_name="errorCause"))
    submitted_at = InstantAttribute(attr_name="submittedAt")
    updated_at = InstantAttribute(attr_name="updatedAt")

    @staticmethod
    def key(claim_id: str) -> tuple[str, str]:
        return f"CLAIM#{claim_id}", "META"

    @staticmethod
    def customer_partition(customer_id: str) -> str:
        return f"CUSTOMER#{customer_id}"

    @staticmethod
    def status_partition(status: str) -> str:
        return f"CLAIMS#{status}"

    def derive_keys(self) -> None:
        if self.claim_id is not None:
            self.pk, self.sk = self.key(self.claim_id)
        if self.submitted_at is not None and self.claim_id is not None:
            order = f"{instant_key(self.submitted_at)}#{self.claim_id}"
            if self.customer_id is not None:
                self.gsi1pk, self.gsi1sk = self.customer_partition(self.customer_id), order
            if self.status is not None:
                self.gsi2pk, self.gsi2sk = self.status_partition(self.status), order

    @classmethod
    def ref(cls, claim_id: str) -> Claim:
        """A key-only instance, for updates inside a `Transaction` or with `update`."""
        return cls(claim_id=claim_id)

    @staticmethod
    def transition(
        to: str, at: datetime, *, from_statuses: tuple[str, ...], note: str | None = None
    ) -> tuple[list[Action], Condition]:
        """Set the status (and its gsi2 partition), append to the timeline, and refuse
        unless the claim is currently in one of `from_statuses` (which transitions are
        allowed is the logic's decision; this makes each one happen at most once)."""
        if to not in CLAIM_STATUSES:
            raise ValueError(f"unknown claim status {to!r}")
        entry = TimelineEntry(at=at, status=to, note=note)
        actions: list[Action] = [
            Claim.status.set(to),
            Claim.gsi2pk.set(Claim.status_partition(to)),
            Claim.updated_at.set(at),
            Claim.timeline.set(Claim.timeline.append([entry])),
        ]
        return actions, Claim.status.is_in(*from_statuses)

    @classmethod
    def for_customer(
        cls, customer_id: str, *, since: datetime | None = None, newest_first: bool = True
    ) -> Iterator[Claim]:
        condition = cls.gsi1sk >= instant_key(since) if since else None
        return cls.gsi1.query(
            cls.customer_partition(customer_id), condition, scan_index_forward=not newest_first
        )

    @classmethod
    def with_status(cls, status: str, *, limit: int | None = None) -> Iterator[Claim]:
        """Claims in `status`, oldest submission first (gsi2, eventually consistent)."""
        return cls.gsi2.query(cls.status_partition(status), limit=limit)


class ClaimRequest(TableModel):
    """A submission made with an ``Idempotency-Key``: the claim it created, for good.

    Written in the claim's own transaction, so a retried submission (the first one died
    after storing the claim, or its answer was lost) finds the claim it made instead of
    making a second one that its own receipt would then reject as a duplicate.

    Access patterns:

    - by customer and key: pk=``CLAIMREQ#<customerId>#<sha256 of the key>``, sk=``META``
    - record: put conditional on ``attribute_not_exists(pk)``, with the claim
    """

    Meta = table_meta(CLAIMS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    claim_id = UnicodeAttribute(attr_name="claimId")
    # SHA-256 of the canonical submission: the same key with another body is refused.
    fingerprint = UnicodeAttribute()
    created_at = InstantAttribute(attr_name="createdAt")

    @staticmethod
    def key(customer_id: str, request_key: str) -> tuple[str, str]:
        digest = hashlib.sha256(request_key.encode()).hexdigest()
        return f"CLAIMREQ#{customer_id}#{digest}", "META"


class DuplicateGuard(TableModel):
    """The first claim to use a receipt (by its number or by its image) in a campaign.

    Scoped to a campaign: one shopping receipt may legitimately qualify for two different
    campaigns' rebates, but never twice for the same one.

    Access patterns:

    - same retailer + receipt number + purchase date: pk=``DUP#<campaignId>#RECEIPT#``
      ``<retailer>#<receiptNumber>#<yyyy-mm-dd>``, sk=``META`` (`for_receipt`)
    - same receipt image: pk=``DUP#<campaignId>#IMAGE#<sha256 hex>``, sk=``META``
      (`for_image`)
    - claim it: conditional put ``attribute_not_exists(pk) OR claimId = :own``
      (`acquire_guard`), so a retried verification step finds its own guard, not a
      duplicate

    The parts are passed already normalised (what counts as "the same retailer" is the
    claims logic's rule); they are escaped here so no two different tuples share a key.
    """

    Meta = table_meta(CLAIMS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    kind = UnicodeAttribute()  # receipt | image
    campaign_id = UnicodeAttribute(attr_name="campaignId")
    claim_id = UnicodeAttribute(attr_name="claimId")
    created_at = InstantAttribute(attr_name="createdAt")

    @classmethod
    def for_receipt(
        cls,
        *,
        campaign_id: str,
        retailer: str,
        receipt_number: str,
        purchase_date: date,
        claim_id: str,
        at: datetime,
    ) -> DuplicateGuard:
        parts = (key_part(retailer), key_part(receipt_number), day_key(purchase_date))
        return cls(
            f"DUP#{key_part(campaign_id)}#RECEIPT#{'#'.join(parts)}",
            "META",
            kind="receipt",
            campaign_id=campaign_id,
            claim_id=claim_id,
            created_at=at,
        )

    @classmethod
    def for_image(
        cls, *, campaign_id: str, sha256: str, claim_id: str, at: datetime
    ) -> DuplicateGuard:
        return cls(
            f"DUP#{key_part(campaign_id)}#IMAGE#{sha256.lower()}",
            "META",
            kind="image",
            campaign_id=campaign_id,
            claim_id=claim_id,
            created_at=at,
        )


def acquire_guard(guard: DuplicateGuard) -> str:
    """Put `guard` unless another claim holds it; return the holder's claim id.

    Equal to ``guard.claim_id`` when the guard is (or already was) this claim's.
    """
    condition = DuplicateGuard.pk.does_not_exist() | (DuplicateGuard.claim_id == guard.claim_id)
    try:
        guard.save(condition=condition)
    except PutError as error:
        if error.cause_response_code != "ConditionalCheckFailedException":
            raise
        holder = DuplicateGuard.get_or_none(guard.pk, guard.sk)
        if holder is None:  # released in between: a retry will take it
            raise
        return holder.claim_id
    return guard.claim_id


class CustomerClaimCount(TableModel):
    """The claims a customer has counting towards a campaign's ``limits.per_customer``.

    Kept as a set of claim ids rather than a bare number, so counting is idempotent: a
    retried step re-adds the same id and changes nothing, and releasing a rejected claim
    removes exactly that claim.

    Access patterns:

    - a customer's count for a campaign: pk=``CUSTOMER#<customerId>``,
      sk=``CLAIMS#<campaignId>``
    - count a claim under the limit: ``ADD claimIds :id`` conditional on the set being
      smaller than the limit or already holding the id (`count_claim`)
    - release it: ``DELETE claimIds :id`` (`release_claim`)
    """

    Meta = table_meta(CLAIMS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    customer_id = UnicodeAttribute(attr_name="customerId")
    campaign_id = UnicodeAttribute(attr_name="campaignId")
    claim_ids = UnicodeSetAttribute(attr_name="claimIds")
    updated_at = optional(InstantAttribute(attr_name="updatedAt"))

    @staticmethod
    def key(customer_id: str, campaign_id: str) -> tuple[str, str]:
        return f"CUSTOMER#{customer_id}", f"CLAIMS#{campaign_id}"

    def derive_keys(self) -> None:
        if self.customer_id is not None and self.campaign_id is not None:
            self.pk, self.sk = self.key(self.customer_id, self.campaign_id)

    @classmethod
    def ref(cls, customer_id: str, campaign_id: str) -> CustomerClaimCount:
        return cls(customer_id=customer_id, campaign_id=campaign_id)

    @property
    def claims_counted(self) -> int:
        return len(self.claim_ids or ())

    @staticmethod
    def count_claim(
        claim_id: str, limit: int | None, at: datetime, *, customer_id: str, campaign_id: str
    ) -> tuple[list[Action], Condition | None]:
        """Add `claim_id`; refused if the customer already has `limit` other claims."""
        actions: list[Action] = [
            CustomerClaimCount.claim_ids.add({claim_id}),
            CustomerClaimCount.customer_id.set(customer_id),
            CustomerClaimCount.campaign_id.set(campaign_id),
            CustomerClaimCount.updated_at.set(at),
        ]
        if limit is None:
            return actions, None
        ids = CustomerClaimCount.claim_ids
        condition = ids.does_not_exist() | ids.contains(claim_id) | (_size(ids) < limit)
        return actions, condition

    @staticmethod
    def release_claim(claim_id: str, at: datetime) -> list[Action]:
        return [
            CustomerClaimCount.claim_ids.delete({claim_id}),
            CustomerClaimCount.updated_at.set(at),
        ]


def _size(attribute: Any) -> Any:
    # pynamodb.expressions.condition.size is the public spelling but is left unannotated.
    return size(attribute)  # type: ignore[no-untyped-call]


class Receipt(TableModel):
    """A receipt upload: granted to one customer, then checked when its object lands.

    Access patterns:

    - get by key: pk=``RECEIPT#<receiptKey>``, sk=``META``
    - grant: conditional put ``attribute_not_exists(pk)`` (the key is new)
    - record the check: update conditional on the item existing, setting ``status``,
      ``sha256``, ``uploadedSize`` and ``checkedAt`` (the same object checked again
      writes the same values, so a redelivered notification is harmless)
    """

    Meta = table_meta(CLAIMS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    receipt_key = UnicodeAttribute(attr_name="receiptKey")
    customer_id = UnicodeAttribute(attr_name="customerId")
    content_type = UnicodeAttribute(attr_name="contentType")
    declared_size = IntegerAttribute(attr_name="declaredSize")
    status = UnicodeAttribute(default="awaiting_upload")
    sha256 = optional(UnicodeAttribute())
    uploaded_size = optional(IntegerAttribute(attr_name="uploadedSize"))
    # Why a receipt is invalid, in words for the reviewer (e.g. "PNG bytes, declared PDF").
    invalid_reason = optional(UnicodeAttribute(attr_name="invalidReason"))
    granted_at = InstantAttribute(attr_name="grantedAt")
    checked_at = optional(InstantAttribute(attr_name="checkedAt"))

    @staticmethod
    def key(receipt_key: str) -> tuple[str, str]:
        return f"RECEIPT#{receipt_key}", "META"

    def derive_keys(self) -> None:
        if self.receipt_key is not None:
            self.pk, self.sk = self.key(self.receipt_key)

    @classmethod
    def ref(cls, receipt_key: str) -> Receipt:
        return cls(receipt_key=receipt_key)


class ReceiptFileUse(TableModel):
    """One customer's use of a receipt file (by SHA-256), in any campaign.

    The same file from two customers is a fraud signal (sent to review, not rejected: a
    household may share one receipt), so the claims of other customers that used it are
    the evidence.

    Access patterns:

    - record a use: put pk=``FILE#<sha256>``, sk=``CUSTOMER#<customerId>`` (idempotent)
    - who used the file: query pk=``FILE#<sha256>``
    """

    Meta = table_meta(CLAIMS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    sha256 = UnicodeAttribute()
    customer_id = UnicodeAttribute(attr_name="customerId")
    claim_id = UnicodeAttribute(attr_name="claimId")
    used_at = InstantAttribute(attr_name="usedAt")

    @staticmethod
    def partition(sha256: str) -> str:
        return f"FILE#{sha256.lower()}"

    def derive_keys(self) -> None:
        if self.sha256 is not None and self.customer_id is not None:
            self.pk = self.partition(self.sha256)
            self.sk = f"CUSTOMER#{self.customer_id}"


def get_claim(claim_id: str) -> Claim | None:
    return Claim.get_or_none(*Claim.key(claim_id))
