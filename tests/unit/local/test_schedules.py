"""Firing a scheduled rule delivers to each of its targets the way EventBridge would."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from infra.local.schedules import Scheduler, UnknownSchedule


@dataclass
class Schedule:
    name: str
    logical_id: str
    schedule_expression: str
    bus_name: str
    targets: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Deliveries:
    invoked: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    sent: list[tuple[str, str]] = field(default_factory=list)
    started: list[tuple[str, str]] = field(default_factory=list)


def scheduler(schedules: list[Schedule], deliveries: Deliveries, offset: int = 0) -> Scheduler:
    def invoke(arn: str, event: dict[str, Any]) -> bool:
        deliveries.invoked.append((arn, event))
        return True

    def send(arn: str, body: str) -> None:
        deliveries.sent.append((arn, body))

    def start(arn: str, payload: str) -> str:
        deliveries.started.append((arn, payload))
        return "arn:execution"

    return Scheduler(
        schedules=list(schedules),
        account="123456789012",
        region="ap-northeast-1",
        clock_offset=lambda: offset,
        invoke_lambda=invoke,
        send_to_queue=send,
        start_execution=start,
    )


LAMBDA = "arn:aws:lambda:ap-northeast-1:123456789012:function:reminders"
QUEUE = "arn:aws:sqs:ap-northeast-1:123456789012:expiry"
MACHINE = "arn:aws:states:ap-northeast-1:123456789012:stateMachine:sweep"


def test_each_target_gets_the_scheduled_event_or_its_constant_input() -> None:
    deliveries = Deliveries()
    rule = Schedule(
        "rebates-reminders",
        "RemindersRule",
        "cron(0 0 * * ? *)",
        "default",
        [
            {"Id": "fn", "Arn": LAMBDA},
            {"Id": "q", "Arn": QUEUE, "Input": '{"kind": "expiry"}'},
            {"Id": "sm", "Arn": MACHINE},
        ],
    )
    result = scheduler([rule], deliveries).fire("RemindersRule")
    ((arn, event),) = deliveries.invoked
    assert arn == LAMBDA
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["resources"] == [
        "arn:aws:events:ap-northeast-1:123456789012:rule/rebates-reminders"
    ]
    assert deliveries.sent == [(QUEUE, '{"kind": "expiry"}')]
    assert json.loads(deliveries.started[0][1])["detail-type"] == "Scheduled Event"
    assert [t.outcome for t in result.targets] == ["invoked", "sent", "started arn:execution"]


def test_the_event_time_follows_the_local_clock() -> None:
    deliveries = Deliveries()
    rule = Schedule("r", "R", "rate(1 day)", "default", [{"Id": "fn", "Arn": LAMBDA}])
    now = scheduler([rule], deliveries).fire("r").time
    later = scheduler([rule], Deliveries(), offset=400 * 86_400).fire("r").time
    assert int(later[:4]) > int(now[:4])


def test_an_unknown_rule_names_the_known_ones() -> None:
    rule = Schedule("rebates-reminders", "R", "rate(1 day)", "default")
    with pytest.raises(UnknownSchedule, match="rebates-reminders"):
        scheduler([rule], Deliveries()).fire("nope")
