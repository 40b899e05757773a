"""S3 notifications reach Lambda after the request that made them, as S3 sends them.

moto's `notifications.send_event` calls `_invoke_awslambda(account_id, event_body,
fn_arn, region_name)` for each Lambda destination that matches, from inside PutObject,
CopyObject, CompleteMultipartUpload and DeleteObject: the request returns only when the
function has finished (a campaign file with 20,000 codes uploads in as long as the
loader takes), and the function's error is swallowed, with no retry and no DLQ. S3
hands the event to Lambda's asynchronous invocation instead. The replacement queues it
(`LambdaRuntime.invoke_async`, ordered by bucket and key), and the local cloud's
`async_invocations.AsyncInvocations` delivers it after the request returns, with
Lambda's retries, destinations and dead-letter queue.

SQS, SNS and EventBridge notifications are left to moto, which sends them in the
request: they only enqueue a message, as in AWS.
"""

from __future__ import annotations

from typing import Any, Final

from infra.local.async_invocations import s3_ordering_key
from infra.local.patches.registry import Checks, Patch, current_runtime

_S3_NOTIFICATIONS: Final = "moto.s3.notifications"


def _invoke_awslambda(account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
    current_runtime().invoke_async(fn_arn, event_body, ordering_key=s3_ordering_key(event_body))


PATCH: Final = Patch(
    name="s3_notifications",
    checks=Checks(
        signatures=[
            (
                _S3_NOTIFICATIONS,
                "",
                "_invoke_awslambda",
                ["account_id", "event_body", "fn_arn", "region_name"],
            ),
        ],
        sources=[
            (
                _S3_NOTIFICATIONS,
                "",
                "send_event",
                ("_invoke_awslambda(account_id, event_body, notification.arn, region_name)",),
                "every Lambda notification goes through the module's _invoke_awslambda",
            ),
            (
                _S3_NOTIFICATIONS,
                "",
                "_get_s3_event",
                ('"Records": [',),
                "the event is a dict of S3 records (its bucket and key order the queue)",
            ),
        ],
    ),
    targets=[(_S3_NOTIFICATIONS, "", "_invoke_awslambda", _invoke_awslambda)],
)


def verify() -> None:
    """Raise `PatchError` naming what moved if moto no longer fits this patch."""
    PATCH.verify()
