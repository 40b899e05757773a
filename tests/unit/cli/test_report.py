"""`rebates report`: the KPI tables in the terminal, and the HTML report with its charts.

The tables and the page are drawn from a stats body and the archive's figures written
out here, so a change of either shape breaks this test rather than a marketer's report.
One test runs the whole command: the stats from a stand-in API, the archive copied from
an S3 bucket (moto, in-process) and queried by DuckDB. The page is screenshotted by
headless Chromium, and each chart's box must hold its series' colours.
"""

from __future__ import annotations

import ast
import email.message
import gzip
import html.parser
import io
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import urllib.response
import warnings
from base64 import b64decode
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from PIL import Image, ImageChops
from rich.console import Console

import cli.report
from cli.main import main
from cli.report import (
    ATHENA_WORKGROUP,
    GLUE_DATABASE,
    ArchiveFigures,
    kpi_section,
    money_text,
    print_report,
    query_archive,
    report_days,
    run_report,
)
from cli.report_html import (
    CHARTS,
    PAGE_BACKGROUND,
    SERIES,
    WINDOW,
    attribution_chart,
    chart_box,
    font_family,
    render_html,
    write_report,
)
from cli.target import Target
from functions.analytics.queries import ChannelConversions, DayCounts, FunnelStep
from functions.analytics.records import STOREFRONT, TrackedEvent
from functions.core.tables import CAMPAIGNS
from tests.support.aws import aws_env, tables

__all__ = ["aws_env", "tables"]  # fixtures, found by name

ROOT = Path(__file__).resolve().parents[3]
API_URL = "http://127.0.0.1:3000"
API_KEY = "key-123"
CAMPAIGN = "spring-trail-2027"
NAME = "春のトレイル"
JAPANESE_CHANNEL = "メルマガ/email"


def money(amount: int) -> dict[str, Any]:
    return {"amount": amount, "currency": "JPY"}


# date, sessions, conversions, sales, rewards paid, discounts (the counters have no item
# for days without events: 03-03, 03-06 and 03-07 here).
COUNTED_DAYS = [
    ("2027-03-01", 120, 4, 48_000, 1_200, 2_000),
    ("2027-03-02", 150, 6, 72_000, 1_800, 3_000),
    ("2027-03-04", 90, 2, 24_000, 600, 1_000),
    ("2027-03-05", 200, 9, 108_000, 2_700, 4_500),
]
STATS: dict[str, Any] = {
    "campaignId": CAMPAIGN,
    "from": "2027-03-01",
    "to": "2027-03-07",
    "timezone": "Asia/Tokyo",
    "currency": "JPY",
    "impressions": 400,
    "sessions": 560,
    "conversions": 21,
    "conversionRate": 21 / 560,
    "codesIssued": 100,
    "redemptions": 30,
    "redemptionRate": 0.3,
    "claimsSubmitted": 5,
    "claimsApproved": 3,
    "claimsRejected": 1,
    "approvalRate": 0.75,
    "rewardsPaid": money(6_300),
    "discounts": money(10_500),
    "budgetUsed": money(16_800),
    "budget": {"limit": money(50_000), "rewardsUsed": 40, "rewardsLimit": 1_000},
    "totalSales": money(252_000),
    "orders": 21,
    "averageOrderValue": money(12_000),
    "newCustomers": 20,
    "costPerAcquisition": money(840),
    "bounceRate": 0.25,
    "pagesPerSession": 2.5,
    "averageSessionSeconds": 95.0,
    "funnel": [
        {"step": "offer_view", "sessions": 400, "rate": 1.0},
        {"step": "add_to_cart", "sessions": 120, "rate": 0.3},
        {"step": "checkout", "sessions": 40, "rate": 0.1},
        {"step": "purchase", "sessions": 21, "rate": 0.0525},
    ],
    "attribution": {
        "lastTouch": [
            {"channel": "google/cpc", "conversions": 12, "rewardsPaid": money(3_600)},
            {"channel": JAPANESE_CHANNEL, "conversions": 6, "rewardsPaid": money(1_800)},
            {"channel": "(direct)/(none)", "conversions": 3, "rewardsPaid": money(900)},
        ],
        "firstTouch": [
            {"channel": "google/cpc", "conversions": 10},
            {"channel": JAPANESE_CHANNEL, "conversions": 8},
            {"channel": "(direct)/(none)", "conversions": 3},
        ],
    },
    "goals": [
        {
            "metric": "conversions",
            "target": 100,
            "actual": 21,
            "share": 0.21,
            "daysLeft": 10,
            "neededPerDay": 7.9,
        },
        {
            "metric": "sales",
            "target": 1_000_000,
            "actual": 252_000,
            "share": 0.252,
            "daysLeft": 10,
            "neededPerDay": 74_800,
        },
    ],
    "days": [
        {
            "date": day,
            "sessions": sessions,
            "conversions": conversions,
            "sales": money(sales),
            "rewardsPaid": money(rewards),
            "discounts": money(discounts),
        }
        for day, sessions, conversions, sales, rewards, discounts in COUNTED_DAYS
    ],
}
# The archive's SQL disagrees with the counters by one add_to_cart, as a late event would.
FIGURES = ArchiveFigures(
    funnel=[
        FunnelStep("offer_view", 1, 400),
        FunnelStep("add_to_cart", 2, 119),
        FunnelStep("checkout", 3, 40),
        FunnelStep("purchase", 4, 21),
    ],
    attribution=[
        ChannelConversions("last_touch", "google/cpc", 12),
        ChannelConversions("last_touch", JAPANESE_CHANNEL, 6),
        ChannelConversions("last_touch", "(direct)/(none)", 3),
        ChannelConversions("first_touch", "google/cpc", 10),
        ChannelConversions("first_touch", JAPANESE_CHANNEL, 8),
        ChannelConversions("first_touch", "(direct)/(none)", 3),
    ],
    days=[
        DayCounts(date(2027, 3, day), sessions, conversions)
        for day, sessions, conversions in [
            (1, 120, 4),
            (2, 150, 6),
            (3, 0, 0),
            (4, 90, 2),
            (5, 200, 9),
            (6, 0, 0),
            (7, 0, 0),
        ]
    ],
    source="DuckDB over 3 archive objects (2.1 kB)",
)


def terminal(stats: Mapping[str, Any], figures: ArchiveFigures | None) -> str:
    out = io.StringIO()
    print_report(stats, figures, Console(file=out, width=160, color_system=None), name=NAME)
    return out.getvalue()


def cells(text: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is `first`."""
    for line in text.splitlines():
        parts = [part.strip() for part in line.split("│")]
        if len(parts) > 2 and parts[1] == first:
            return parts[1:-1]
    raise AssertionError(f"no row {first!r} in\n{text}")


# -- the terminal --------------------------------------------------------------------------


def test_the_kpis_show_each_goal_with_its_share_and_pace() -> None:
    text = terminal(STATS, FIGURES)
    assert text.splitlines()[0] == f"{NAME} ({CAMPAIGN}): 2027-03-01 to 2027-03-07 (JPY)"
    assert cells(text, "conversions") == [
        "conversions",
        "21",
        "100",
        "21.0%",
        "7.9/day for 10 days",
    ]
    assert cells(text, "total sales") == [
        "total sales",
        "252,000 JPY",
        "1,000,000 JPY",
        "25.2%",
        "74,800 JPY/day for 10 days",
    ]
    assert cells(text, "conversion rate") == ["conversion rate", "3.8%", "", "", ""]
    assert cells(text, "cost per acquisition")[1] == "840 JPY"
    assert cells(text, "average session")[1] == "95 s"
    assert cells(text, "budget used") == ["budget used", "16,800 JPY", "50,000 JPY", "33.6%", ""]
    assert cells(text, "rewards used") == ["rewards used", "40", "1,000", "4.0%", ""]


def test_the_funnel_shows_the_counters_beside_the_archive() -> None:
    text = terminal(STATS, FIGURES)
    assert cells(text, "offer_view") == ["offer_view", "400", "100.0%", "400", "100.0%"]
    assert cells(text, "add_to_cart") == ["add_to_cart", "120", "30.0%", "119", "29.8%"]
    assert cells(text, "purchase") == ["purchase", "21", "5.2%", "21", "5.2%"]
    assert "DuckDB over 3 archive objects (2.1 kB)" in text


def test_attribution_shows_both_models_both_sources_and_the_rewards() -> None:
    text = terminal(STATS, FIGURES)
    assert cells(text, "google/cpc") == ["google/cpc", "12", "12", "10", "10", "3,600 JPY"]
    assert cells(text, JAPANESE_CHANNEL) == [JAPANESE_CHANNEL, "6", "6", "8", "8", "1,800 JPY"]
    assert cells(text, "(direct)/(none)") == ["(direct)/(none)", "3", "3", "3", "3", "900 JPY"]


def test_every_day_of_the_range_is_listed_with_the_budget_spent_to_date() -> None:
    text = terminal(STATS, FIGURES)
    assert cells(text, "2027-03-01") == [
        "2027-03-01",
        "120",
        "120",
        "4",
        "4",
        "48,000 JPY",
        "1,200 JPY",
        "2,000 JPY",
        "3,200 JPY",
    ]
    # A day the counters have no item for is a day of zeros; the spend carries over.
    assert cells(text, "2027-03-03") == [
        "2027-03-03",
        "0",
        "0",
        "0",
        "0",
        "0 JPY",
        "0 JPY",
        "0 JPY",
        "8,000 JPY",
    ]
    assert cells(text, "2027-03-07")[-1] == "16,800 JPY"


def test_without_the_archive_its_columns_say_so() -> None:
    text = terminal(STATS, None)
    assert cells(text, "add_to_cart") == ["add_to_cart", "120", "30.0%", "-", "-"]
    assert cells(text, "2027-03-02")[:5] == ["2027-03-02", "150", "-", "6", "-"]
    assert "the archive was not read" in text
    days = report_days(STATS, None)
    assert [day.archive_sessions for day in days] == [None] * 7


def goal(metric: str, **fields: Any) -> dict[str, Any]:
    base = {"metric": metric, "daysLeft": 5, "neededPerDay": None, "share": 0.5}
    return {**base, **fields}


def test_the_pace_says_what_is_left_to_do() -> None:
    stats = {
        **STATS,
        "goals": [
            goal("conversions", target=10, actual=12, share=1.2, neededPerDay=0),
            goal("redemptions", target=50, actual=30, share=0.6, daysLeft=0, neededPerDay=0),
            goal("conversionRate", target=0.05, actual=0.0375, share=0.75),
            goal("costPerAcquisition", target=1_000, actual=840, share=1_000 / 840),
            goal("claimsApproved", target=9, actual=3, share=1 / 3, neededPerDay=1.2),
        ],
    }
    rows = {row[0]: row for row in kpi_section(stats).rows}
    assert rows["conversions"][2:] == ("10", "120.0%", "reached")
    assert rows["redemptions"][2:] == ("50", "60.0%", "ended short")
    assert rows["conversion rate"][2:] == ("5.0%", "75.0%", "5 days left")
    # A cost: under its target is reached (share above 1).
    assert rows["cost per acquisition"][2:] == ("1,000 JPY", "119.0%", "reached")
    assert rows["claims approved"][2:] == ("9", "33.3%", "1.2/day for 5 days")


def test_money_has_exactly_its_currency_s_decimals() -> None:
    assert money_text(1_234_567, "JPY") == "1,234,567 JPY"
    assert money_text(15_000, "USD") == "150.00 USD"
    assert money_text(-5, "KWD") == "-0.005 KWD"
    assert money_text(None, "JPY") == "-"


def test_the_queries_cover_the_campaign_s_local_days() -> None:
    class Recording:
        def __init__(self) -> None:
            self.calls: list[tuple[Any, ...]] = []

        def funnel(self, *window: Any) -> list[FunnelStep]:
            self.calls.append(("funnel", *window))
            return []

        def attribution(self, *window: Any) -> list[ChannelConversions]:
            self.calls.append(("attribution", *window))
            return []

        def daily(self, *window: Any) -> list[DayCounts]:
            self.calls.append(("daily", *window))
            return []

    archive = Recording()
    heard: list[str] = []
    figures = query_archive(archive, STATS, source="test", on_query=heard.append)  # type: ignore[arg-type]
    assert heard == ["funnel", "attribution", "daily"]
    assert figures.source == "test"
    start = int(datetime(2027, 2, 28, 15, tzinfo=UTC).timestamp() * 1000)  # 03-01 in Tokyo
    end = int(datetime(2027, 3, 7, 15, tzinfo=UTC).timestamp() * 1000)  # 03-08 in Tokyo
    window = (CAMPAIGN, start, end, date(2027, 1, 29), date(2027, 3, 9))
    assert archive.calls == [
        ("funnel", *window),
        ("attribution", *window),
        ("daily", *window, "Asia/Tokyo"),
    ]


def module_constants(path: Path) -> dict[str, Any]:
    """The module's top-level constants (`NAME: Final = "..."`), read without importing it."""
    constants: dict[str, Any] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            try:
                constants[node.target.id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return constants


def test_the_athena_names_are_the_stack_s() -> None:
    # Importing the construct would import the CDK: its text is enough.
    stack = module_constants(ROOT / "infra" / "constructs" / "analytics.py")
    assert stack["ATHENA_WORKGROUP_NAME"] == ATHENA_WORKGROUP
    assert stack["GLUE_DATABASE_NAME"] == GLUE_DATABASE


# -- the HTML ------------------------------------------------------------------------------


class Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.references: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.references += [value or "" for name, value in attrs if name in {"src", "href"}]


@pytest.fixture(scope="module")
def page() -> str:
    """The fixture's report page, rendered once for the tests that read it."""
    return render_html(STATS, FIGURES, name=NAME)


def test_the_html_needs_no_network(page: str) -> None:
    links = Links()
    links.feed(page)
    assert "script" not in links.tags and "link" not in links.tags
    assert links.tags.count("img") == len(CHARTS)
    assert links.references and all(
        ref.startswith("data:image/svg+xml;base64,") for ref in links.references
    )
    assert "@import" not in page and "url(" not in page.split("<body>", maxsplit=1)[0]
    for reference in links.references:
        svg = b64decode(reference.split(",", 1)[1]).decode("utf-8")
        # Inside each chart, links are to its own glyph and clip definitions only.
        for attribute in ("href", "src"):
            for piece in svg.split(f'{attribute}="')[1:]:
                assert piece.startswith("#"), piece[:60]
        assert "<script" not in svg and "<image" not in svg
    # The tables carry the figures too, and the Japanese name as text.
    assert f"<h1>{NAME} ({CAMPAIGN}): 2027-03-01 to 2027-03-07</h1>" in page
    assert "<td>add_to_cart</td><td>120</td><td>30.0%</td><td>119</td><td>29.8%</td>" in page


def test_the_same_report_gives_the_same_file(page: str, tmp_path: Path) -> None:
    written = write_report(STATS, FIGURES, tmp_path / "folder" / "report.html", name=NAME)
    assert written.read_text(encoding="utf-8") == page


def test_japanese_channels_are_drawn_with_a_japanese_font() -> None:
    if "Noto Sans CJK JP" not in font_family():
        pytest.fail("no Noto Sans CJK JP for matplotlib: run `make browser` (fonts-noto-cjk)")
    with warnings.catch_warnings():
        # matplotlib warns "Glyph ... missing from font(s)" for every glyph it drew as a box.
        warnings.simplefilter("error")
        svg = attribution_chart(STATS)
    assert svg.startswith("<?xml")


def test_a_campaign_with_nothing_yet_still_renders() -> None:
    empty = {
        **STATS,
        "funnel": [{"step": s, "sessions": 0, "rate": 0.0} for s in ("offer_view", "purchase")],
        "attribution": {"lastTouch": [], "firstTouch": []},
        "days": [],
        "goals": [],
        "budget": {"limit": None, "rewardsUsed": 0, "rewardsLimit": None},
    }
    page = render_html(empty, None)
    assert page.count("<img ") == len(CHARTS)
    assert "the archive was not read" in page


# -- the HTML in Chromium ------------------------------------------------------------------


def browser() -> str:
    found = shutil.which("chromium-headless-shell") or "/usr/bin/chromium-headless-shell"
    if not os.access(found, os.X_OK):
        pytest.fail(
            "chromium-headless-shell is not installed: run `make browser` "
            "(a dependency of `make test`) to install it with the CJK fonts"
        )
    fonts = subprocess.run(
        ["fc-list", ":lang=ja", "family"], capture_output=True, text=True, check=False
    )
    if not fonts.stdout.strip():
        pytest.fail("no Japanese font is installed: run `make browser` (fonts-noto-cjk)")
    return found


@pytest.fixture(scope="module")
def screenshot(page: str, tmp_path_factory: pytest.TempPathFactory) -> Image.Image:
    binary = browser()
    root = tmp_path_factory.mktemp("report")
    document = root / "report.html"
    document.write_text(page, encoding="utf-8")
    picture = root / "report.png"
    done = subprocess.run(
        [
            binary,
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--force-device-scale-factor=1",
            f"--user-data-dir={root / 'profile'}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            f"--screenshot={picture}",
            document.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if not picture.exists():
        pytest.fail(f"no screenshot of the report: exit {done.returncode}\n{done.stderr[-2000:]}")
    with Image.open(picture) as image:
        return image.convert("RGB")


def rgb(colour: str) -> tuple[int, int, int]:
    value = int(colour.lstrip("#"), 16)
    return value >> 16, (value >> 8) & 0xFF, value & 0xFF


def pixels_near(image: Image.Image, box: tuple[int, int, int, int], colour: str) -> int:
    """Pixels of `box` whose every channel is within 24 of `colour`."""
    area = image.crop(box)
    red, green, blue = ImageChops.difference(area, Image.new("RGB", area.size, rgb(colour))).split()
    furthest = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    return sum(furthest.histogram()[:25])


def ink(image: Image.Image, box: tuple[int, int, int, int]) -> int:
    grey = image.crop(box).convert("L")
    return sum(count for level, count in enumerate(grey.histogram()) if level < 140)


# What each chart draws in which colour, and how many pixels of it at least: bars cover
# thousands, a 2.5 px line across the box several hundred, a dashed line a few hundred.
EXPECTED = {
    "funnel": {"main": 5000, "archive": 5000},
    "daily": {"main": 5000, "second": 500},
    "attribution": {"main": 5000, "second": 5000},
    "budget": {"main": 500, "limit": 200},
}


@pytest.mark.parametrize("chart", CHARTS)
def test_each_chart_is_drawn_in_its_box(screenshot: Image.Image, chart: str) -> None:
    assert screenshot.size == WINDOW
    box = chart_box(chart)
    for series, least in EXPECTED[chart].items():
        found = pixels_near(screenshot, box, SERIES[series])
        assert found > least, f"{chart}: {found} pixels of {series} ({SERIES[series]})"
    # Axis labels and titles are text.
    assert ink(screenshot, box) > 1500, chart


def test_the_charts_keep_to_their_boxes(screenshot: Image.Image) -> None:
    _, top, right, _ = chart_box("funnel")
    beside, _, _, bottom = chart_box("daily")
    # The gutter between the columns and the page's right margin stay empty.
    background = rgb(PAGE_BACKGROUND)
    for gutter in ((right, top, beside, bottom), (WINDOW[0] - 18, top, WINDOW[0], bottom)):
        colours = screenshot.crop(gutter).getcolors()
        assert [colour for _, colour in colours or []] == [background], gutter
    # The header above the charts has the title.
    assert ink(screenshot, (0, 0, WINDOW[0], top)) > 2000


# -- the command ---------------------------------------------------------------------------


class StatsApi(urllib.request.HTTPHandler):
    """Answers every request with `status` and `body`, keeping the requests (no socket)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__()
        self.status = status
        self.body = body
        self.requests: list[urllib.request.Request] = []

    def http_open(self, request: urllib.request.Request) -> urllib.response.addinfourl:  # type: ignore[override]
        self.requests.append(request)
        headers = email.message.Message()
        headers["Content-Type"] = "application/json"
        response = urllib.response.addinfourl(
            io.BytesIO(json.dumps(self.body).encode()), headers, request.full_url, self.status
        )
        response.msg = "answer"  # type: ignore[attr-defined]
        return response

    def opener(self) -> urllib.request.OpenerDirector:
        return urllib.request.build_opener(self)


ARCHIVE_BUCKET = "rebates-archive"
# 2027-03-10 10:00 in Tokyo.
T0 = datetime(2027, 3, 10, 1, 0, tzinfo=UTC)


def event(kind: str, minutes: int, session: str, visitor: str, **fields: Any) -> TrackedEvent:
    at = int((T0 + timedelta(minutes=minutes)).timestamp() * 1000)
    return TrackedEvent(
        event_id=f"evt-{session}-{kind}",
        type=kind,
        source=STOREFRONT,
        occurred_ms=at,
        received_ms=at + 500,
        session_id=session,
        anonymous_id=visitor,
        campaign_id=CAMPAIGN,
        **fields,
    )


def archive_day() -> tuple[bytes, bytes]:
    """Two objects of 2027-03-10: the second gzip-compressed and repeating an event."""
    journey = [
        event("page_view", 0, "s1", "v1", utm_source="google", utm_medium="cpc"),
        event("offer_view", 1, "s1", "v1"),
        event("add_to_cart", 2, "s1", "v1"),
        event("checkout", 3, "s1", "v1"),
        event("purchase", 4, "s1", "v1", value=12_000, currency="JPY"),
        event("page_view", 10, "s2", "v2", utm_source="メルマガ", utm_medium="email"),
        event("offer_view", 11, "s2", "v2"),
        event("purchase", 12, "s2", "v2", value=8_000, currency="JPY"),
    ]
    later = [event("page_view", 20, "s3", "v3"), journey[4]]  # a redelivered purchase
    plain = b"".join(e.to_archive_line(None) for e in journey)
    return plain, gzip.compress(b"".join(e.to_archive_line(None) for e in later))


def day_stats() -> dict[str, Any]:
    """What the stats API answers for 2027-03-10 (the counters agree with the archive)."""
    funnel = [("offer_view", 2), ("add_to_cart", 1), ("checkout", 1), ("purchase", 1)]
    return {
        **STATS,
        "from": "2027-03-10",
        "to": "2027-03-10",
        "sessions": 3,
        "conversions": 2,
        "funnel": [{"step": step, "sessions": n, "rate": n / 2} for step, n in funnel],
        "attribution": {
            "lastTouch": [
                {"channel": "google/cpc", "conversions": 1, "rewardsPaid": money(600)},
                {"channel": JAPANESE_CHANNEL, "conversions": 1, "rewardsPaid": money(0)},
            ],
            "firstTouch": [
                {"channel": "google/cpc", "conversions": 1},
                {"channel": JAPANESE_CHANNEL, "conversions": 1},
            ],
        },
        "days": [
            {
                "date": "2027-03-10",
                "sessions": 3,
                "conversions": 2,
                "sales": money(20_000),
                "rewardsPaid": money(600),
                "discounts": money(500),
            }
        ],
    }


def local_target() -> Target:
    return Target(
        kind="local",
        outputs={
            "ApiUrl": f"{API_URL}/",
            "AwsEndpoint": "http://127.0.0.1:4566",
            "ArchiveBucketName": ARCHIVE_BUCKET,
        },
        region=os.environ["AWS_DEFAULT_REGION"],
        description="local cloud at http://127.0.0.1:4566",
        make_client=boto3.client,
        fetch_api_key=lambda: API_KEY,
    )


@pytest.fixture
def archive(tables: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The archive bucket with one day of events, and the campaign's item (its name)."""
    # The local cloud names tables `<Stack>-<LogicalId>-<suffix>`: ours keep their defaults.
    monkeypatch.setattr("cli.wallet.table_name", lambda target, spec: spec.default_name)
    s3 = boto3.client("s3")
    s3.create_bucket(
        Bucket=ARCHIVE_BUCKET,
        CreateBucketConfiguration={"LocationConstraint": os.environ["AWS_DEFAULT_REGION"]},
    )
    plain, compressed = archive_day()
    s3.put_object(Bucket=ARCHIVE_BUCKET, Key="events/dt=2027-03-10/part-1", Body=plain)
    s3.put_object(Bucket=ARCHIVE_BUCKET, Key="events/dt=2027-03-10/part-2", Body=compressed)
    # A day outside the range read (far past the lookback) is left where it is.
    s3.put_object(Bucket=ARCHIVE_BUCKET, Key="events/dt=2026-12-01/part-1", Body=plain)
    boto3.client("dynamodb").put_item(
        TableName=CAMPAIGNS.default_name,
        Item={"pk": {"S": f"CAMPAIGN#{CAMPAIGN}"}, "sk": {"S": "META"}, "name": {"S": NAME}},
    )


def test_the_report_reads_the_stats_and_the_archive(archive: None, tmp_path: Path) -> None:
    api = StatsApi(200, day_stats())
    out, err = io.StringIO(), io.StringIO()
    page = tmp_path / "reports" / "day.html"
    code = run_report(
        local_target(),
        CAMPAIGN,
        first=date(2027, 3, 10),
        last=date(2027, 3, 10),
        html=page,
        out=out,
        err=err,
        opener=api.opener(),
    )
    assert code == 0, err.getvalue()
    (request,) = api.requests
    url = urllib.parse.urlsplit(request.full_url)
    assert url.path == f"/v1/campaigns/{CAMPAIGN}/stats"
    assert urllib.parse.parse_qs(url.query) == {"from": ["2027-03-10"], "to": ["2027-03-10"]}
    assert request.get_header("X-api-key") == API_KEY
    text = out.getvalue()
    assert text.startswith(f"{NAME} ({CAMPAIGN}): 2027-03-10 to 2027-03-10")
    # DuckDB's figures from the two objects, the repeated purchase counted once.
    assert cells(text, "offer_view") == ["offer_view", "2", "100.0%", "2", "100.0%"]
    assert cells(text, "add_to_cart") == ["add_to_cart", "1", "50.0%", "1", "50.0%"]
    assert cells(text, "purchase") == ["purchase", "1", "50.0%", "1", "50.0%"]
    assert cells(text, "google/cpc") == ["google/cpc", "1", "1", "1", "1", "600 JPY"]
    assert cells(text, JAPANESE_CHANNEL) == [JAPANESE_CHANNEL, "1", "1", "1", "1", "0 JPY"]
    assert cells(text, "2027-03-10")[:5] == ["2027-03-10", "3", "3", "2", "2"]
    assert "DuckDB over 2 archive objects" in text
    assert f"wrote {page}" in err.getvalue()
    assert page.read_text(encoding="utf-8").count("<img ") == len(CHARTS)


def test_an_unreadable_archive_object_is_reported(archive: None) -> None:
    boto3.client("s3").put_object(
        Bucket=ARCHIVE_BUCKET, Key="events/dt=2027-03-10/part-3", Body=b"{not json\n"
    )
    err = io.StringIO()
    code = run_report(
        local_target(),
        CAMPAIGN,
        out=io.StringIO(),
        err=err,
        opener=StatsApi(200, day_stats()).opener(),
    )
    assert code == 1
    assert "error: cannot read the event archive: " in err.getvalue()


def test_an_empty_archive_gives_zeros_beside_the_counters(aws_env: None) -> None:
    from moto import mock_aws

    with mock_aws():
        boto3.client("s3").create_bucket(
            Bucket=ARCHIVE_BUCKET,
            CreateBucketConfiguration={"LocationConstraint": os.environ["AWS_DEFAULT_REGION"]},
        )
        out = io.StringIO()
        api = StatsApi(200, day_stats())
        code = run_report(local_target(), CAMPAIGN, out=out, err=io.StringIO(), opener=api.opener())
    assert code == 0
    text = out.getvalue()
    assert cells(text, "offer_view") == ["offer_view", "2", "100.0%", "0", "0.0%"]
    assert cells(text, "2027-03-10")[:5] == ["2027-03-10", "3", "0", "2", "0"]
    assert "DuckDB over 0 archive objects (0 B)" in text


def test_a_refusal_of_the_api_is_reported(archive: None) -> None:
    body = {"error": {"code": "campaign_not_found", "message": "no campaign nope"}}
    err = io.StringIO()
    code = run_report(
        local_target(), "nope", out=io.StringIO(), err=err, opener=StatsApi(404, body).opener()
    )
    assert code == 1
    assert err.getvalue() == "error: campaign nope: 404 campaign_not_found: no campaign nope\n"


def test_an_unreachable_api_is_reported(archive: None) -> None:
    class Refusing(urllib.request.HTTPHandler):
        def http_open(self, request: urllib.request.Request) -> Any:
            raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))

    err = io.StringIO()
    code = run_report(
        local_target(),
        CAMPAIGN,
        out=io.StringIO(),
        err=err,
        opener=urllib.request.build_opener(Refusing()),
    )
    assert code == 1
    assert err.getvalue().startswith(f"error: cannot reach {API_URL}/v1/campaigns/{CAMPAIGN}/stats")


# 2027-03-01 09:00 in Tokyo: the start of a quarter-hour slot of that local day.
SLOT_MS = str(int(datetime(2027, 3, 1, 0, tzinfo=UTC).timestamp() * 1000))
# What Athena answers to each SQL text of the report, told apart by its opening comment.
ATHENA_ANSWERS: dict[str, list[tuple[str, ...]]] = {
    "-- Funnel": [
        ("offer_view", "1", "400"),
        ("add_to_cart", "2", "119"),
        ("checkout", "3", "40"),
        ("purchase", "4", "21"),
    ],
    "-- Conversions": [("last_touch", "google/cpc", "12"), ("first_touch", "google/cpc", "10")],
    "-- Sessions": [(SLOT_MS, "7", "1")],
}


class Athena:
    """Answers each query of the report as Athena would: rows of text under a header."""

    def __init__(self) -> None:
        self.started: list[dict[str, Any]] = []

    def start_query_execution(self, **request: Any) -> dict[str, str]:
        self.started.append(request)
        return {"QueryExecutionId": f"q{len(self.started)}"}

    def get_query_execution(self, QueryExecutionId: str) -> dict[str, Any]:
        return {"QueryExecution": {"Status": {"State": "SUCCEEDED"}}}

    def get_paginator(self, name: str) -> Any:
        assert name == "get_query_results"
        athena = self

        class Pages:
            def paginate(self, QueryExecutionId: str) -> list[dict[str, Any]]:
                text = athena.started[int(QueryExecutionId[1:]) - 1]["QueryString"]
                (rows,) = [rows for head, rows in ATHENA_ANSWERS.items() if text.startswith(head)]
                header = [("column",) * len(rows[0])]
                data = [{"Data": [{"VarCharValue": v} for v in row]} for row in header + rows]
                return [{"ResultSet": {"Rows": data}}]

        return Pages()


def test_in_aws_athena_runs_the_queries_in_the_stack_s_workgroup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    athena = Athena()
    monkeypatch.setattr(cli.report, "campaign_name", lambda target, campaign_id: None)
    deployed = Target(
        kind="aws",
        outputs={"ApiUrl": "https://abc.execute-api.ap-northeast-1.amazonaws.com/prod"},
        region="ap-northeast-1",
        description="AWS stack Rebates",
        make_client=lambda service: {"athena": athena}[service],
        fetch_api_key=lambda: API_KEY,
    )

    class Gateway(StatsApi, urllib.request.HTTPSHandler):
        def https_open(self, request: urllib.request.Request) -> urllib.response.addinfourl:  # type: ignore[override]
            return self.http_open(request)

    out, err = io.StringIO(), io.StringIO()
    code = run_report(deployed, CAMPAIGN, out=out, err=err, opener=Gateway(200, STATS).opener())
    assert code == 0, err.getvalue()
    assert [request["WorkGroup"] for request in athena.started] == [ATHENA_WORKGROUP] * 3
    assert {request["QueryExecutionContext"]["Database"] for request in athena.started} == {
        GLUE_DATABASE
    }
    text = out.getvalue()
    assert cells(text, "add_to_cart") == ["add_to_cart", "120", "30.0%", "119", "29.8%"]
    assert cells(text, "google/cpc")[:5] == ["google/cpc", "12", "12", "10", "10"]
    assert cells(text, "2027-03-01")[:5] == ["2027-03-01", "120", "7", "4", "1"]
    assert f"Athena, workgroup {ATHENA_WORKGROUP}" in text
    assert "3/3" in err.getvalue()  # the progress bar counted the queries


def test_without_the_campaigns_table_the_title_is_the_id(aws_env: None) -> None:
    from moto import mock_aws

    with mock_aws():
        assert cli.report.campaign_name(local_target(), CAMPAIGN) is None


def test_the_command_is_wired(
    archive: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = StatsApi(200, day_stats())
    monkeypatch.setattr("cli.target.from_args", lambda args: local_target())
    monkeypatch.setattr("cli.report.default_opener", api.opener)
    page = tmp_path / "demo.html"
    argv = ["report", CAMPAIGN, "--from", "2027-03-10", "--to", "2027-03-10", "--html", str(page)]
    assert main(argv) == 0
    assert page.is_file()
    assert "2027-03-10 to 2027-03-10" in capsys.readouterr().out
    assert urllib.parse.urlsplit(api.requests[0].full_url).query == "from=2027-03-10&to=2027-03-10"
