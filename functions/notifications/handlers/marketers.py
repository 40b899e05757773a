"""The marketers consumer: SQS batches of CampaignRejected, each to the marketers' topic once.

A marketer who uploads a file that fails validation learns it from the topic's
subscriptions (email, chat): which file, which campaign, each error with its path.
Each event is alerted once whatever the redeliveries (the delivery ledger, as for
customers' messages); a transient SNS error or an unreadable message is reported in
``batchItemFailures`` and comes back, then waits in the DLQ.

Environment (`MarketersSettings`): ``IDEMPOTENCY_TABLE``, ``MARKETERS_TOPIC_ARN``.
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

from functions.core.event_types import CampaignRejected
from functions.core.observability import correlated, instrumented, logger
from functions.core.settings import CoreSettings, load_settings
from functions.notifications.dal import DeliveryLedger
from functions.notifications.handlers.queue import PoisonMessage, lease_until, parse
from functions.notifications.senders import SnsTopicSender
from functions.notifications.service import MarketersAlerts

__all__ = ["MarketersSettings", "consume", "handler"]


class MarketersSettings(CoreSettings):
    marketers_topic_arn: str = Field(alias="MARKETERS_TOPIC_ARN", pattern=r"^arn:[^:]+:sns:")


def consume(
    event: dict[str, Any], context: LambdaContext | None, alerts: MarketersAlerts
) -> PartialItemFailureResponse:
    """Alert each CampaignRejected of the SQS batch `event`; the records to retry."""
    until = lease_until(context)

    def handle(record: SQSRecord) -> None:
        with correlated(record):
            detail = parse(record.body)
            if not isinstance(detail, CampaignRejected):
                # The rule sends only CampaignRejected here: anything else is a wiring
                # mistake, kept in the DLQ where it shows.
                logger.error("not a CampaignRejected", extra={"detailType": detail.detail_type})
                raise PoisonMessage(f"{detail.detail_type} is not for the marketers")
            alerts.alert(detail, lease_until=until)

    # Failures are always answered per record, also when every record failed: the
    # invocation itself succeeded, and Lambda's Errors stay for functions that crash.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(
        event=event, record_handler=handle, processor=processor, context=context
    )


@functools.cache
def _alerts(settings: MarketersSettings) -> MarketersAlerts:
    return MarketersAlerts(
        ledger=DeliveryLedger(), topic=SnsTopicSender(), topic_arn=settings.marketers_topic_arn
    )


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return consume(event, context, _alerts(load_settings(MarketersSettings)))
