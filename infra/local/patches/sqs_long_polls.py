"""Long polls do not hold the gate.

`Queue.wait_for_messages(self, timeout)` releases the gate while a long-polling
ReceiveMessage waits, so `aws sqs receive-message --wait-time-seconds 20` or a poller
does not stall every other request into moto for that long; it also waits in 0.1 s
slices so a message made visible again is picked up promptly.
"""

from __future__ import annotations

from typing import Any, Final

from infra.local.patches.registry import Checks, Patch, current_runtime, original

_SQS: Final = "moto.sqs.models"

# moto's wait wakes on SendMessage only; a message becoming visible again (a retry
# after ChangeMessageVisibility, an expired visibility timeout) is noticed when the
# wait times out. receive_message loops until its own deadline anyway, so shorter
# waits change nothing but how soon such a message is picked up.
_LONG_POLL_SLICE_SECONDS: Final = 0.1


def _wait_for_messages(self: Any, timeout: int) -> None:
    from moto.sqs.models import Queue

    moto_own = original(Queue, "wait_for_messages")
    # receive_message only reads queue state again after this wait returns, so other
    # requests may run meanwhile.
    with current_runtime().gate.released():
        moto_own(self, min(timeout, _LONG_POLL_SLICE_SECONDS))


PATCH: Final = Patch(
    name="sqs_long_polls",
    checks=Checks(
        signatures=[(_SQS, "Queue", "wait_for_messages", ["self", "timeout"])],
        sources=[
            (
                _SQS,
                "SQSBackend",
                "receive_message",
                ("queue.wait_for_messages(",),
                "long polls release the gate",
            ),
        ],
    ),
    targets=[(_SQS, "Queue", "wait_for_messages", _wait_for_messages)],
)


def verify() -> None:
    """Raise `PatchError` naming what moved if moto no longer fits this patch."""
    PATCH.verify()
