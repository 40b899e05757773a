"""The offers' reminder sweep: a daily scheduled rule marks today's reminder on every
unused code whose offer has one due (`OfferStore.send_reminders`).

The sweep publishes nothing itself. Each reminder is a conditional write on the
customer's code issue (today's local day added to its set, refused if it is there
already), and the offers outbox announces `OfferExpiring` from that change on the
table's stream, with an ``eventId`` per code per day. So a sweep fired twice in a day
marks nothing the second time, and one that dies midway leaves each reminder it wrote
to be announced, and the rest to whichever run comes next that day.

The rule's event says nothing the sweep needs: it works from the clock (`utc_now`, which
the local cloud moves for demos). It stops `_TIME_IN_HAND` before its timeout and fails
the invocation (`RemindersUnfinished`), so that Lambda runs it again (twice, then the
DLQ) and the retry marks what is left; the errors alarm tells the operators a day's
reminders needed more than one run.

Metrics: `OfferReminders`, how many this run marked.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.core.clock import utc_now
from functions.core.observability import instrumented, logger, record_offer_reminders
from functions.offers.dal import OfferStore, ReminderReport

__all__ = ["RemindersUnfinished", "handler", "sweep"]

# Time kept back from the function's timeout: a reminder is one transaction, and a page of
# holders' uses one batch read, each well under a second.
_TIME_IN_HAND: Final = timedelta(seconds=20)

store = OfferStore()


class RemindersUnfinished(RuntimeError):
    """The sweep ran out of time with reminders left to mark; a retry marks them."""


def sweep(offers: OfferStore, context: LambdaContext | None = None) -> ReminderReport:
    """Run one sweep of `offers` now, stopping in time when `context` says how long is left."""
    margin_ms = _TIME_IN_HAND / timedelta(milliseconds=1)

    def out_of_time() -> bool:
        return context is not None and context.get_remaining_time_in_millis() < margin_ms

    report = offers.send_reminders(utc_now(), should_stop=out_of_time)
    record_offer_reminders(report.reminded)
    logger.info(
        "offer reminders marked",
        extra={"offers": report.offers, "reminded": report.reminded, "complete": report.complete},
    )
    return report


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = sweep(store, context)
    if not report.complete:
        raise RemindersUnfinished(
            f"{report.reminded} reminders marked before the time ran out; the retry goes on"
        )
    return {"offers": report.offers, "reminded": report.reminded}
