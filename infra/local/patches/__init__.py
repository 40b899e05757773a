"""Every change the local cloud makes to moto's behaviour, and a check that it still fits.

moto 5.2.5 is pinned because these reach into private members. Each module is one
patch, with a `verify()` that raises `PatchError`, naming the patch and what moved,
when a moto upgrade breaks what it relies on; `verify()` here lists every patch's
problems at once (tests/unit/local/test_patches.py fails loudly on any).

- `lambda_invocations`: every Lambda invocation runs the real handler in-process.
- `sqs_long_polls`: a long-polling ReceiveMessage releases the gate while it waits.
- `step_functions_time`: Wait states and Retry intervals on a time scale.
- `step_functions_heartbeats`: a missed heartbeat is `States.HeartbeatTimeout`, as in AWS.
- `dynamodb_transactions`: TransactWriteItems backs up only the items it writes.
- `transaction_tokens`: TransactWriteItems honours ClientRequestToken (local cloud only).
- `s3_delete_notifications`: versioned deletes notify as S3 does.
- `s3_notifications`: S3 notifications reach Lambda asynchronously, after the request.
- `s3_post_policy`: browser POST uploads are held to their signed policy.
- `firehose_partitioning`: Firehose's S3 delivery partitions (dt=) and compresses (GZIP).
- `event_source_mappings`: SQS, table stream and Kinesis mappings detached for the local pollers.
- `moto_server`: what the local cloud's moto server relies on (no replacement).

`apply()` installs every patch until `revert()`. The cost and delete patches are also
for plain `mock_aws` tests and benchmarks, without a local cloud:
`patch_dynamodb_transactions()` and `patch_s3_delete_notifications()` install them for
the rest of the process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from infra.local.patches import (
    dynamodb_transactions,
    event_source_mappings,
    firehose_partitioning,
    lambda_invocations,
    moto_server,
    registry,
    s3_delete_notifications,
    s3_notifications,
    s3_post_policy,
    sqs_long_polls,
    step_functions_heartbeats,
    step_functions_time,
    transaction_tokens,
)
from infra.local.patches.dynamodb_transactions import patch_dynamodb_transactions
from infra.local.patches.event_source_mappings import (
    detach_kinesis_source,
    detach_sqs_event_source,
    detach_table_stream_source,
)
from infra.local.patches.registry import (
    PINNED_MOTO_VERSION,
    Patch,
    PatchError,
    active_runtime,
    problems_of,
)
from infra.local.patches.s3_delete_notifications import patch_s3_delete_notifications
from infra.local.patches.step_functions_time import (
    set_step_functions_time_scale,
    step_functions_time_scale,
)

if TYPE_CHECKING:
    from infra.local.lambdas import LambdaRuntime

__all__ = [
    "PATCHES",
    "PINNED_MOTO_VERSION",
    "PatchError",
    "active_runtime",
    "apply",
    "detach_kinesis_source",
    "detach_sqs_event_source",
    "detach_table_stream_source",
    "patch_dynamodb_transactions",
    "patch_s3_delete_notifications",
    "revert",
    "set_step_functions_time_scale",
    "step_functions_time_scale",
    "verify",
]

# In the order apply() installs them (revert() undoes them in reverse).
PATCHES: Final[tuple[Patch, ...]] = (
    lambda_invocations.PATCH,
    sqs_long_polls.PATCH,
    step_functions_time.PATCH,
    step_functions_heartbeats.PATCH,
    dynamodb_transactions.PATCH,
    transaction_tokens.PATCH,
    s3_delete_notifications.PATCH,
    s3_notifications.PATCH,
    s3_post_policy.PATCH,
    firehose_partitioning.PATCH,
    event_source_mappings.PATCH,
    moto_server.PATCH,
)


def verify() -> list[str]:
    """What no longer matches the patches' expectations in the installed moto (empty: OK)."""
    return problems_of(PATCHES)


def apply(runtime: LambdaRuntime) -> None:
    """Route moto's Lambda invocations to `runtime` (and install the other patches).

    Nested applies stack: the latest runtime serves until its `revert()`.
    """
    registry.apply(runtime, PATCHES)


def revert() -> None:
    """Undo the latest `apply()`; the last one restores all that apply() patched.

    Patches installed for the rest of the process (`patch_dynamodb_transactions()`,
    `patch_s3_delete_notifications()`, also when called while applied) stay.
    """
    registry.revert(PATCHES)
