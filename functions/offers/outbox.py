"""The offers outbox: committed changes of the Campaigns table, read back as offer events.

Why an outbox. A code issue is one conditional write and a redemption one GetItem and one
TransactWriteItems. Calling PutEvents from the API as well would add a third call to every
checkout and, worse, could lose the event (the process dies after the commit) or announce a
write that never happened (the commit fails after the publish). The table's stream
(NEW_AND_OLD_IMAGES) carries every committed change as stored, in order for each item, so the
outbox function (`functions.offers.handlers.outbox`) publishes from it instead:

- a `CodeIssue` inserted: `OfferCodeIssued` (with the order it followed, if any);
- a `CodeIssue` modified to a new `Reminder` (the reminder sweep marked a day):
  `OfferExpiring`. The sweep's conditional mark is the only way a day gets on the item, so
  this change happens once per code per reminder day, and nothing can be lost between the
  mark and the publish;
- a `Redemption` inserted: `OfferRedeemed`;
- a `Redemption` modified from ``redeemed`` to ``rolled_back``: `RedemptionRolledBack`.

Every other change (codes, campaigns, offers, counters, guards, deletions) is no event.

The stream delivers at least once and Lambda retries whole stretches of a shard, so an
event's id is derived from its fact (detail type, item key, when it happened): a record
delivered again is published with the same ``eventId``, which consumers dedupe on.

Items are read back through their PynamoDB models (a stream image is the item in the same
DynamoDB JSON the table stores, which ``Model.from_raw_data`` reads), so attribute names
and types are declared in one place, `functions.offers.models`.

`STREAM_FILTERS` says the same cases as Lambda event filter patterns, so the function
is only invoked for them: bulk code generation writes 100,000 items nobody needs to hear
about. `event_for` still decides on its own; a record the filters let through by mistake is
ignored, never misread.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, TypeAlias

from functions.core.clock import instant_key
from functions.core.event_types import (
    OfferCodeIssued,
    OfferExpiring,
    OfferRedeemed,
    RedemptionRolledBack,
)
from functions.core.outbox import (
    INSERT,
    MODIFY,
    OutboxRecordError,
    begins_with,
    event_id,
    stream_image,
    string_key,
)
from functions.offers.models import REDEEMED, ROLLED_BACK, CodeIssue, Redemption, Reminder
from functions.offers.qr import payload_for

__all__ = [
    "CUSTOMER_PREFIX",
    "ISSUE_PREFIX",
    "REDEMPTION_PREFIX",
    "STREAM_FILTERS",
    "OfferEvent",
    "event_for",
]

OfferEvent: TypeAlias = OfferCodeIssued | OfferExpiring | OfferRedeemed | RedemptionRolledBack

# Key prefixes of the items that are facts, as the models' `key` methods build them.
CUSTOMER_PREFIX: Final = "CUSTOMER#"
ISSUE_PREFIX: Final = "ISSUE#"
REDEMPTION_PREFIX: Final = "REDEMPTION#"

# Offers whose codes are shown at a till; their events carry the QR payload to print.
QR_CHANNELS: Final = frozenset({"in_store", "both"})

_PARTITION_KEY: Final = Redemption.pk.attr_name
_SORT_KEY: Final = Redemption.sk.attr_name
_STATUS: Final = Redemption.status.attr_name
_REMINDER: Final = CodeIssue.reminder.attr_name
_REMINDER_DAY: Final = Reminder.day.attr_name


# Lambda event filter patterns (EventBridge pattern syntax over the stream record), OR'ed.
STREAM_FILTERS: Final[tuple[dict[str, Any], ...]] = (
    {
        "eventName": [INSERT],
        "dynamodb": {
            "Keys": {
                _PARTITION_KEY: begins_with(CUSTOMER_PREFIX),
                _SORT_KEY: begins_with(ISSUE_PREFIX),
            }
        },
    },
    {
        "eventName": [MODIFY],
        "dynamodb": {
            "Keys": {
                _PARTITION_KEY: begins_with(CUSTOMER_PREFIX),
                _SORT_KEY: begins_with(ISSUE_PREFIX),
            },
            "NewImage": {_REMINDER: {"M": {_REMINDER_DAY: {"S": [{"exists": True}]}}}},
        },
    },
    {
        "eventName": [INSERT],
        "dynamodb": {"Keys": {_PARTITION_KEY: begins_with(REDEMPTION_PREFIX)}},
    },
    {
        "eventName": [MODIFY],
        "dynamodb": {
            "Keys": {_PARTITION_KEY: begins_with(REDEMPTION_PREFIX)},
            "OldImage": {_STATUS: {"S": [REDEEMED]}},
            "NewImage": {_STATUS: {"S": [ROLLED_BACK]}},
        },
    },
)


def event_for(record: Mapping[str, Any]) -> OfferEvent | None:
    """The event a DynamoDB stream record (as Lambda delivers it) stands for, if any."""
    change: Mapping[str, Any] = record.get("dynamodb") or {}
    keys: Mapping[str, Any] = change.get("Keys") or {}
    partition, sort = string_key(keys, _PARTITION_KEY), string_key(keys, _SORT_KEY)
    event_name = record.get("eventName")
    if partition.startswith(CUSTOMER_PREFIX) and sort.startswith(ISSUE_PREFIX):
        return _issue_event(event_name, change)
    if not partition.startswith(REDEMPTION_PREFIX):
        return None
    if event_name == INSERT:
        return _redeemed(Redemption.from_raw_data(_image(change, "NewImage")))
    if event_name == MODIFY:
        before = Redemption.from_raw_data(_image(change, "OldImage"))
        after = Redemption.from_raw_data(_image(change, "NewImage"))
        if before.status == REDEEMED and after.status == ROLLED_BACK:
            return _rolled_back(after)
    return None


def _issue_event(
    event_name: object, change: Mapping[str, Any]
) -> OfferCodeIssued | OfferExpiring | None:
    """A code issue inserted is a code issued; modified, a reminder if one was marked."""
    if event_name == INSERT:
        return _code_issued(CodeIssue.from_raw_data(_image(change, "NewImage")))
    if event_name == MODIFY:
        before = CodeIssue.from_raw_data(_image(change, "OldImage"))
        after = CodeIssue.from_raw_data(_image(change, "NewImage"))
        return _expiring(before, after)
    return None


def _image(change: Mapping[str, Any], name: str) -> dict[str, Any]:
    return stream_image(
        change, name, requirement="the Campaigns table's stream must carry NEW_AND_OLD_IMAGES"
    )


def _event_id(detail_type: str, pk: str, sk: str, occurred_at: datetime) -> str:
    """A change of an item is known by when it happened, too: a redemption's rollback is
    another fact than its redemption."""
    return event_id(detail_type, pk, sk, instant_key(occurred_at))


def _code_issued(issue: CodeIssue) -> OfferCodeIssued:
    return OfferCodeIssued(
        eventId=_event_id(OfferCodeIssued.detail_type, issue.pk, issue.sk, issue.issued_at),
        occurredAt=issue.issued_at,
        customerId=issue.customer_id,
        campaignId=issue.campaign_id,
        offerId=issue.offer_id,
        code=issue.code,
        channel=issue.channel,
        mode=issue.mode,
        expiresAt=issue.expires_at,
        qrPayload=payload_for(issue.code) if issue.channel in QR_CHANNELS else None,
        orderId=issue.order_id,
    )


def _expiring(before: CodeIssue, after: CodeIssue) -> OfferExpiring | None:
    """The reminder `after` has and `before` had not, if any."""
    reminder, earlier = after.latest_reminder, before.latest_reminder
    if reminder is None or (earlier is not None and earlier.day == reminder.day):
        return None
    return OfferExpiring(
        # One reminder per code (the customer's issue of the offer) per local day.
        eventId=event_id(OfferExpiring.detail_type, after.pk, after.sk, reminder.day),
        occurredAt=reminder.at,
        customerId=after.customer_id,
        campaignId=after.campaign_id,
        offerId=after.offer_id,
        code=reminder.code,
        expiresAt=reminder.expires_at,
        daysBefore=reminder.days_before,
    )


def _redemption_ref(redemption: Redemption) -> dict[str, Any]:
    """The `RedemptionRef` fields both redemption events carry."""
    return {
        "redemptionId": redemption.redemption_id,
        "orderId": redemption.order_id,
        "code": redemption.code,
        "offerId": redemption.offer_id,
        "campaignId": redemption.campaign_id,
        "customerId": redemption.customer_id,
        "discount": redemption.discount,
    }


def _redeemed(redemption: Redemption) -> OfferRedeemed:
    return OfferRedeemed(
        eventId=_event_id(
            OfferRedeemed.detail_type, redemption.pk, redemption.sk, redemption.redeemed_at
        ),
        occurredAt=redemption.redeemed_at,
        **_redemption_ref(redemption),
        channel=redemption.channel,
        storeId=redemption.store_id,
        cartTotal=redemption.cart_total,
    )


def _rolled_back(redemption: Redemption) -> RedemptionRolledBack:
    rolled_back_at, reason = redemption.rolled_back_at, redemption.rollback_reason
    if rolled_back_at is None or reason is None:
        raise OutboxRecordError(
            f"redemption {redemption.redemption_id} is rolled back without "
            "rolledBackAt and rollbackReason"
        )
    return RedemptionRolledBack(
        eventId=_event_id(
            RedemptionRolledBack.detail_type, redemption.pk, redemption.sk, rolled_back_at
        ),
        occurredAt=rolled_back_at,
        **_redemption_ref(redemption),
        reason=reason,
    )
