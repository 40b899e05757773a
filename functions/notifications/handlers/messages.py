"""The messages consumer: SQS batches of EventBridge events in, emails and SMS out.

Two queues feed it (their rules decide what arrives): customer events, CampaignPublished
and OfferCodeIssued; and a delayed queue of PurchaseRecorded, so a purchase's thank-you
usually finds the code issued after it. Each record is handled on its own, under its
event's correlation id (`correlated`), by `NotificationService`; one that must be tried
again (a transient provider error, a claim held by another invocation) or cannot be read
at all is reported in ``batchItemFailures``: SQS delivers it again after its visibility
timeout, and after the queue's receive count parks it in the DLQ.

Environment (`MessagesSettings`): ``CUSTOMERS_TABLE``, ``IDEMPOTENCY_TABLE``,
``SENDER_EMAIL``, ``UNSUBSCRIBE_URL``, ``UNSUBSCRIBE_KEY_SECRET_ARN``, ``EVENT_BUS_NAME``.
"""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field

from functions.core.events import EventBridgePublisher
from functions.core.observability import correlated, instrumented, logger
from functions.core.settings import EventBusSettings, load_settings
from functions.notifications.dal import (
    DeliveryLedger,
    DirectoryStore,
    FollowUpStore,
    ProfileStore,
    UnsubscribeKey,
)
from functions.notifications.handlers.queue import PoisonMessage, lease_until, parse
from functions.notifications.senders import SesEmailSender, SnsSmsSender
from functions.notifications.service import Deliverer, NotificationService, RetryLater

__all__ = ["MessagesSettings", "consume", "handler"]


class MessagesSettings(EventBusSettings):
    sender_email: str = Field(alias="SENDER_EMAIL", min_length=3)
    unsubscribe_url: str = Field(alias="UNSUBSCRIBE_URL", pattern=r"^https?://\S+$")
    unsubscribe_key_secret_arn: str = Field(alias="UNSUBSCRIBE_KEY_SECRET_ARN", min_length=1)


def consume(
    event: dict[str, Any], context: LambdaContext | None, service: NotificationService
) -> PartialItemFailureResponse:
    """Handle each record of the SQS batch `event` with `service`; the records to retry."""
    until = lease_until(context)

    def handle(record: SQSRecord) -> None:
        with correlated(record):
            try:
                detail = parse(record.body)
            except PoisonMessage as poison:
                logger.error(
                    "queue message is not an event",
                    extra={"messageId": record.message_id, "problem": str(poison)},
                )
                raise
            try:
                service.handle(detail, lease_until=until)
            except RetryLater as later:
                logger.info(
                    "event to be handled again",
                    extra={"eventId": detail.eventId, "reason": str(later)},
                )
                raise
            except Exception:
                logger.exception(
                    "event not handled",
                    extra={"eventId": detail.eventId, "detailType": detail.detail_type},
                )
                raise

    # A processor per batch: it keeps the batch's outcomes as state.
    # Failures are always answered per record, also when every record failed: the
    # invocation itself succeeded, and Lambda's Errors stay for functions that crash.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(
        event=event, record_handler=handle, processor=processor, context=context
    )


@functools.cache
def _service(settings: MessagesSettings) -> NotificationService:
    # One per container (and per environment, for the local cloud); every client is lazy.
    keys = UnsubscribeKey()
    return NotificationService(
        deliverer=Deliverer(
            ledger=DeliveryLedger(),
            email=SesEmailSender(),
            sms=SnsSmsSender(),
            events=EventBridgePublisher(settings.event_bus_name),
            sender_email=settings.sender_email,
            unsubscribe_url=settings.unsubscribe_url,
            unsubscribe_key=lambda: keys.get(settings.unsubscribe_key_secret_arn),
        ),
        profiles=ProfileStore(),
        directory=DirectoryStore(),
        follow_ups=FollowUpStore(),
    )


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return consume(event, context, _service(load_settings(MessagesSettings)))
