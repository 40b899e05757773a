"""The wallet sweep: a scheduled rule (every 15 minutes) releases due lots, expires due
ones, then warns of the lots expiring a reminder day from today (`CashbackExpiring`, once
per lot and reminder day), through `WalletStore.sweep`.

The rule's event says nothing the sweep needs: it works from the clock (`utc_now`, which
the local cloud moves for demos) and from its own watermark, so a missed or a repeated
run is harmless: a run catches up on every day since the last one completed, and a lot's
state conditions move it once however often the sweep runs. A failed run is retried by
Lambda twice, then parked in the function's DLQ; the next scheduled run does the work
anyway.

Metrics: what moved (releases and expiries, counts and amounts by currency), the
warnings (`CashbackReminders`, and `CashbackRemindedAmount`: what would expire) and
`WalletSweepLag`, how long after its due instant the most overdue lot moved: a growing
lag means the sweep falls behind or stopped running.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.core.clock import utc_now
from functions.core.observability import (
    instrumented,
    logger,
    record_cashback_expired,
    record_cashback_released,
    record_cashback_reminded,
    record_sweep_lag,
)
from functions.wallet.dal import SweepReport, WalletStore

__all__ = ["handler", "sweep"]

store = WalletStore()


def sweep(wallet: WalletStore) -> SweepReport:
    """Run one sweep of `wallet` now and record what it moved."""
    report = wallet.sweep(now=utc_now())
    record_cashback_released(report.released, report.released_amount)
    record_cashback_expired(report.expired, report.expired_amount)
    record_cashback_reminded(report.reminded, report.reminded_amount)
    if report.lag_seconds is not None:
        record_sweep_lag(report.lag_seconds)
    logger.info("wallet swept", extra=_summary(report))
    return report


def _summary(report: SweepReport) -> dict[str, Any]:
    return {
        "released": report.released,
        "releasedAmount": report.released_amount,
        "expired": report.expired,
        "expiredAmount": report.expired_amount,
        "lagSeconds": report.lag_seconds,
        "reminded": report.reminded,
        "remindedAmount": report.reminded_amount,
    }


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _summary(sweep(store))
