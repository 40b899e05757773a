"""CloudWatch alarms."""

from __future__ import annotations

from typing import Any, Final

from infra.local.deploy.core import DeployContext, pick, resource_name, tag_list
from infra.local.deploy.records import Deployed

_ALARM_FIELDS: Final = (
    "ActionsEnabled",
    "AlarmActions",
    "AlarmDescription",
    "ComparisonOperator",
    "DatapointsToAlarm",
    "Dimensions",
    "EvaluateLowSampleCountPercentile",
    "EvaluationPeriods",
    "ExtendedStatistic",
    "InsufficientDataActions",
    "MetricName",
    "Metrics",
    "Namespace",
    "OKActions",
    "Period",
    "Statistic",
    "Threshold",
    "ThresholdMetricId",
    "TreatMissingData",
    "Unit",
)


def deploy_alarm(context: DeployContext, logical_id: str, properties: dict[str, Any]) -> Deployed:
    name = resource_name(context, logical_id, properties.get("AlarmName"), limit=255)
    request = {"AlarmName": name, **pick(properties, *_ALARM_FIELDS)}
    if "Tags" in properties:
        request["Tags"] = tag_list(properties)
    context.client("cloudwatch").put_metric_alarm(**request)
    return Deployed(name, {"Arn": context.arn("cloudwatch", f"alarm:{name}")})
