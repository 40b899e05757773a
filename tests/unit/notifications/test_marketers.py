"""The marketers consumer through its handler, on moto's SNS: one alert per rejected file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from functions.core.event_types import CampaignRejected, ValidationIssue
from functions.core.settings import load_settings
from functions.notifications.handlers import marketers
from functions.notifications.models import NotificationRecord
from functions.notifications.senders import SnsTopicSender
from tests.unit.notifications.service_support import (
    CONTEXT,
    T0,
    Cloud,
    claim_approved,
    cloud,
    envelope,
    failed_ids,
    ids,
    sqs_batch,
)

__all__ = ["cloud", "ids"]

Ids = Callable[[str], str]


def rejected(event_id: str, campaign_id: str | None = "spring-2027") -> CampaignRejected:
    return CampaignRejected(
        eventId=event_id,
        occurredAt=T0,
        campaignId=campaign_id,
        fileKey="campaigns/spring-2027.yaml",
        errors=[
            ValidationIssue(path="reward.tiered[1].amount", message="must be positive"),
            ValidationIssue(path="ends_at", message="before starts_at"),
        ],
    )


def consume(*bodies: Any) -> list[str]:
    batch = sqs_batch(*(b if isinstance(b, str) else envelope(b) for b in bodies))
    return failed_ids(marketers.handler(batch, CONTEXT))


def alerts_for(cloud: Cloud, event_id: str) -> list[dict[str, Any]]:
    return [m for m in cloud.topic_messages() if event_id in m["message"]]


def test_a_rejected_file_alerts_the_marketers_once(cloud: Cloud, ids: Ids) -> None:
    event = rejected(ids("evt"))
    assert consume(event) == []
    assert consume(event, event) == []
    [alert] = alerts_for(cloud, event.eventId)
    assert "spring-2027" in alert["subject"]
    assert "reward.tiered[1].amount" in alert["message"]
    assert "before starts_at" in alert["message"]
    record = NotificationRecord.find(event.eventId, "topic", "campaign_rejected")
    assert record is not None
    assert record.status == "sent"


class FlakySns:
    def __init__(self, real: Any, *codes: str) -> None:
        self.real, self.codes = real, list(codes)

    def publish(self, **parameters: Any) -> Any:
        if self.codes:
            code = self.codes.pop(0)
            raise ClientError({"Error": {"Code": code, "Message": code}}, "Publish")
        return self.real.publish(**parameters)


def test_a_throttled_alert_comes_back_and_is_sent_once(
    cloud: Cloud, ids: Ids, monkeypatch: pytest.MonkeyPatch
) -> None:
    alerts = marketers._alerts(load_settings(marketers.MarketersSettings))
    monkeypatch.setattr(
        alerts, "topic", SnsTopicSender(FlakySns(SnsTopicSender().client, "Throttled"))
    )
    event = rejected(ids("evt"), campaign_id=None)
    batch = sqs_batch(envelope(event))
    assert failed_ids(marketers.handler(batch, CONTEXT)) == [batch["Records"][0]["messageId"]]
    assert alerts_for(cloud, event.eventId) == []
    assert consume(event) == []
    assert consume(event) == []
    assert len(alerts_for(cloud, event.eventId)) == 1


def test_anything_but_a_rejected_file_is_parked(cloud: Cloud, ids: Ids) -> None:
    stray = claim_approved(ids("cust"), ids("camp"), ids("evt"))
    batch = sqs_batch(envelope(stray), "{}", envelope(rejected(ids("evt"))))
    answer = marketers.handler(batch, CONTEXT)
    assert failed_ids(answer) == [r["messageId"] for r in batch["Records"][:2]]
