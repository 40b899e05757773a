"""Scheduled rules, fired on demand: moto never fires a schedule by itself.

`fire` delivers what EventBridge Scheduler-style rules deliver at their time: the
"Scheduled Event" envelope (or the target's constant `Input`) to each target of the
rule, through the same paths AWS uses: a Lambda target runs its handler, an SQS target
gets a message, a state machine target starts an execution.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol


class ScheduleLike(Protocol):
    # Read-only members, so frozen dataclasses (the deployer's records) satisfy it.
    @property
    def name(self) -> str: ...
    @property
    def logical_id(self) -> str: ...
    @property
    def schedule_expression(self) -> str: ...
    @property
    def bus_name(self) -> str: ...
    @property
    def targets(self) -> list[dict[str, Any]]: ...


class UnknownSchedule(LookupError):
    pass


@dataclass
class FiredTarget:
    target_id: str
    arn: str
    outcome: str


@dataclass
class FireResult:
    rule: str
    time: str
    targets: list[FiredTarget] = field(default_factory=list)


def scheduled_event(
    rule_arn: str, *, account: str, region: str, offset_seconds: int
) -> dict[str, Any]:
    """The envelope a scheduled rule sends, stamped with the local cloud's clock."""
    at = datetime.now(UTC) + timedelta(seconds=offset_seconds)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


@dataclass
class Scheduler:
    """Fires the template's scheduled rules by name (rule name or logical id)."""

    schedules: list[ScheduleLike]
    account: str
    region: str
    clock_offset: Callable[[], int]
    invoke_lambda: Callable[[str, dict[str, Any]], bool]  # arn, event -> succeeded
    send_to_queue: Callable[[str, str], None]  # queue arn, body
    start_execution: Callable[[str, str], str]  # state machine arn, input -> execution arn

    def names(self) -> list[str]:
        return sorted(s.name for s in self.schedules)

    def find(self, name: str) -> ScheduleLike:
        for schedule in self.schedules:
            if name in {schedule.name, schedule.logical_id}:
                return schedule
        known = ", ".join(self.names()) or "none"
        raise UnknownSchedule(f"no scheduled rule named {name!r} (scheduled rules: {known})")

    def fire(self, name: str) -> FireResult:
        schedule = self.find(name)
        rule_arn = f"arn:aws:events:{self.region}:{self.account}:rule/{schedule.name}"
        if schedule.bus_name and schedule.bus_name != "default":
            rule_arn = (
                f"arn:aws:events:{self.region}:{self.account}:rule/"
                f"{schedule.bus_name}/{schedule.name}"
            )
        event = scheduled_event(
            rule_arn, account=self.account, region=self.region, offset_seconds=self.clock_offset()
        )
        result = FireResult(rule=schedule.name, time=event["time"])
        for target in schedule.targets:
            payload = target["Input"] if "Input" in target else json.dumps(event)
            arn = str(target["Arn"])
            service = arn.split(":")[2]
            if service == "lambda":
                ok = self.invoke_lambda(arn, json.loads(payload))
                outcome = "invoked" if ok else "function error"
            elif service == "sqs":
                self.send_to_queue(arn, payload)
                outcome = "sent"
            elif service == "states":
                outcome = f"started {self.start_execution(arn, payload)}"
            else:
                raise NotImplementedError(
                    f"scheduled target {arn}: no local delivery for {service}"
                )
            result.targets.append(FiredTarget(str(target.get("Id", "")), arn, outcome))
        return result
