"""The archive queries on DuckDB over a small archive whose answers are worked out by hand,
the Athena runner's requests, and the copy of the archive from S3.

The archive: campaign ``spring-trail-2027`` (Asia/Tokyo), report days 2027-03-10 and
2027-03-11, i.e. ``[2027-03-09 15:00Z, 2027-03-11 15:00Z)``; T = 2027-03-10 01:00Z.

Sessions of the campaign (visitor in brackets), funnel steps reached, and the conversion's
last / first touch:

- s1 (A): page view with google/cpc at T-5m, view T, cart T+10m (its line twice), a second
  view T+15m, checkout T+20m, purchase T+30m, a second purchase T+40m with tiktok utm.
  4 steps. Converts at
  T+30m: google/cpc / newsletter/email (T-10d, no campaign); facebook/social lies 1 ms
  outside the 30 days.
- s2 (B): view T+1h, cart T+2h, checkout T+26h (past 24 h of the view), purchase T+27h.
  2 steps. bing/cpc / bing/cpc, a touch exactly 30 days before.
- s3 (C): view 03-10 22:00Z, cart 03-11 00:30Z, checkout 01:00Z, purchase 02:00Z with utm
  affiliate and no medium, received a day late, in its own day's folder, gzipped. 4 steps.
  affiliate/(none) / instagram/social (T-2d, in another campaign's session).
- s4 (D): view T+5h, purchase T+6h (its line twice, plain and gzipped); a touch at T+7h,
  after it. 1 step. (direct)/(none) both.
- s5 (E): view 03-09 14:00Z (before the range), cart 16:00Z, purchase 17:00Z. No step:
  anchored before the range. (direct)/(none) both: the purchase is in the range.
- s6 (F): purchase 03-09 14:30Z (before the range), purchase T+1h (in it); google/cpc at
  T+50m. No step, no conversion: its first purchase is before the range.
- s8 (G): view and purchase at 03-11 15:00Z and 15:10Z, the range's end. Nothing.
- s9 (H): view T+4h, checkout T+4h10m (before any cart), cart T+4h20m, purchase T+4h30m;
  two touches at one instant T-1d: newsletter/email (event h-a), google/cpc (h-b).
  2 steps. google/cpc / newsletter/email (ties broken by event id).
- s10 (J): view T+8h, cart T+9h, checkout T+10h, purchase T+33h (past 24 h of the view).
  3 steps. (direct)/(none) both.
- s11 (M): view T+2h, cart T+27h (past 24 h of the view), checkout and purchase minutes
  later. 1 step. (direct)/(none) both.

Funnel: offer_view 7 (s1 s2 s3 s4 s9 s10 s11), add_to_cart 5 (s1 s2 s3 s9 s10), checkout
3 (s1 s3 s10), purchase 2 (s1 s3).
Last touch: (direct)/(none) 4, google/cpc 2, affiliate/(none) 1, bing/cpc 1.
First touch: (direct)/(none) 4, newsletter/email 2, bing/cpc 1, instagram/social 1.
Days (Tokyo; a session on its first event's day): 03-10 sessions 6 (s1 s2 s4 s9 s10 s11),
conversions 4 (s1 s4 s5 s9); 03-11 sessions 1 (s3), conversions 4 (s2 s3 s10 s11).
Besides: a domain purchase_recorded of the campaign, and another campaign's session.
"""

from __future__ import annotations

import gzip
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.athena.models import QueryResults, athena_backends

from functions.analytics.queries import (
    ARCHIVE_COLUMN_TYPES,
    ArchiveQueryError,
    AthenaArchive,
    ChannelConversions,
    DayCounts,
    DuckDbArchive,
    FunnelStep,
    ReportRange,
    athena_literal,
    download_archive,
    load_query,
)
from functions.analytics.records import ARCHIVE_COLUMNS, STOREFRONT, TrackedEvent
from tests.support.aws import aws_env

__all__ = ["aws_env"]

CAMPAIGN = "spring-trail-2027"
OTHER = "autumn-hike-2027"
ZONE = "Asia/Tokyo"
T = datetime(2027, 3, 10, 1, 0, tzinfo=UTC)
DAY = timedelta(days=1)
LOOKBACK = timedelta(days=30)
RANGE = ReportRange.of_local_days(date(2027, 3, 10), date(2027, 3, 11), ZONE)
ACCOUNT = "123456789012"
REGION = "ap-northeast-1"


def ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


def event(
    event_id: str,
    kind: str,
    at: datetime,
    *,
    session: str | None = None,
    visitor: str | None = None,
    campaign: str | None = CAMPAIGN,
    utm: str | None = None,
    received: datetime | None = None,
    value: int | None = None,
) -> TrackedEvent:
    """A storefront event; `utm` is ``source/medium`` or ``source`` alone."""
    source, _, medium = (utm or "").partition("/")
    return TrackedEvent(
        event_id=event_id,
        type=kind,
        source=STOREFRONT,
        occurred_ms=ms(at),
        received_ms=ms(received or at + timedelta(seconds=1)),
        session_id=session,
        anonymous_id=visitor,
        campaign_id=campaign,
        value=value,
        currency="JPY" if value is not None else None,
        utm_source=source or None,
        utm_medium=medium or None,
    )


def visit(session: str, visitor: str) -> dict[str, Any]:
    return {"session": session, "visitor": visitor}


S1, S2, S3, S4 = visit("s1", "A"), visit("s2", "B"), visit("s3", "C"), visit("s4", "D")
S5, S6, S8, S9 = visit("s5", "E"), visit("s6", "F"), visit("s8", "G"), visit("s9", "H")
S10, S11 = visit("s10", "J"), visit("s11", "M")
S2_CONVERSION = T + timedelta(hours=27)
S1_CONVERSION = T + timedelta(minutes=30)
S3_PURCHASE = datetime(2027, 3, 11, 2, 0, tzinfo=UTC)

EVENTS: list[TrackedEvent] = [
    # s1, visitor A
    event(
        "a-old",
        "page_view",
        S1_CONVERSION - LOOKBACK - timedelta(milliseconds=1),
        visitor="A",
        campaign=None,
        utm="facebook/social",
    ),
    event("a-mail", "page_view", T - 10 * DAY, visitor="A", campaign=None, utm="newsletter/email"),
    event("s1-page", "page_view", T - timedelta(minutes=5), **S1, utm="google/cpc"),
    event("s1-view", "offer_view", T, **S1),
    event("s1-cart", "add_to_cart", T + timedelta(minutes=10), **S1),
    event("s1-view-again", "offer_view", T + timedelta(minutes=15), **S1),
    event("s1-checkout", "checkout", T + timedelta(minutes=20), **S1),
    event("s1-buy", "purchase", S1_CONVERSION, **S1, value=12_000),
    event("s1-buy-again", "purchase", T + timedelta(minutes=40), **S1, utm="tiktok", value=3_000),
    # s2, visitor B: the checkout comes 25 h after the view
    event(
        "b-bing", "page_view", S2_CONVERSION - LOOKBACK, visitor="B", campaign=None, utm="bing/cpc"
    ),
    event("s2-view", "offer_view", T + timedelta(hours=1), **S2),
    event("s2-cart", "add_to_cart", T + timedelta(hours=2), **S2),
    event("s2-checkout", "checkout", T + timedelta(hours=26), **S2),
    event("s2-buy", "purchase", S2_CONVERSION, **S2, value=8_000),
    # visitor C's touch in another campaign's session
    event(
        "o-page",
        "page_view",
        T - 2 * DAY,
        session="o1",
        visitor="C",
        campaign=OTHER,
        utm="instagram/social",
    ),
    event(
        "o-view",
        "offer_view",
        T - 2 * DAY + timedelta(minutes=5),
        session="o1",
        visitor="C",
        campaign=OTHER,
    ),
    event(
        "o-buy",
        "purchase",
        T - 2 * DAY + timedelta(minutes=10),
        session="o1",
        visitor="C",
        campaign=OTHER,
        value=5_000,
    ),
    # s3, visitor C, across midnight UTC; the purchase arrives a day late
    event("s3-view", "offer_view", datetime(2027, 3, 10, 22, 0, tzinfo=UTC), **S3),
    event("s3-cart", "add_to_cart", datetime(2027, 3, 11, 0, 30, tzinfo=UTC), **S3),
    event("s3-checkout", "checkout", datetime(2027, 3, 11, 1, 0, tzinfo=UTC), **S3),
    event(
        "s3-buy",
        "purchase",
        S3_PURCHASE,
        **S3,
        utm="affiliate",
        value=9_500,
        received=S3_PURCHASE + DAY,
    ),
    # s4, visitor D: bought straight from the offer; a touch after the purchase
    event("s4-view", "offer_view", T + timedelta(hours=5), **S4),
    event("s4-buy", "purchase", T + timedelta(hours=6), **S4, value=4_000),
    event(
        "d-later", "page_view", T + timedelta(hours=7), visitor="D", campaign=None, utm="google/cpc"
    ),
    # s5, visitor E: viewed the offer before the range
    event("s5-view", "offer_view", datetime(2027, 3, 9, 14, 0, tzinfo=UTC), **S5),
    event("s5-cart", "add_to_cart", datetime(2027, 3, 9, 16, 0, tzinfo=UTC), **S5),
    event("s5-buy", "purchase", datetime(2027, 3, 9, 17, 0, tzinfo=UTC), **S5, value=2_000),
    # s6, visitor F: converted before the range
    event("s6-buy", "purchase", datetime(2027, 3, 9, 14, 30, tzinfo=UTC), **S6, value=1_000),
    event(
        "f-google",
        "page_view",
        T + timedelta(minutes=50),
        visitor="F",
        campaign=None,
        utm="google/cpc",
    ),
    event("s6-buy-again", "purchase", T + timedelta(hours=1), **S6, value=1_000),
    # s8, visitor G: at the range's end
    event("s8-view", "offer_view", datetime(2027, 3, 11, 15, 0, tzinfo=UTC), **S8),
    event("s8-buy", "purchase", datetime(2027, 3, 11, 15, 10, tzinfo=UTC), **S8, value=700),
    # s9, visitor H: steps out of order; two touches at one instant
    event("h-a", "page_view", T - DAY, visitor="H", campaign=None, utm="newsletter/email"),
    event("h-b", "page_view", T - DAY, visitor="H", campaign=None, utm="google/cpc"),
    event("s9-view", "offer_view", T + timedelta(hours=4), **S9),
    event("s9-checkout", "checkout", T + timedelta(hours=4, minutes=10), **S9),
    event("s9-cart", "add_to_cart", T + timedelta(hours=4, minutes=20), **S9),
    event("s9-buy", "purchase", T + timedelta(hours=4, minutes=30), **S9, value=6_000),
    # s10, visitor J: the purchase comes 25 h after the view
    event("s10-view", "offer_view", T + timedelta(hours=8), **S10),
    event("s10-cart", "add_to_cart", T + timedelta(hours=9), **S10),
    event("s10-checkout", "checkout", T + timedelta(hours=10), **S10),
    event("s10-buy", "purchase", T + timedelta(hours=33), **S10, value=5_500),
    # s11, visitor M: the cart comes 25 h after the view
    event("s11-view", "offer_view", T + timedelta(hours=2), **S11),
    event("s11-cart", "add_to_cart", T + timedelta(hours=27), **S11),
    event("s11-checkout", "checkout", T + timedelta(hours=27, minutes=10), **S11),
    event("s11-buy", "purchase", T + timedelta(hours=27, minutes=20), **S11, value=3_300),
    # the system's own record of s1's order: not a storefront event
    TrackedEvent(
        event_id="dom-1",
        type="purchase_recorded",
        source="rebates.offers",
        occurred_ms=ms(S1_CONVERSION),
        received_ms=ms(S1_CONVERSION) + 900,
        campaign_id=CAMPAIGN,
        order_id="o-1",
        value=12_000,
        currency="JPY",
    ),
]
BY_ID = {record.event_id: record for record in EVENTS}
REPLAYED = ("s1-cart", "s4-buy")
LATE = ("s3-buy",)

FUNNEL = [
    FunnelStep("offer_view", 1, 7),
    FunnelStep("add_to_cart", 2, 5),
    FunnelStep("checkout", 3, 3),
    FunnelStep("purchase", 4, 2),
]
ATTRIBUTION = [
    ChannelConversions("last_touch", "(direct)/(none)", 4),
    ChannelConversions("last_touch", "google/cpc", 2),
    ChannelConversions("last_touch", "affiliate/(none)", 1),
    ChannelConversions("last_touch", "bing/cpc", 1),
    ChannelConversions("first_touch", "(direct)/(none)", 4),
    ChannelConversions("first_touch", "newsletter/email", 2),
    ChannelConversions("first_touch", "bing/cpc", 1),
    ChannelConversions("first_touch", "instagram/social", 1),
]
DAYS = [DayCounts(date(2027, 3, 10), 6, 4), DayCounts(date(2027, 3, 11), 1, 4)]


def dt_of(record: TrackedEvent) -> str:
    return datetime.fromtimestamp(record.occurred_ms / 1000, UTC).date().isoformat()


def archive_objects(events: Iterable[TrackedEvent]) -> dict[str, bytes]:
    """Object keys and bodies as Firehose leaves them: per day one plain object, the
    replays again in a gzipped object, the late event in a gzipped object of its own
    written the next day (no ``.gz`` in its name, as a delivery stream may leave it)."""
    plain: dict[str, list[bytes]] = defaultdict(list)
    objects: dict[str, bytes] = {}
    for record in events:
        line = record.to_archive_line(None)
        folder = f"events/dt={dt_of(record)}"
        if record.event_id in LATE:
            objects[f"{folder}/EventsArchive-late-{record.event_id}"] = gzip.compress(line)
            continue
        plain[folder].append(line)
        if record.event_id in REPLAYED:
            objects[f"{folder}/EventsArchive-replay-{record.event_id}.gz"] = gzip.compress(line)
    for folder, lines in plain.items():
        objects[f"{folder}/EventsArchive-1-part"] = b"".join(lines)
    return objects


def write_archive(root: Path, events: Iterable[TrackedEvent]) -> Path:
    """The archive laid out locally; gzipped objects carry ``.gz`` here, as
    `download_archive` names them."""
    for key, body in archive_objects(events).items():
        path = root / key
        if body.startswith(b"\x1f\x8b") and not key.endswith(".gz"):
            path = path.with_name(path.name + ".gz")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return root


def window() -> tuple[str, int, int, date, date]:
    return CAMPAIGN, RANGE.start_ms, RANGE.end_ms, RANGE.first_dt, RANGE.last_dt


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[DuckDbArchive]:
    with DuckDbArchive(write_archive(tmp_path, EVENTS)) as opened:
        yield opened


# -- the range ------------------------------------------------------------------------------


def test_report_range_spans_the_local_days_and_reads_the_lookback() -> None:
    assert RANGE.start_ms == ms(datetime(2027, 3, 9, 15, 0, tzinfo=UTC))
    assert RANGE.end_ms == ms(datetime(2027, 3, 11, 15, 0, tzinfo=UTC))
    assert (RANGE.first_dt, RANGE.last_dt) == (date(2027, 2, 7), date(2027, 3, 13))


def test_the_archive_holds_what_the_table_says() -> None:
    objects = archive_objects(EVENTS)
    folders = {key.rsplit("/", 1)[0] for key in objects}
    assert "events/dt=2027-02-08" in folders  # the touch 1 ms outside the lookback
    assert "events/dt=2027-03-11" in folders
    assert "events/dt=2027-03-11/EventsArchive-late-s3-buy" in objects


# -- DuckDB -------------------------------------------------------------------------------


def test_funnel_counts_each_session_at_each_step_it_reached(archive: DuckDbArchive) -> None:
    assert archive.funnel(*window()) == FUNNEL


def test_attribution_credits_each_conversion_once_per_model(archive: DuckDbArchive) -> None:
    assert archive.attribution(*window()) == ATTRIBUTION


def test_daily_adds_slots_up_into_campaign_local_days(archive: DuckDbArchive) -> None:
    assert archive.daily(*window(), timezone=ZONE) == DAYS


def test_days_follow_a_zone_a_quarter_hour_off_the_hour(tmp_path: Path) -> None:
    """Kathmandu is UTC+05:45: its 2027-03-11 starts at 03-10 18:15Z, so a session at
    18:20Z is on the 11th and one at 18:10Z on the 10th."""
    kathmandu = ReportRange.of_local_days(date(2027, 3, 10), date(2027, 3, 11), "Asia/Kathmandu")
    late = datetime(2027, 3, 10, 18, 20, tzinfo=UTC)
    events = [
        event("k1-view", "offer_view", late - timedelta(minutes=10), session="k1", visitor="K"),
        event("k2-view", "offer_view", late, session="k2", visitor="L"),
        event("k2-buy", "purchase", late + timedelta(minutes=5), session="k2", visitor="L"),
    ]
    with DuckDbArchive(write_archive(tmp_path, events)) as archive:
        days = archive.daily(
            CAMPAIGN,
            kathmandu.start_ms,
            kathmandu.end_ms,
            kathmandu.first_dt,
            kathmandu.last_dt,
            timezone="Asia/Kathmandu",
        )
    assert days == [DayCounts(date(2027, 3, 10), 1, 0), DayCounts(date(2027, 3, 11), 1, 1)]


def test_replays_change_nothing(tmp_path: Path) -> None:
    """Every event written twice more, in other objects: the same answers."""
    root = write_archive(tmp_path, EVENTS)
    for key, body in archive_objects(EVENTS).items():
        copy = root / f"{key}-replayed-twice.gz"
        copy.write_bytes(
            gzip.compress(gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body) * 2
        )
    with DuckDbArchive(root, load=True) as replayed:
        assert replayed.connection.execute("SELECT count(*) FROM events").fetchone() == (
            3 * (len(EVENTS) + len(REPLAYED)),
        )
        assert replayed.funnel(*window()) == FUNNEL
        assert replayed.attribution(*window()) == ATTRIBUTION
        assert replayed.daily(*window(), timezone=ZONE) == DAYS


def test_the_dt_range_bounds_what_is_read(archive: DuckDbArchive) -> None:
    """Read from 2027-02-09 on, visitor B's touch of 2027-02-09 still counts; from
    2027-02-10 on it is not read and B's conversion is direct."""
    campaign, start, end, _, last = window()
    assert dt_of(BY_ID["b-bing"]) == "2027-02-09"
    shorter = archive.attribution(campaign, start, end, date(2027, 2, 10), last)
    assert ChannelConversions("last_touch", "bing/cpc", 1) not in shorter
    assert ChannelConversions("last_touch", "(direct)/(none)", 5) in shorter
    assert archive.attribution(campaign, start, end, date(2027, 2, 9), last) == ATTRIBUTION


def test_a_campaign_without_events_has_empty_steps_and_no_channels(
    archive: DuckDbArchive,
) -> None:
    _, start, end, first, last = window()
    assert [
        step.sessions for step in archive.funnel("no-such-campaign", start, end, first, last)
    ] == [0, 0, 0, 0]
    assert archive.attribution("no-such-campaign", start, end, first, last) == []


def test_an_empty_archive_answers_with_zeros(tmp_path: Path) -> None:
    with DuckDbArchive(tmp_path) as empty:
        assert [step.sessions for step in empty.funnel(*window())] == [0, 0, 0, 0]
        assert empty.attribution(*window()) == []
        assert empty.daily(*window(), timezone=ZONE) == [
            DayCounts(date(2027, 3, 10), 0, 0),
            DayCounts(date(2027, 3, 11), 0, 0),
        ]


def test_columns_are_read_with_their_declared_types(archive: DuckDbArchive) -> None:
    described = archive.connection.execute("DESCRIBE events").fetchall()
    assert {row[0]: row[1] for row in described} == {**ARCHIVE_COLUMN_TYPES, "dt": "VARCHAR"}
    assert tuple(ARCHIVE_COLUMN_TYPES) == ARCHIVE_COLUMNS


@pytest.mark.parametrize(
    ("campaign", "start", "end", "first"),
    [
        ("x' OR '1'='1", 0, 1, date(2027, 1, 1)),
        ("", 0, 1, date(2027, 1, 1)),
        (CAMPAIGN, True, 1, date(2027, 1, 1)),
        (CAMPAIGN, -1, 1, date(2027, 1, 1)),
        (CAMPAIGN, 5, 4, date(2027, 1, 1)),
        (CAMPAIGN, 0, 1, "2027-01-01"),
        (CAMPAIGN, 0, 1, datetime(2027, 1, 1, tzinfo=UTC)),
    ],
)
def test_bad_parameters_are_refused_before_any_engine(
    archive: DuckDbArchive, campaign: Any, start: Any, end: Any, first: Any
) -> None:
    with pytest.raises(ValueError):
        archive.funnel(campaign, start, end, first, date(2027, 3, 1))


# -- Athena -------------------------------------------------------------------------------


def canned(rows: list[list[str | None]], header: list[str]) -> QueryResults:
    def cells(values: list[str | None]) -> dict[str, Any]:
        return {"Data": [{} if v is None else {"VarCharValue": v} for v in values]}

    return QueryResults(
        rows=[cells(list[str | None](header)), *(cells(row) for row in rows)],
        column_info=[{"Name": name, "Type": "varchar"} for name in header],
    )


def test_athena_runs_the_same_text_with_literal_parameters(aws_env: None) -> None:
    with mock_aws():
        client = boto3.client("athena")
        client.create_work_group(Name="rebates-analytics", Configuration={})
        backend = athena_backends[ACCOUNT][REGION]
        backend.query_results_queue.append(
            canned(
                [[s.step, str(s.position), str(s.sessions)] for s in reversed(FUNNEL)],
                ["step", "position", "sessions"],
            )
        )
        athena = AthenaArchive(
            workgroup="rebates-analytics", database="rebates_archive", client=client
        )
        assert athena.funnel(*window()) == FUNNEL
        (execution,) = backend.executions.values()
    assert execution.query == load_query("funnel").text
    assert execution.workgroup is not None and execution.workgroup.name == "rebates-analytics"
    assert execution.context == {"Database": "rebates_archive"}  # type: ignore[comparison-overlap]
    assert execution.execution_parameters == [
        "'2027-02-07'",
        "'2027-03-13'",
        "'spring-trail-2027'",
        str(RANGE.start_ms),
        str(RANGE.end_ms),
    ]


class FakeAthena:
    """A client whose query stays in `states` order, then gives `pages` of results."""

    def __init__(self, states: list[str], pages: list[list[list[str | None]]]) -> None:
        self.states = states
        self.pages = pages
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def start_query_execution(self, **request: Any) -> dict[str, Any]:
        self.calls.append(("start_query_execution", request))
        return {"QueryExecutionId": "q-1"}

    def get_query_execution(self, **request: Any) -> dict[str, Any]:
        self.calls.append(("get_query_execution", request))
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        status: dict[str, Any] = {"State": state}
        if state == "FAILED":
            status["StateChangeReason"] = "Query exhausted resources at this scale factor"
        return {"QueryExecution": {"Status": status}}

    def stop_query_execution(self, **request: Any) -> dict[str, Any]:
        self.calls.append(("stop_query_execution", request))
        return {}

    def get_paginator(self, operation: str) -> Any:
        assert operation == "get_query_results"
        pages = self.pages

        class Paginator:
            def paginate(self, **request: Any) -> Iterator[dict[str, Any]]:
                for rows in pages:
                    data = [
                        {"Data": [{} if v is None else {"VarCharValue": v} for v in r]}
                        for r in rows
                    ]
                    yield {"ResultSet": {"Rows": data}}

        return Paginator()


def test_athena_reads_every_page_and_drops_only_the_header() -> None:
    pages: list[list[list[str | None]]] = [
        [["model", "channel", "conversions"], ["last_touch", "google/cpc", "2"]],
        [["first_touch", "newsletter/email", "2"], ["last_touch", "(direct)/(none)", "3"]],
    ]
    athena = AthenaArchive(workgroup="wg", database="db", client=FakeAthena(["SUCCEEDED"], pages))
    assert athena.attribution(*window()) == [
        ChannelConversions("last_touch", "(direct)/(none)", 3),
        ChannelConversions("last_touch", "google/cpc", 2),
        ChannelConversions("first_touch", "newsletter/email", 2),
    ]


def test_a_failed_athena_query_raises_with_its_reason() -> None:
    athena = AthenaArchive(
        workgroup="wg",
        database="db",
        client=FakeAthena(["RUNNING", "FAILED"], []),
        sleep=lambda _: None,
    )
    with pytest.raises(ArchiveQueryError, match="failed: Query exhausted resources"):
        athena.funnel(*window())


def test_an_athena_query_past_its_time_is_stopped() -> None:
    now = [0.0]
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        now[0] += seconds

    client = FakeAthena(["RUNNING"], [])
    athena = AthenaArchive(
        workgroup="wg",
        database="db",
        client=client,
        timeout_seconds=10.0,
        sleep=sleep,
        clock=lambda: now[0],
    )
    with pytest.raises(ArchiveQueryError, match="still running after 10 s: stopped"):
        athena.funnel(*window())
    assert client.calls[-1] == ("stop_query_execution", {"QueryExecutionId": "q-1"})
    # Polls back off to the longest pause; the one that would overrun the deadline is not taken.
    assert pauses == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0]


def test_athena_literals_quote_text_and_keep_integers() -> None:
    assert athena_literal("it's") == "'it''s'"
    assert athena_literal(1_772_323_200_000) == "1772323200000"
    with pytest.raises(TypeError):
        athena_literal(True)
    with pytest.raises(TypeError):
        athena_literal(1.5)


# -- the copy from S3 ---------------------------------------------------------------------


def test_download_copies_the_dt_range_and_duckdb_reads_it(aws_env: None, tmp_path: Path) -> None:
    objects = archive_objects(EVENTS)
    # Outside the range asked: must not be copied.
    objects["events/dt=2027-01-01/EventsArchive-1-part"] = BY_ID["s1-buy"].to_archive_line(None)
    objects["errors/processing-failed/EventsArchive-x"] = b"not json"
    seen: list[tuple[int, int]] = []
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="archive", CreateBucketConfiguration={"LocationConstraint": REGION})
        for key, body in objects.items():
            s3.put_object(Bucket="archive", Key=key, Body=body)
        root = download_archive(
            "archive",
            RANGE.first_dt,
            RANGE.last_dt,
            tmp_path / "copy",
            client=s3,
            progress=lambda done, total: seen.append((done, total)),
        )
    copied = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert "events/dt=2027-03-11/EventsArchive-late-s3-buy.gz" in copied
    assert not any("2027-01-01" in path or "errors" in path for path in copied)
    total = sum(
        len(body)
        for key, body in objects.items()
        if key.startswith("events/dt=2027-0") and "01-01" not in key
    )
    assert seen[0] == (0, total) and seen[-1] == (total, total)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    with DuckDbArchive(root) as copy:
        assert copy.funnel(*window()) == FUNNEL
        assert copy.attribution(*window()) == ATTRIBUTION
