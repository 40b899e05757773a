"""Instants, clocks, windows and campaign days."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from functions.core import clock
from functions.core.clock import (
    CLOCK_OFFSET_ENV,
    FixedClock,
    Instant,
    SystemClock,
    TimeZoneName,
    Window,
    WindowStatus,
    deadline_after_days,
    format_instant,
    frozen_at,
    get_clock,
    instant_key,
    load_zone,
    local_date,
    parse_instant,
    set_clock,
    start_of_local_day,
    utc_now,
)
from functions.core.errors import BadRequest

TOKYO = "Asia/Tokyo"
NEW_YORK = "America/New_York"
ZONES = [
    "UTC",
    TOKYO,
    NEW_YORK,
    "Europe/London",
    "America/Santiago",  # changes clocks at midnight
    "America/Havana",  # changes clocks at midnight
    "Atlantic/Azores",  # falls back to a repeated midnight hour
    "Australia/Lord_Howe",  # 30-minute DST
    "Asia/Kolkata",  # half-hour offset, no DST
    "Pacific/Chatham",  # +12:45/+13:45
]

aware_offsets = st.sampled_from(
    [
        UTC,
        timezone(timedelta(hours=9)),
        timezone(timedelta(hours=-5, minutes=-30)),
        timezone(timedelta(hours=14)),
        ZoneInfo(NEW_YORK),
        ZoneInfo(TOKYO),
    ]
)
aware_datetimes = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=aware_offsets
)
utc_instants = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@pytest.fixture(autouse=True)
def _restore_clock() -> Any:
    previous = get_clock()
    yield
    set_clock(previous)


# -- clocks ----------------------------------------------------------------------------


def test_utc_now_is_aware_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CLOCK_OFFSET_ENV, raising=False)
    now = utc_now()
    assert now.tzinfo is UTC
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


def test_frozen_at_freezes_advances_and_restores() -> None:
    before = get_clock()
    instant = datetime(2027, 3, 1, 9, 0, tzinfo=ZoneInfo(TOKYO))
    with frozen_at(instant) as frozen:
        assert utc_now() == instant
        assert utc_now().tzinfo is UTC
        assert utc_now() == utc_now()
        frozen.advance(timedelta(days=2))
        assert utc_now() == instant + timedelta(days=2)
        frozen.set(datetime(2030, 1, 1, tzinfo=UTC))
        assert utc_now() == datetime(2030, 1, 1, tzinfo=UTC)
    assert get_clock() is before


def test_frozen_at_restores_after_an_exception() -> None:
    before = get_clock()
    with pytest.raises(RuntimeError), frozen_at(datetime(2027, 1, 1, tzinfo=UTC)):
        raise RuntimeError
    assert get_clock() is before


def test_set_clock_returns_the_previous_clock() -> None:
    fixed = FixedClock(datetime(2027, 1, 1, tzinfo=UTC))
    previous = set_clock(fixed)
    assert get_clock() is fixed
    assert set_clock(previous) is fixed


def test_a_naive_instant_cannot_freeze_the_clock() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FixedClock(datetime(2027, 1, 1))


def test_a_clock_returning_naive_time_is_refused() -> None:
    class Broken:
        def now(self) -> datetime:
            return datetime(2027, 1, 1)

    set_clock(Broken())
    with pytest.raises(ValueError, match="timezone-aware"):
        utc_now()


@pytest.mark.parametrize("offset", [86_400 * 30, -3600, 0])
def test_system_clock_adds_the_env_offset_read_at_call_time(
    monkeypatch: pytest.MonkeyPatch, offset: int
) -> None:
    system = SystemClock()  # created before the variable is set on purpose
    monkeypatch.setenv(CLOCK_OFFSET_ENV, str(offset))
    shifted = system.now() - datetime.now(UTC)
    assert abs(shifted - timedelta(seconds=offset)) < timedelta(seconds=5)
    monkeypatch.setenv(CLOCK_OFFSET_ENV, "")
    assert abs(system.now() - datetime.now(UTC)) < timedelta(seconds=5)


def test_utc_now_uses_the_env_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CLOCK_OFFSET_ENV, str(365 * 86_400))
    assert utc_now() - datetime.now(UTC) > timedelta(days=364)


def test_a_malformed_offset_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CLOCK_OFFSET_ENV, "1.5")
    with pytest.raises(ValueError, match=CLOCK_OFFSET_ENV):
        SystemClock().now()


def test_frozen_clock_wins_over_the_env_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CLOCK_OFFSET_ENV, "3600")
    instant = datetime(2027, 1, 1, tzinfo=UTC)
    with frozen_at(instant):
        assert utc_now() == instant


# -- RFC 3339 --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-03-01T00:00:00Z", datetime(2027, 3, 1, tzinfo=UTC)),
        ("2027-03-01T00:00:00+09:00", datetime(2027, 2, 28, 15, tzinfo=UTC)),
        ("2027-03-01T00:00:00-05:30", datetime(2027, 3, 1, 5, 30, tzinfo=UTC)),
        ("2027-03-01t00:00:00z", datetime(2027, 3, 1, tzinfo=UTC)),
        ("2027-03-01 00:00:00Z", datetime(2027, 3, 1, tzinfo=UTC)),
        ("2027-03-01T00:00:00-00:00", datetime(2027, 3, 1, tzinfo=UTC)),
        ("2027-03-01T00:00:00.5Z", datetime(2027, 3, 1, 0, 0, 0, 500_000, tzinfo=UTC)),
        ("2027-03-01T00:00:00.123456789Z", datetime(2027, 3, 1, 0, 0, 0, 123_456, tzinfo=UTC)),
        ("2028-02-29T23:59:59+00:00", datetime(2028, 2, 29, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_parse_instant_examples(text: str, expected: datetime) -> None:
    parsed = parse_instant(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "2027-03-01T00:00:00",  # naive
        "2027-03-01",
        "2027-03-01T00:00Z",
        "20270301T000000Z",
        "2027-03-01T00:00:00+0900",
        "2027-03-01T00:00:00+09",
        "2027-02-29T00:00:00Z",
        "2027-04-31T00:00:00Z",
        "2027-03-01T24:00:00Z",
        "2027-12-31T23:59:60Z",
        "2027-03-01T00:00:00+24:00",
        "2027-03-01T00:00:00+09:60",
        "0001-01-01T00:00:00+01:00",
        " 2027-03-01T00:00:00Z",
        "2027-03-01T00:00:00Z\n",
        "\uff12\uff10\uff12\uff17-03-01T00:00:00Z",  # full-width digits
        "",
        "yesterday",
    ],
)
def test_parse_instant_rejects_naive_and_malformed(text: str) -> None:
    with pytest.raises(BadRequest) as raised:
        parse_instant(text)
    assert raised.value.code == "invalid_instant"
    assert raised.value.status == 400


def test_parse_instant_rejects_non_strings() -> None:
    with pytest.raises(BadRequest):
        parse_instant(1_700_000_000)  # type: ignore[arg-type]


@given(aware_datetimes)
def test_format_then_parse_is_the_same_instant(instant: datetime) -> None:
    # Compared in UTC: Python never calls an ambiguous or imaginary local time (fold)
    # equal to an instant in another zone, even the very instant it stands for.
    expected = instant.astimezone(UTC)
    text = format_instant(instant)
    assert text.endswith("Z")
    assert parse_instant(text) == expected
    assert parse_instant(instant.isoformat()) == expected
    assert format_instant(parse_instant(text)) == text


@pytest.mark.parametrize(
    ("instant", "text"),
    [
        (datetime(2027, 3, 1, tzinfo=UTC), "2027-03-01T00:00:00Z"),
        (datetime(2027, 3, 1, 9, tzinfo=ZoneInfo(TOKYO)), "2027-03-01T00:00:00Z"),
        (datetime(2027, 3, 1, 0, 0, 0, 120_000, tzinfo=UTC), "2027-03-01T00:00:00.120000Z"),
    ],
)
def test_format_instant_examples(instant: datetime, text: str) -> None:
    assert format_instant(instant) == text


def test_format_instant_rejects_naive() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_instant(datetime(2027, 3, 1))


@given(utc_instants, utc_instants)
def test_instant_keys_sort_like_instants(a: datetime, b: datetime) -> None:
    assert (instant_key(a) < instant_key(b)) == (a < b)
    assert parse_instant(instant_key(a)) == a


class _Event(BaseModel):
    occurred_at: Instant


def test_instant_field_parses_normalises_and_serialises() -> None:
    event = _Event.model_validate({"occurred_at": "2027-03-01T09:00:00+09:00"})
    assert event.occurred_at == datetime(2027, 3, 1, tzinfo=UTC)
    assert event.occurred_at.tzinfo is UTC
    assert event.model_dump() == {"occurred_at": "2027-03-01T00:00:00Z"}
    assert json.loads(event.model_dump_json()) == {"occurred_at": "2027-03-01T00:00:00Z"}
    assert _Event.model_validate_json(event.model_dump_json()) == event


def test_instant_field_accepts_aware_datetimes_as_yaml_loaders_produce() -> None:
    event = _Event(occurred_at=datetime(2027, 3, 1, 9, tzinfo=ZoneInfo(TOKYO)))
    assert event.occurred_at == datetime(2027, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "value", ["2027-03-01T00:00:00", datetime(2027, 3, 1), 1_700_000_000, "soon", None]
)
def test_instant_field_rejects_naive_and_other_values(value: Any) -> None:
    with pytest.raises(ValidationError) as raised:
        _Event(occurred_at=value)
    assert raised.value.errors()[0]["loc"] == ("occurred_at",)


def test_instant_field_schema_is_a_date_time_string() -> None:
    schema = _Event.model_json_schema()["properties"]["occurred_at"]
    assert schema["type"] == "string"
    assert schema["format"] == "date-time"


# -- windows ---------------------------------------------------------------------------

START = datetime(2027, 3, 1, tzinfo=ZoneInfo(TOKYO))
END = datetime(2027, 4, 1, tzinfo=ZoneInfo(TOKYO))
WINDOW = Window(START, END)


def test_window_boundaries() -> None:
    tick = timedelta(microseconds=1)
    assert WINDOW.status_at(START - tick) is WindowStatus.NOT_STARTED
    assert WINDOW.status_at(START) is WindowStatus.OPEN
    assert WINDOW.status_at(END - tick) is WindowStatus.OPEN
    assert WINDOW.status_at(END) is WindowStatus.EXPIRED
    assert WINDOW.contains(START)
    assert not WINDOW.contains(END)


def test_window_is_normalised_to_utc() -> None:
    assert WINDOW.starts_at == datetime(2027, 2, 28, 15, tzinfo=UTC)
    assert WINDOW.starts_at.tzinfo is UTC
    assert WINDOW.ends_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("starts_at", "ends_at"),
    [(END, START), (START, START), (datetime(2027, 3, 1), END), (START, datetime(2027, 4, 1))],
)
def test_window_rejects_empty_reversed_and_naive(starts_at: datetime, ends_at: datetime) -> None:
    with pytest.raises(ValueError):
        Window(starts_at, ends_at)


def test_window_status_values_are_reason_codes() -> None:
    assert [status.value for status in WindowStatus] == ["not_started", "open", "expired"]


@st.composite
def windows(draw: st.DrawFn) -> Window:
    start = draw(aware_datetimes)
    length = draw(st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=400)))
    return Window(start, start + length)


TICK = timedelta(microseconds=1)


def instants_around(window: Window) -> st.SearchStrategy[datetime]:
    """Any instant, or one on an edge of `window` or one tick either side of it, in any
    of the zones: drawn independently of the window, an instant would almost never land
    on an edge, where an off-by-one comparison shows."""
    at_edges = st.builds(
        lambda edge, step, zone: (edge + step).astimezone(zone),
        st.sampled_from([window.starts_at, window.ends_at]),
        st.sampled_from([-TICK, timedelta(0), TICK]),
        aware_offsets,
    )
    return st.one_of(at_edges, aware_datetimes)


@given(windows(), st.data())
def test_exactly_one_status_holds(window: Window, data: st.DataObject) -> None:
    instant = data.draw(instants_around(window))
    status = window.status_at(instant)
    expected = {
        WindowStatus.NOT_STARTED: instant < window.starts_at,
        WindowStatus.OPEN: window.starts_at <= instant < window.ends_at,
        WindowStatus.EXPIRED: window.ends_at <= instant,
    }
    assert sum(expected.values()) == 1
    assert expected[status]
    assert window.contains(instant) == (status is WindowStatus.OPEN)


_ORDER = [WindowStatus.NOT_STARTED, WindowStatus.OPEN, WindowStatus.EXPIRED]


@given(windows(), st.data())
def test_status_is_monotone_in_time(window: Window, data: st.DataObject) -> None:
    a, b = data.draw(instants_around(window)), data.draw(instants_around(window))
    earlier, later = sorted([a, b])
    assert _ORDER.index(window.status_at(earlier)) <= _ORDER.index(window.status_at(later))


@given(windows(), aware_offsets)
def test_each_edge_and_its_neighbours_have_their_status(window: Window, zone: Any) -> None:
    def at(instant: datetime) -> WindowStatus:
        return window.status_at(instant.astimezone(zone))

    assert at(window.starts_at - TICK) is WindowStatus.NOT_STARTED
    assert at(window.starts_at) is WindowStatus.OPEN
    assert at(window.ends_at - TICK) is WindowStatus.OPEN
    assert at(window.ends_at) is WindowStatus.EXPIRED
    assert at(window.ends_at + TICK) is WindowStatus.EXPIRED
    # The shortest window (one tick) is open at its start only.
    expected_after_start = (
        WindowStatus.OPEN if window.ends_at - window.starts_at > TICK else (WindowStatus.EXPIRED)
    )
    assert at(window.starts_at + TICK) is expected_after_start


def test_window_refuses_naive_instants() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        WINDOW.status_at(datetime(2027, 3, 10))


# -- campaign days ---------------------------------------------------------------------


def test_tokyo_claim_window_example() -> None:
    purchased = datetime(2027, 3, 5, 23, 59, tzinfo=ZoneInfo(TOKYO))
    closes = deadline_after_days(purchased, 30, TOKYO)
    assert closes == datetime(2027, 4, 5, tzinfo=ZoneInfo(TOKYO))
    assert format_instant(closes) == "2027-04-04T15:00:00Z"
    # Any time on the local purchase day gives the same deadline, even when the UTC
    # date is the previous day (00:30 in Tokyo is 15:30Z the day before).
    early = datetime(2027, 3, 5, 0, 30, tzinfo=ZoneInfo(TOKYO))
    assert deadline_after_days(early, 30, TOKYO) == closes
    assert local_date(closes - timedelta(microseconds=1), TOKYO) == date(2027, 4, 4)


def test_zero_days_closes_at_the_end_of_the_local_day() -> None:
    instant = datetime(2027, 3, 5, 12, tzinfo=ZoneInfo(TOKYO))
    assert deadline_after_days(instant, 0, TOKYO) == datetime(2027, 3, 6, tzinfo=ZoneInfo(TOKYO))


@pytest.mark.parametrize("days", [-1, 1.5, True])
def test_days_must_be_a_non_negative_int(days: Any) -> None:
    with pytest.raises(ValueError, match="days"):
        deadline_after_days(START, days, TOKYO)


def test_new_york_spring_forward_day_is_23_hours() -> None:
    start = start_of_local_day(date(2027, 3, 14), NEW_YORK)
    next_start = start_of_local_day(date(2027, 3, 15), NEW_YORK)
    assert start == datetime(2027, 3, 14, 5, tzinfo=UTC)  # EST, UTC-5
    assert next_start == datetime(2027, 3, 15, 4, tzinfo=UTC)  # EDT, UTC-4
    assert next_start - start == timedelta(hours=23)


def test_new_york_fall_back_day_is_25_hours() -> None:
    start = start_of_local_day(date(2027, 11, 7), NEW_YORK)
    assert start == datetime(2027, 11, 7, 4, tzinfo=UTC)
    assert start_of_local_day(date(2027, 11, 8), NEW_YORK) - start == timedelta(hours=25)


def test_deadline_across_dst_is_local_midnight() -> None:
    # Bought 2027-03-10 in New York (EST); 7 days later the clocks are on EDT, and the
    # window still closes at local midnight, not an hour off.
    purchased = datetime(2027, 3, 10, 15, tzinfo=ZoneInfo(NEW_YORK))
    closes = deadline_after_days(purchased, 7, NEW_YORK)
    assert closes == datetime(2027, 3, 18, 4, tzinfo=UTC)
    assert closes.astimezone(ZoneInfo(NEW_YORK)).hour == 0


def test_a_day_whose_midnight_does_not_exist_starts_at_the_transition() -> None:
    # Santiago springs forward at 00:00 on 2027-09-05: local 00:00-00:59 never happens,
    # and the day begins at 01:00 -03, i.e. 04:00Z.
    start = start_of_local_day(date(2027, 9, 5), "America/Santiago")
    assert start == datetime(2027, 9, 5, 4, tzinfo=UTC)
    assert local_date(start, "America/Santiago") == date(2027, 9, 5)
    assert local_date(start - timedelta(microseconds=1), "America/Santiago") == date(2027, 9, 4)


@given(st.sampled_from(ZONES), st.dates(min_value=date(1990, 1, 1), max_value=date(2037, 12, 31)))
def test_start_of_local_day_is_the_first_instant_of_that_day(tz: str, day: date) -> None:
    start = start_of_local_day(day, tz)
    assert start.tzinfo is UTC
    assert local_date(start, tz) == day
    assert local_date(start - timedelta(microseconds=1), tz) == day - timedelta(days=1)


@given(st.sampled_from(ZONES), aware_datetimes, st.integers(min_value=0, max_value=400))
def test_deadline_is_a_local_midnight_days_plus_one_later(
    tz: str, instant: datetime, days: int
) -> None:
    closes = deadline_after_days(instant, days, tz)
    assert local_date(closes, tz) == local_date(instant, tz) + timedelta(days=days + 1)
    assert closes > instant


@pytest.mark.parametrize(
    "tz",
    [
        "Mars/Olympus_Mons",
        "",
        "../etc/passwd",
        "/etc/localtime",
        "localtime",
        "posixrules",
        "Factory",
        "right/UTC",
        "posix/Asia/Tokyo",
        "Asia",
        "Asia/",
        "asia/tokyo",
    ],
)
def test_unknown_time_zones_are_bad_requests(tz: str) -> None:
    with pytest.raises(BadRequest) as raised:
        load_zone(tz)
    assert raised.value.code == "invalid_timezone"
    with pytest.raises(BadRequest):
        local_date(START, tz)


def test_start_of_local_day_takes_a_date_not_a_datetime() -> None:
    with pytest.raises(TypeError):
        start_of_local_day(datetime(2027, 3, 1, tzinfo=UTC), TOKYO)


def test_time_zone_name_field() -> None:
    class Campaign(BaseModel):
        timezone: TimeZoneName

    assert Campaign(timezone=TOKYO).timezone == TOKYO
    with pytest.raises(ValidationError) as raised:
        Campaign(timezone="Asia/Nowhere")
    assert raised.value.errors()[0]["type"] == "invalid_timezone"


def test_module_exports_are_importable() -> None:
    for name in clock.__all__:
        assert hasattr(clock, name)
