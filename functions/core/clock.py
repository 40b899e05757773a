"""Instants, windows and campaign days.

Every instant in the system is an aware ``datetime`` in UTC. On the wire it is RFC 3339
with an offset (``Instant`` parses and formats it); a campaign's time zone matters only
for display and for counting "days" (claim windows, pending periods, reminders).

Handlers read the time through ``utc_now()``, never ``datetime.now()``, so that tests,
the demo and the local cloud can decide what "now" is for them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from enum import StrEnum
from typing import Annotated, Final, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, PlainSerializer, PlainValidator, StrictStr, WithJsonSchema
from pydantic_core import PydanticCustomError

from functions.core.errors import BadRequest

__all__ = [
    "CLOCK_OFFSET_ENV",
    "Clock",
    "FixedClock",
    "Instant",
    "SystemClock",
    "TimeZoneName",
    "Window",
    "WindowStatus",
    "deadline_after_days",
    "format_instant",
    "frozen_at",
    "get_clock",
    "instant_key",
    "load_zone",
    "local_date",
    "parse_instant",
    "set_clock",
    "start_of_local_day",
    "utc_now",
]

CLOCK_OFFSET_ENV: Final = "REBATES_CLOCK_OFFSET_SECONDS"

# -- clocks ---------------------------------------------------------------------------


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...


class SystemClock:
    """The machine's time, shifted by ``REBATES_CLOCK_OFFSET_SECONDS`` when that is set.

    The variable is read on every call, not at import: the local cloud and the demo jump
    the time their in-process handlers see (past a claim window, say) after those are
    imported. Nothing sets it in AWS.
    """

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=_offset_seconds())


def _offset_seconds() -> int:
    raw = os.environ.get(CLOCK_OFFSET_ENV, "").strip()
    if not raw:
        return 0
    try:
        return int(raw)
    except ValueError:
        # A typo here would silently run handlers at the wrong time; fail loudly instead.
        raise ValueError(
            f"{CLOCK_OFFSET_ENV} must be an integer number of seconds, got {raw!r}"
        ) from None


class FixedClock:
    """A clock that stands still until told to move: for tests and replays."""

    def __init__(self, instant: datetime) -> None:
        self._instant = _require_aware(instant, "FixedClock instant").astimezone(UTC)

    def now(self) -> datetime:
        return self._instant

    def advance(self, delta: timedelta) -> datetime:
        """Move forward (or back, with a negative delta) and return the new instant."""
        self._instant += delta
        return self._instant

    def set(self, instant: datetime) -> None:
        self._instant = _require_aware(instant, "FixedClock instant").astimezone(UTC)


# A plain module global rather than a ContextVar: the local cloud runs handlers on
# moto's server threads, and a new thread starts with an empty context, so a ContextVar
# set by the demo would not be seen by the handlers it drives.
_clock: Clock = SystemClock()


def get_clock() -> Clock:
    return _clock


def set_clock(clock: Clock) -> Clock:
    """Make ``clock`` the process-wide clock; returns the previous one to restore later."""
    global _clock
    previous, _clock = _clock, clock
    return previous


@contextmanager
def frozen_at(instant: datetime) -> Iterator[FixedClock]:
    """Freeze ``utc_now()`` at ``instant`` inside the block; the clock is yielded to advance."""
    clock = FixedClock(instant)
    previous = set_clock(clock)
    try:
        yield clock
    finally:
        set_clock(previous)


def utc_now() -> datetime:
    """The current instant as the handlers must see it: aware, in UTC."""
    return _require_aware(_clock.now(), "clock.now()").astimezone(UTC)


# -- RFC 3339 -------------------------------------------------------------------------

# RFC 3339 section 5.6 date-time: the offset is mandatory, and so is the colon in it.
# Python's fromisoformat is far more lenient (dates alone, basic format, no offset), so
# the shape is checked here first.
_RFC3339: Final = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})[Tt ]"
    r"(?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})(?:\.(?P<fraction>\d+))?"
    r"(?:(?P<utc>[Zz])|(?P<sign>[+-])(?P<off_hour>\d{2}):(?P<off_minute>\d{2}))",
    re.ASCII,
)


def parse_instant(text: str) -> datetime:
    """Parse an RFC 3339 date-time with an offset (``Z`` or ``+09:00``) into UTC.

    Fractions finer than a microsecond are truncated. A missing offset, a leap second
    or anything malformed raises ``BadRequest("invalid_instant")``.
    """
    match = _RFC3339.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise BadRequest(
            "invalid_instant",
            "expected an RFC 3339 date-time with an offset, e.g. 2027-03-01T00:00:00+09:00",
            {"value": text if isinstance(text, str) else repr(text)},
        )
    parts = match.groupdict()
    if parts["utc"]:
        offset = UTC
    else:
        minutes = int(parts["off_hour"]) * 60 + int(parts["off_minute"])
        if int(parts["off_minute"]) >= 60 or minutes >= 24 * 60:
            raise _bad_instant(text, "the offset is out of range")
        offset = timezone(timedelta(minutes=-minutes if parts["sign"] == "-" else minutes))
    fraction = (parts["fraction"] or "")[:6].ljust(6, "0")
    try:
        parsed = datetime(
            int(parts["year"]),
            int(parts["month"]),
            int(parts["day"]),
            int(parts["hour"]),
            int(parts["minute"]),
            int(parts["second"]),
            int(fraction),
            tzinfo=offset,
        )
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        # Day 31 of April, hour 24, second 60, or a year-1 instant west of UTC.
        raise _bad_instant(text, "no such date or time") from None


def _bad_instant(text: str, why: str) -> BadRequest:
    return BadRequest("invalid_instant", f"{text!r} is not a valid instant: {why}", {"value": text})


def format_instant(instant: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``: ``2027-03-01T00:00:00Z``, microseconds only if any.

    Not for sort keys: ``...:00.5Z`` sorts before ``...:00Z`` as text. Use ``instant_key``.
    """
    utc = _require_aware(instant, "format_instant").astimezone(UTC)
    spec = "microseconds" if utc.microsecond else "seconds"
    return utc.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def instant_key(instant: datetime) -> str:
    """Fixed-width UTC text that sorts as the instants do, for DynamoDB sort keys.

    ``2027-03-01T00:00:00.000000Z``; it still parses with ``parse_instant``.
    """
    utc = _require_aware(instant, "instant_key").astimezone(UTC)
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _validate_instant(value: object) -> datetime:
    if isinstance(value, datetime):
        # YAML loaders hand over datetimes for timestamps; the offset rule still holds.
        if value.tzinfo is None or value.utcoffset() is None:
            raise PydanticCustomError(
                "naive_instant", "the date-time needs an offset, e.g. Z or +09:00"
            )
        return value.astimezone(UTC)
    if isinstance(value, str):
        try:
            return parse_instant(value)
        except BadRequest as exc:
            raise PydanticCustomError("invalid_instant", exc.message) from None
    raise PydanticCustomError(
        "invalid_instant", "expected an RFC 3339 date-time string with an offset"
    )


# The field type for every instant in API bodies, event details and campaign files:
# RFC 3339 with an offset in, aware UTC datetime inside, ``format_instant`` text out
# (also from ``model_dump()``, so a dumped model is always JSON-ready).
Instant = Annotated[
    datetime,
    PlainValidator(_validate_instant),
    PlainSerializer(format_instant, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


# -- windows --------------------------------------------------------------------------


class WindowStatus(StrEnum):
    # The values double as error/reason codes: "not started" and "expired" are distinct
    # errors in the contract.
    NOT_STARTED = "not_started"
    OPEN = "open"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Window:
    """A half-open interval of time: open from ``starts_at`` (included) to ``ends_at``
    (excluded). Both are normalised to UTC."""

    starts_at: datetime
    ends_at: datetime

    def __post_init__(self) -> None:
        # ValueError, not BadRequest: inside a pydantic validator it becomes a located
        # validation error (e.g. at "ends_at") instead of escaping it.
        starts_at = _require_aware(self.starts_at, "starts_at").astimezone(UTC)
        ends_at = _require_aware(self.ends_at, "ends_at").astimezone(UTC)
        if not starts_at < ends_at:
            raise ValueError(
                f"a window must start before it ends, got {format_instant(starts_at)} "
                f"to {format_instant(ends_at)}"
            )
        object.__setattr__(self, "starts_at", starts_at)
        object.__setattr__(self, "ends_at", ends_at)

    def status_at(self, instant: datetime) -> WindowStatus:
        _require_aware(instant, "instant")
        if instant < self.starts_at:
            return WindowStatus.NOT_STARTED
        if instant < self.ends_at:
            return WindowStatus.OPEN
        return WindowStatus.EXPIRED

    def contains(self, instant: datetime) -> bool:
        return self.status_at(instant) is WindowStatus.OPEN


# -- campaign days --------------------------------------------------------------------

# IANA names: "Asia/Tokyo", "America/Argentina/Buenos_Aires", "UTC", "Etc/GMT+9". The
# shape check keeps paths ("../x", "/etc/localtime") away from zoneinfo; the files below
# sit in the system zone directory but are not zones a campaign may use: "right/" zones
# count leap seconds (wrong for POSIX time), the rest are host settings or placeholders.
_ZONE_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*", re.ASCII)
_NOT_ZONES: Final = frozenset({"localtime", "posixrules", "Factory"})
_NOT_ZONE_DIRS: Final = frozenset({"right", "posix"})


def load_zone(tz: str) -> ZoneInfo:
    """The zone for an IANA name; an unknown name raises ``BadRequest("invalid_timezone")``."""
    if (
        isinstance(tz, str)
        and _ZONE_NAME.fullmatch(tz)
        and tz not in _NOT_ZONES
        and tz.partition("/")[0] not in _NOT_ZONE_DIRS
    ):
        try:
            return ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise BadRequest(
        "invalid_timezone",
        f"{tz!r} is not a known IANA time zone name, e.g. Asia/Tokyo",
        {"value": tz if isinstance(tz, str) else repr(tz)},
    )


def _check_zone_name(tz: str) -> str:
    try:
        load_zone(tz)
    except BadRequest as exc:
        raise PydanticCustomError("invalid_timezone", exc.message) from None
    return tz


# The field type for a campaign's ``timezone``: a located validation error, not a raw
# BadRequest escaping model validation.
TimeZoneName = Annotated[
    StrictStr,
    AfterValidator(_check_zone_name),
    WithJsonSchema({"type": "string", "description": "IANA time zone", "examples": ["Asia/Tokyo"]}),
]


def local_date(instant: datetime, tz: str) -> date:
    """The calendar date in ``tz`` at ``instant``."""
    return _require_aware(instant, "instant").astimezone(load_zone(tz)).date()


def start_of_local_day(day: date, tz: str) -> datetime:
    """The UTC instant at which ``day`` begins in ``tz``.

    That is local midnight, built in the zone and converted. Where a zone moves its
    clocks at midnight (America/Santiago, America/Havana, ...) and 00:00 does not exist,
    PEP 495's ``fold=0`` reading puts it at the transition, which is the first instant of
    that day; where 00:00 happens twice, ``fold=0`` is the earlier one. (A date that never
    existed at all, like Samoa's 2011-12-30, maps to the start of the next day.)
    """
    if isinstance(day, datetime) or not isinstance(day, date):
        # A datetime is a date too, and its time and zone would be silently dropped.
        raise TypeError(f"day must be a date, got {type(day).__name__}")
    midnight = datetime.combine(day, time(0), tzinfo=load_zone(tz))
    return midnight.astimezone(UTC)


def deadline_after_days(instant: datetime, days: int, tz: str) -> datetime:
    """When a window of ``days`` whole local days after ``instant``'s local date closes.

    The rule: the day of ``instant`` itself does not count; the window stays open through
    the ``days``-th following local day and closes at the start of the day after it. A
    purchase at any time on 2027-03-05 in Asia/Tokyo with 30 days is open through local
    2027-04-04 and closes at local 2027-04-05 00:00, i.e. 2027-04-04T15:00:00Z. ``days=0``
    closes at the end of the instant's own local day. Counting calendar days (not 24-hour
    periods) keeps DST days from shortening or lengthening a window by an hour.
    """
    if isinstance(days, bool) or not isinstance(days, int) or days < 0:
        raise ValueError(f"days must be a non-negative int, got {days!r}")
    closing_day = local_date(instant, tz) + timedelta(days=days + 1)
    return start_of_local_day(closing_day, tz)


def _require_aware(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        # A naive datetime would be read in the machine's zone, which on Lambda happens to
        # be UTC and on a laptop is not: refuse it everywhere so the bug shows up locally.
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}")
    return value
