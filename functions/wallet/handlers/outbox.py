"""The wallet outbox function: Wallet-table stream records in, wallet events out.

The table's event source mapping invokes it with batches of stream records, already
filtered to purchases, refunds and published ledger entries
(`functions.wallet.outbox.STREAM_FILTERS`); which record is which event is decided in
`functions.wallet.outbox`.

Publishing, failures and metrics are every outbox's (`functions.core.outbox.StreamOutbox`):
each record is published on its own, one that cannot be is reported in
``batchItemFailures`` (retried, then parked in the mapping's DLQ) and counted in
`OutboxPublishFailures` (service ``wallet``), and `OutboxLag` records how long after its
commit each event was published.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.core.observability import instrumented
from functions.core.outbox import StreamOutbox
from functions.core.settings import EventBusSettings, load_settings
from functions.wallet.outbox import WalletEvent, event_for


class Outbox(StreamOutbox):
    """Publishes the wallet event of each Wallet-table stream record."""

    subject = "wallet"

    def event_for(self, record: Mapping[str, Any]) -> WalletEvent | None:
        return event_for(record)


# One per container (and per environment, for the local cloud); the client is lazy.
_outbox = functools.cache(Outbox.on_bus)


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return _outbox(load_settings(EventBusSettings)).handle(event, context)
