"""What pages an operator: CloudWatch alarms, all notifying one SNS topic.

Every alarm fires on the first bad datapoint (threshold 0, one evaluation period) and
says what to do in its description; docs/operations.md explains each in full. An alarm
notifies again when it returns to OK, so whoever was paged knows it recovered.

Alarms are made where their subject is made, not listed here: `dead_letter_queue` in
resources.py gives every DLQ its depth alarm and `DomainFunction` gives every
event-driven function its errors alarm, so a new domain's queues and consumers are
watched without anyone remembering to.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

# A DLQ's depth is sampled every minute; anything there is a message that gave up.
QUEUE_PERIOD = Duration.minutes(1)
# Errors and 5xx: summed over five minutes, so one failure is enough and a burst pages once.
ERROR_PERIOD = Duration.minutes(5)
CLOUDWATCH = iam.ServicePrincipal("cloudwatch.amazonaws.com")
RUNBOOK = "docs/operations.md"


class Operators(Construct):
    """The operators' topic and the one way an alarm is made to notify it."""

    def __init__(self, scope: Construct, id: str, *, key: kms.Key) -> None:
        super().__init__(scope, id)
        self.topic = sns.Topic(
            self,
            "Topic",
            display_name="Rebates operators",
            master_key=key,
            enforce_ssl=True,
        )
        stack = Stack.of(self)
        # Alarms publish as CloudWatch itself: the topic's policy (which replaces SNS's
        # default one) and the topic's key must both let it, for this account's alarms.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[CLOUDWATCH],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{stack.partition}:cloudwatch:{stack.region}:"
                        f"{stack.account}:alarm:*"
                    },
                    "StringEquals": {"aws:SourceAccount": stack.account},
                },
            )
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[CLOUDWATCH],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                # In a key policy, "*" is this key.
                resources=["*"],
            )
        )
        self._action = actions.SnsAction(self.topic)

    def alarm_above_zero(
        self, scope: Construct, id: str, *, metric: cloudwatch.IMetric, description: str
    ) -> cloudwatch.Alarm:
        """An alarm as soon as `metric` is above zero, notifying the operators."""
        alarm = cloudwatch.Alarm(
            scope,
            id,
            metric=metric,
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            # No datapoint is no message, no error: healthy, not unknown.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{description} Runbook: {RUNBOOK}.",
        )
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        return alarm

    def watch_dead_letter_queue(self, queue: sqs.Queue, *, parks: str) -> cloudwatch.Alarm:
        """Page when anything waits in `queue`; `parks` says what ends up there."""
        return self.alarm_above_zero(
            queue,
            "DepthAlarm",
            metric=queue.metric_approximate_number_of_messages_visible(
                period=QUEUE_PERIOD, statistic=cloudwatch.Stats.MAXIMUM
            ),
            description=f"Messages wait in a dead-letter queue: {parks}. Read the cause "
            "(the function's log by correlation id), fix it, then redrive.",
        )
