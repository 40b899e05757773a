"""What both queue consumers share: reading an SQS message as an event
(`functions.core.envelopes`, re-exported), and the lease of the claims an invocation
makes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.core.clock import utc_now
from functions.core.envelopes import PoisonMessage, parse

__all__ = ["PoisonMessage", "lease_until", "parse"]

# Past the invocation's end: clocks of two Lambda hosts may differ by this much.
_LEASE_MARGIN: Final = timedelta(seconds=30)
# Without a Lambda context (a script): as long as a Lambda may run.
_DEFAULT_LEASE: Final = timedelta(minutes=15)


def lease_until(context: LambdaContext | None) -> datetime:
    """Until when this invocation's claims are held: past its own end, so a claim is only
    ever taken over from a sender that can no longer be running."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    lease = timedelta(milliseconds=remaining()) if callable(remaining) else _DEFAULT_LEASE
    return utc_now() + lease + _LEASE_MARGIN
