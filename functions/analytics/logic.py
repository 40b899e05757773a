"""Counting rules, pure: what one event does to its session and to the day's counters.

The definitions are the ones `docs/metrics.md` gives and the SQL over the archive
(`functions/analytics/sql/`) implements; where both define a figure (the funnel, the
attribution of conversions) they agree on the same events, in order.

- A session of a campaign is a ``(sessionId, campaignId)`` of storefront events. Its
  day is the campaign-local date of the first of its events the consumer reads, and
  the session's own counters (``sessions``, ``bounces``, ``session_ms`` and the funnel)
  go on that day; an event's own counters go on the event's day.
- A bounce is a session with exactly one page view: counted when the first page view
  arrives, taken back when a second one does.
- Session length is last event minus first event; the counter holds the sum, moved by
  however much each event stretches the session.
- The funnel is `FUNNEL`, anchored at the session's first ``offer_view``: each later
  step is reached by an event of its type at or after the step before it, within
  `FUNNEL_WINDOW_MS` of the anchor.
- A conversion is the session's first ``purchase``. It is attributed to the channels of
  the visitor's touches (events with ``utm``) within `LOOKBACK_MS` before it: the
  latest (last touch) and the earliest (first touch); none is `DIRECT`.
- Codes issued, redemptions and claims are counted from the domain's own events only:
  a storefront's ``redemption`` or ``claim_submitted`` is archived and moves its
  session, but the system's record of the redemption is the one that counts, once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Final

from functions.analytics.records import TrackedEvent

__all__ = [
    "DIRECT",
    "DOMAIN_COUNTERS",
    "FUNNEL",
    "FUNNEL_COUNTERS",
    "FUNNEL_WINDOW_MS",
    "LOOKBACK_MS",
    "UNATTRIBUTED",
    "Attribution",
    "Session",
    "SessionStep",
    "Touch",
    "advance",
    "attribute",
]

FUNNEL: Final = ("offer_view", "add_to_cart", "checkout", "purchase")
FUNNEL_COUNTERS: Final = tuple(f"funnel_{step}" for step in FUNNEL)
FUNNEL_WINDOW_MS: Final = 24 * 60 * 60 * 1000
LOOKBACK_MS: Final = 30 * 24 * 60 * 60 * 1000
DIRECT: Final = "(direct)/(none)"
# A reward paid to a customer none of whose conversions was seen (a rebate claimed for
# an in-store purchase, say).
UNATTRIBUTED: Final = "(unattributed)"

# The storefront event types whose own count is kept, by counter.
_EVENT_COUNTERS: Final = {
    "page_view": "page_views",
    "offer_view": "offer_views",
    "add_to_cart": "add_to_carts",
    "checkout": "checkouts",
    "purchase": "purchases",
    "signup": "signups",
}
# Domain event types, by the counter each moves by one.
DOMAIN_COUNTERS: Final = {
    "code_issued": "codes_issued",
    "redemption": "redemptions",
    "redemption_rolled_back": "redemptions_rolled_back",
    "claim_submitted": "claims_submitted",
    "claim_approved": "claims_approved",
    "claim_rejected": "claims_rejected",
    "cashback_credited": "rewards_credited",
    "cashback_reversed": "rewards_reversed",
}


@dataclass(frozen=True)
class Session:
    """What is kept of a session of a campaign; ``version`` None: not stored yet."""

    day: date
    first_ms: int
    last_ms: int
    page_views: int = 0
    funnel_step: int = 0
    anchor_ms: int | None = None
    reached_ms: int | None = None
    converted: bool = False
    version: int | None = None


@dataclass(frozen=True)
class SessionStep:
    """An event's effect: the session after it, and the counters it moves on the
    session's day and on the event's day."""

    session: Session
    session_day: dict[str, int] = field(default_factory=dict)
    event_day: dict[str, int] = field(default_factory=dict)
    converted: bool = False


def advance(session: Session | None, event: TrackedEvent, event_day: date) -> SessionStep:
    """The storefront `event` (of the session's campaign) applied to `session`."""
    at = event.occurred_ms
    on_session_day: dict[str, int] = {}
    on_event_day: dict[str, int] = {}
    if session is None:
        session = Session(day=event_day, first_ms=at, last_ms=at)
        on_session_day["sessions"] = 1
    else:
        stretch = max(0, at - session.last_ms) + max(0, session.first_ms - at)
        if stretch:
            on_session_day["session_ms"] = stretch
            session = replace(
                session, first_ms=min(session.first_ms, at), last_ms=max(session.last_ms, at)
            )
    counter = _EVENT_COUNTERS.get(event.type)
    if counter is not None:
        on_event_day[counter] = 1
    if event.type == "page_view":
        views = session.page_views + 1
        if views == 1:
            on_session_day["bounces"] = 1
        elif views == 2:
            on_session_day["bounces"] = -1
        session = replace(session, page_views=views)
    session, reached = _funnel(session, event)
    if reached is not None:
        on_session_day[reached] = 1
    converted = event.type == "purchase" and not session.converted
    if converted:
        session = replace(session, converted=True)
        on_event_day["conversions"] = 1
    return SessionStep(session, on_session_day, on_event_day, converted)


def _funnel(session: Session, event: TrackedEvent) -> tuple[Session, str | None]:
    step = session.funnel_step
    if step >= len(FUNNEL) or event.type != FUNNEL[step]:
        return session, None
    at = event.occurred_ms
    if step == 0:
        return replace(session, funnel_step=1, anchor_ms=at, reached_ms=at), FUNNEL_COUNTERS[0]
    anchor, reached = session.anchor_ms, session.reached_ms
    if anchor is None or reached is None or at < reached or at - anchor > FUNNEL_WINDOW_MS:
        return session, None
    return replace(session, funnel_step=step + 1, reached_ms=at), FUNNEL_COUNTERS[step]


@dataclass(frozen=True)
class Touch:
    at_ms: int
    event_id: str
    channel: str


@dataclass(frozen=True)
class Attribution:
    last_touch: str
    first_touch: str


def attribute(touches: Iterable[Touch], conversion_ms: int) -> Attribution:
    """The channels a conversion at `conversion_ms` is credited to, from the visitor's
    touches; those outside ``[conversion - LOOKBACK_MS, conversion]`` do not count."""
    eligible = [
        touch for touch in touches if conversion_ms - LOOKBACK_MS <= touch.at_ms <= conversion_ms
    ]
    if not eligible:
        return Attribution(DIRECT, DIRECT)
    latest = max(eligible, key=lambda touch: (touch.at_ms, touch.event_id))
    earliest = min(eligible, key=lambda touch: (touch.at_ms, touch.event_id))
    return Attribution(latest.channel, earliest.channel)
