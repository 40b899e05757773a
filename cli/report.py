"""`rebates report CAMPAIGN_ID [--from DATE --to DATE] [--html FILE]`: how a campaign did.

Two sources, side by side, so that a marketer sees the figures and whether they agree:

- the KPIs from the counters: ``GET {ApiUrl}/v1/campaigns/{id}/stats?from=&to=`` with
  the storefront's API key (an output of the local cloud; read from API Gateway in AWS);
- the deep figures from SQL over the event archive (`functions.analytics.queries`): the
  funnel, conversions by channel and the daily sessions and conversions. Locally the
  archive objects of the range are copied out of the archive bucket into a temporary
  folder (a progress bar counts the bytes) and DuckDB reads them; in AWS Athena runs the
  same SQL texts on the Glue table (a progress bar counts the queries), unless
  ``--engine duckdb`` asks for the copy there too.

The terminal gets rich tables: the KPIs with each goal's target, the share reached and
the pace still needed; the funnel of the counters beside the archive's; attribution by
channel (last and first touch, with the rewards paid); and the figures of every day.
``--html`` writes the same tables and four charts into one self-contained file
(`cli.report_html`). The range is the one the stats answer for: the campaign's own
window up to today when ``--from``/``--to`` are left out.

Everything between the two reads is pure (`ReportDay`, `sections`): the demo and the
tests render a report from a stats body and `ArchiveFigures` without a cloud.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal, TextIO

from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from cli.target import Target, TargetUnavailable
from functions.analytics.queries import (
    ArchiveQueryError,
    AthenaArchive,
    ChannelConversions,
    DayCounts,
    DuckDbArchive,
    EventArchive,
    FunnelStep,
    ReportRange,
    downloaded_archive,
)
from functions.core.money import CURRENCY_EXPONENTS

__all__ = [
    "ATHENA_WORKGROUP",
    "GLUE_DATABASE",
    "ArchiveFigures",
    "ReportDay",
    "ReportError",
    "Section",
    "attribution_section",
    "campaign_name",
    "daily_section",
    "fetch_stats",
    "funnel_section",
    "kpi_section",
    "money_text",
    "percent",
    "print_report",
    "query_archive",
    "read_archive",
    "report_days",
    "report_range",
    "report_title",
    "run_report",
    "sections",
]

Engine = Literal["duckdb", "athena"]

# infra/constructs/analytics.py's ATHENA_WORKGROUP_NAME and GLUE_DATABASE_NAME, repeated
# because importing the construct imports the CDK; tests/unit/cli/test_report.py fails
# when the two differ.
ATHENA_WORKGROUP: Final = "rebates-analytics"
GLUE_DATABASE: Final = "rebates_analytics"
ARCHIVE_OUTPUT: Final = "ArchiveBucketName"
_REQUEST_SECONDS: Final = 30
# Wide enough for the daily table when the output is a file or a pipe (rich would
# otherwise assume 80 columns and squeeze the numbers).
_PIPE_WIDTH: Final = 160
DASH: Final = "-"

# The stats body's goal metrics, each beside the KPI row it measures.
_GOAL_ROWS: Final = {
    "conversions": "conversions",
    "totalSales": "sales",
    "conversionRate": "conversionRate",
    "redemptions": "redemptions",
    "claimsApproved": "claimsApproved",
    "costPerAcquisition": "costPerAcquisition",
}
_MONEY_GOALS: Final = frozenset({"sales", "costPerAcquisition"})
_CHANNEL_MODELS: Final = (("lastTouch", "last_touch"), ("firstTouch", "first_touch"))


class ReportError(RuntimeError):
    """The stats or the archive could not be read; the message says which and why."""


# -- the archive's figures -------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveFigures:
    """What the SQL over the archive found for the report's days, and how it was read."""

    funnel: Sequence[FunnelStep]
    attribution: Sequence[ChannelConversions]
    days: Sequence[DayCounts]
    source: str  # e.g. "DuckDB over 12 archive objects (3.4 MB)"


def report_range(stats: Mapping[str, Any]) -> ReportRange:
    """The instants and ``dt`` folders of the local days the stats answered for."""
    return ReportRange.of_local_days(
        date.fromisoformat(stats["from"]), date.fromisoformat(stats["to"]), stats["timezone"]
    )


def query_archive(
    archive: EventArchive,
    stats: Mapping[str, Any],
    *,
    source: str,
    on_query: Callable[[str], None] | None = None,
) -> ArchiveFigures:
    """The funnel, attribution and daily queries over `archive` for the stats' campaign
    and days; `on_query` hears each query's name once it has answered."""
    campaign_id = stats["campaignId"]
    span = report_range(stats)
    window = (campaign_id, span.start_ms, span.end_ms, span.first_dt, span.last_dt)
    done = on_query or (lambda name: None)
    funnel = archive.funnel(*window)
    done("funnel")
    attribution = archive.attribution(*window)
    done("attribution")
    days = archive.daily(*window, stats["timezone"])
    done("daily")
    return ArchiveFigures(funnel, attribution, days, source)


def read_archive(
    target: Target, stats: Mapping[str, Any], *, engine: Engine, console: Console
) -> ArchiveFigures:
    """The archive's figures for `stats`, read by `engine`, with a progress bar on
    `console` (bytes copied for DuckDB, queries answered for Athena)."""
    import duckdb  # for its errors: an archive object it cannot read

    try:
        if engine == "athena":
            return _athena_figures(target, stats, console)
        return _duckdb_figures(target, stats, console)
    except (ArchiveQueryError, BotoCoreError, ClientError, duckdb.Error) as error:
        raise ReportError(f"cannot read the event archive: {error}") from error


def _athena_figures(target: Target, stats: Mapping[str, Any], console: Console) -> ArchiveFigures:
    archive = AthenaArchive(
        workgroup=ATHENA_WORKGROUP, database=GLUE_DATABASE, client=target.client("athena")
    )
    with _progress(console, MofNCompleteColumn()) as bar:
        task = bar.add_task(f"Athena ({ATHENA_WORKGROUP})", total=3)
        return query_archive(
            archive,
            stats,
            source=f"Athena, workgroup {ATHENA_WORKGROUP}, table {GLUE_DATABASE}.events",
            on_query=lambda _: bar.advance(task),
        )


def _duckdb_figures(target: Target, stats: Mapping[str, Any], console: Console) -> ArchiveFigures:
    bucket = target.output(ARCHIVE_OUTPUT)
    span = report_range(stats)
    with _progress(console, DownloadColumn(), TransferSpeedColumn()) as bar:
        task = bar.add_task(f"archive {span.first_dt}..{span.last_dt}", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        with downloaded_archive(
            bucket, span.first_dt, span.last_dt, client=target.client("s3"), progress=progress
        ) as folder:
            files = [path for path in (folder / "events").rglob("*") if path.is_file()]
            size = sum(path.stat().st_size for path in files)
            bar.update(task, description=f"archive: {len(files)} objects")
            with DuckDbArchive(folder, load=True) as archive:
                return query_archive(
                    archive,
                    stats,
                    source=f"DuckDB over {len(files)} archive objects ({_size_text(size)})",
                )


@contextmanager
def _progress(console: Console, *columns: Any) -> Iterator[Progress]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        *columns,
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        yield bar


def _size_text(size: int) -> str:
    if size < 1000:
        return f"{size} B"
    scaled = float(size)  # a display figure, not money
    for unit in ("kB", "MB"):
        scaled /= 1000
        if scaled < 1000:
            return f"{scaled:.1f} {unit}"
    return f"{scaled / 1000:.1f} GB"


# -- the stats --------------------------------------------------------------------------------


def default_opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener()


def fetch_stats(
    target: Target,
    campaign_id: str,
    *,
    first: date | None = None,
    last: date | None = None,
    opener: urllib.request.OpenerDirector | None = None,
) -> dict[str, Any]:
    """The stats body of `campaign_id` for the local days `first`..`last` (the API's
    defaults for those left out); `ReportError` with the API's refusal otherwise."""
    query = urllib.parse.urlencode(
        {name: day.isoformat() for name, day in (("from", first), ("to", last)) if day}
    )
    url = f"{target.api_url}/v1/campaigns/{urllib.parse.quote(campaign_id, safe='')}/stats"
    url += f"?{query}" if query else ""
    request = urllib.request.Request(  # noqa: S310 - the target's own API URL
        url, headers={"x-api-key": target.api_key(), "Accept": "application/json"}
    )
    try:
        with (opener or default_opener()).open(request, timeout=_REQUEST_SECONDS) as response:
            payload = response.read()
    except urllib.error.HTTPError as error:
        raise ReportError(f"campaign {campaign_id}: {_refusal(error.code, error.read())}") from None
    except (urllib.error.URLError, OSError) as error:
        raise ReportError(f"cannot reach {url}: {getattr(error, 'reason', error)}") from error
    try:
        body = json.loads(payload)
    except ValueError as error:
        raise ReportError(f"{url} answered something other than JSON: {error}") from error
    if not isinstance(body, dict) or "campaignId" not in body:
        raise ReportError(f"{url} answered no stats body")
    return body


def _refusal(status: int, payload: bytes) -> str:
    try:
        document = json.loads(payload)
    except ValueError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("error"), dict):
        return f"{status} {document['error'].get('code')}: {document['error'].get('message')}"
    if isinstance(document, dict) and document.get("message"):
        # API Gateway's own refusals (a wrong key) carry only a message.
        return f"{status}: {document['message']}"
    return f"{status}: {payload.decode(errors='replace')[:200] or 'no body'}"


def campaign_name(target: Target, campaign_id: str) -> str | None:
    """The campaign's name for the report's title, or None when it cannot be read: the
    title is a courtesy, the figures do not depend on it."""
    from cli.wallet import table_name
    from functions.core.tables import CAMPAIGNS

    try:
        item = (
            target.client("dynamodb")
            .get_item(
                TableName=table_name(target, CAMPAIGNS),
                # functions.campaigns.models.Campaign's key and attribute.
                Key={"pk": {"S": f"CAMPAIGN#{campaign_id}"}, "sk": {"S": "META"}},
                ProjectionExpression="#name",
                ExpressionAttributeNames={"#name": "name"},
            )
            .get("Item")
        )
    except (TargetUnavailable, BotoCoreError, ClientError):
        return None
    name = (item or {}).get("name", {}).get("S")
    return str(name) if name else None


# -- figures as text --------------------------------------------------------------------------


def money_text(amount: int | None, currency: str) -> str:
    """``12,345 JPY``, ``150.00 USD``: exactly the currency's ISO 4217 decimals."""
    if amount is None:
        return DASH
    exponent = CURRENCY_EXPONENTS.get(currency, 0)
    value = Decimal(amount).scaleb(-exponent)
    return f"{value:,.{exponent}f} {currency}"


def _money(money: Mapping[str, Any] | None) -> str:
    return DASH if money is None else money_text(money["amount"], money["currency"])


def percent(value: float | None) -> str:
    return DASH if value is None else f"{value * 100:.1f}%"


def _count(value: int | float | None) -> str:
    if value is None:
        return DASH
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


# -- days -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportDay:
    """One campaign-local day of the report: the counters' figures, the archive's, and
    what the campaign has spent (rewards paid and discounts) from the first day to it."""

    day: date
    sessions: int
    conversions: int
    archive_sessions: int | None
    archive_conversions: int | None
    sales: int
    rewards_paid: int
    discounts: int
    spent_to_date: int


def report_days(stats: Mapping[str, Any], figures: ArchiveFigures | None) -> list[ReportDay]:
    """Every local day of the stats' range, zeros included (the counters have items only
    for days that had something)."""
    counted = {row["date"]: row for row in stats.get("days", [])}
    archived = {row.day: row for row in figures.days} if figures is not None else {}
    first, last = date.fromisoformat(stats["from"]), date.fromisoformat(stats["to"])
    days: list[ReportDay] = []
    spent = 0
    day = first
    while day <= last:
        row = counted.get(day.isoformat(), {})
        rewards = _amount(row.get("rewardsPaid"))
        discounts = _amount(row.get("discounts"))
        spent += rewards + discounts
        seen = archived.get(day)
        days.append(
            ReportDay(
                day=day,
                sessions=int(row.get("sessions", 0)),
                conversions=int(row.get("conversions", 0)),
                archive_sessions=seen.sessions if seen else (None if figures is None else 0),
                archive_conversions=seen.conversions if seen else (None if figures is None else 0),
                sales=_amount(row.get("sales")),
                rewards_paid=rewards,
                discounts=discounts,
                spent_to_date=spent,
            )
        )
        day += timedelta(days=1)
    return days


def _amount(money: Mapping[str, Any] | None) -> int:
    return int(money["amount"]) if money else 0


# -- the tables -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """One table of the report, as text: the terminal and the HTML draw the same cells."""

    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]
    note: str | None = None


def sections(stats: Mapping[str, Any], figures: ArchiveFigures | None) -> list[Section]:
    """The report's tables, in order: KPIs, funnel, attribution, days."""
    return [
        kpi_section(stats),
        funnel_section(stats, figures),
        attribution_section(stats, figures),
        daily_section(stats, figures),
    ]


def kpi_section(stats: Mapping[str, Any]) -> Section:
    goals = {goal["metric"]: goal for goal in stats.get("goals", [])}
    rows: list[tuple[str, ...]] = []

    def row(label: str, key: str, value: str) -> None:
        goal = goals.get(_GOAL_ROWS.get(key, ""))
        rows.append((label, value, *(_goal_cells(goal, stats["currency"]) if goal else ("",) * 3)))

    for label, key, show in (
        ("impressions", "impressions", _count),
        ("sessions", "sessions", _count),
        ("conversions", "conversions", _count),
        ("conversion rate", "conversionRate", percent),
        ("codes issued", "codesIssued", _count),
        ("redemptions", "redemptions", _count),
        ("redemption rate", "redemptionRate", percent),
        ("claims submitted", "claimsSubmitted", _count),
        ("claims approved", "claimsApproved", _count),
        ("claims rejected", "claimsRejected", _count),
        ("approval rate", "approvalRate", percent),
        ("total sales", "totalSales", _money),
        ("orders", "orders", _count),
        ("average order value", "averageOrderValue", _money),
        ("new customers", "newCustomers", _count),
        ("cost per acquisition", "costPerAcquisition", _money),
        ("rewards paid", "rewardsPaid", _money),
        ("discounts", "discounts", _money),
        ("bounce rate", "bounceRate", percent),
        ("pages per session", "pagesPerSession", _decimal),
        ("average session", "averageSessionSeconds", _seconds),
    ):
        if key in stats:
            row(label, key, show(stats[key]))
    rows += _budget_rows(stats)
    return Section(
        title="KPIs",
        columns=("KPI", "actual", "goal", "share", "pace"),
        rows=rows,
        note="goals are the whole campaign's; the budget is all time",
    )


def _decimal(value: float) -> str:
    return f"{value:.2f}"


def _seconds(value: float) -> str:
    return f"{value:.0f} s"


def _goal_cells(goal: Mapping[str, Any], currency: str) -> tuple[str, str, str]:
    metric = goal["metric"]
    target = goal["target"]
    if metric in _MONEY_GOALS:
        target_text = money_text(target, currency)
    elif metric == "conversionRate":
        target_text = percent(target)
    else:
        target_text = _count(target)
    return target_text, percent(goal.get("share")), _pace(goal, currency)


def _pace(goal: Mapping[str, Any], currency: str) -> str:
    share, days_left, needed = goal.get("share"), goal["daysLeft"], goal.get("neededPerDay")
    reached = share is not None and share >= 1
    if reached:
        return "reached"
    if days_left == 0:
        return "ended short"
    if needed is None:  # a ratio: there is no amount per day to reach
        return f"{days_left} days left"
    per_day = money_text(needed, currency) if goal["metric"] in _MONEY_GOALS else _count(needed)
    return f"{per_day}/day for {days_left} days"


def _budget_rows(stats: Mapping[str, Any]) -> list[tuple[str, ...]]:
    used = stats.get("budgetUsed")
    budget = stats.get("budget") or {}
    rows: list[tuple[str, ...]] = []
    if used is not None:
        limit = budget.get("limit")
        share = used["amount"] / limit["amount"] if limit and limit["amount"] else None
        rows.append(("budget used", _money(used), _money(limit), percent(share), ""))
    if "rewardsUsed" in budget:
        cap = budget.get("rewardsLimit")
        share = budget["rewardsUsed"] / cap if cap else None
        rows.append(
            ("rewards used", _count(budget["rewardsUsed"]), _count(cap), percent(share), "")
        )
    return rows


def funnel_section(stats: Mapping[str, Any], figures: ArchiveFigures | None) -> Section:
    archived = {step.step: step.sessions for step in figures.funnel} if figures else {}
    first = figures.funnel[0].sessions if figures and figures.funnel else 0
    rows: list[tuple[str, ...]] = []
    for step in stats.get("funnel", []):
        sql = archived.get(step["step"])
        rows.append(
            (
                step["step"],
                _count(step["sessions"]),
                percent(step["rate"]),
                _count(sql) if figures else DASH,
                percent(sql / first if first else 0.0) if sql is not None else DASH,
            )
        )
    return Section(
        title="Funnel (sessions, 24 h from the first offer view)",
        columns=("step", "counters", "rate", "archive (SQL)", "rate (SQL)"),
        rows=rows,
        note=figures.source if figures else "the archive was not read",
    )


def attribution_section(stats: Mapping[str, Any], figures: ArchiveFigures | None) -> Section:
    attribution = stats.get("attribution", {})
    counted: dict[str, dict[str, int]] = {}
    rewards: dict[str, Mapping[str, Any]] = {}
    for model, _ in _CHANNEL_MODELS:
        for row in attribution.get(model, []):
            counted.setdefault(row["channel"], {})[model] = row["conversions"]
            if "rewardsPaid" in row:
                rewards[row["channel"]] = row["rewardsPaid"]
    archived: dict[str, dict[str, int]] = {}
    for found in figures.attribution if figures else []:
        archived.setdefault(found.channel, {})[found.model] = found.conversions
    channels = sorted(
        set(counted) | set(archived),
        key=lambda channel: (
            -counted.get(channel, {}).get("lastTouch", 0),
            -archived.get(channel, {}).get("last_touch", 0),
            channel,
        ),
    )
    rows: list[tuple[str, ...]] = []
    for channel in channels:
        cells = [channel]
        for model, sql_model in _CHANNEL_MODELS:
            cells.append(_count(counted.get(channel, {}).get(model, 0)))
            cells.append(_count(archived.get(channel, {}).get(sql_model, 0)) if figures else DASH)
        cells.append(_money(rewards.get(channel)))
        rows.append(tuple(cells))
    return Section(
        title="Attribution by channel (conversions, 30-day lookback)",
        columns=(
            "channel",
            "last touch",
            "last (SQL)",
            "first touch",
            "first (SQL)",
            "rewards paid",
        ),
        rows=rows,
        note="rewards paid go to the channel of the customer's latest conversion",
    )


def daily_section(stats: Mapping[str, Any], figures: ArchiveFigures | None) -> Section:
    currency = stats["currency"]
    rows: list[tuple[str, ...]] = [
        (
            day.day.isoformat(),
            _count(day.sessions),
            _count(day.archive_sessions),
            _count(day.conversions),
            _count(day.archive_conversions),
            money_text(day.sales, currency),
            money_text(day.rewards_paid, currency),
            money_text(day.discounts, currency),
            money_text(day.spent_to_date, currency),
        )
        for day in report_days(stats, figures)
    ]
    return Section(
        title=f"Days ({stats['timezone']})",
        columns=(
            "date",
            "sessions",
            "sessions (SQL)",
            "conversions",
            "conv. (SQL)",
            "sales",
            "rewards paid",
            "discounts",
            "spent to date",
        ),
        rows=rows,
        note="spent: rewards paid and discounts, from the report's first day",
    )


def report_title(stats: Mapping[str, Any], name: str | None = None) -> str:
    campaign = f"{name} ({stats['campaignId']})" if name else stats["campaignId"]
    return f"{campaign}: {stats['from']} to {stats['to']}"


def print_report(
    stats: Mapping[str, Any],
    figures: ArchiveFigures | None,
    console: Console,
    *,
    name: str | None = None,
) -> None:
    """The report's tables on `console`."""
    console.print(f"[bold]{report_title(stats, name)}[/bold] ({stats['currency']})")
    for section in sections(stats, figures):
        table = Table(title=section.title, caption=section.note, title_justify="left")
        for index, column in enumerate(section.columns):
            # Numbers are never cut short: the first column (names) folds instead.
            if index == 0:
                table.add_column(column, overflow="fold")
            else:
                table.add_column(column, justify="right", no_wrap=True)
        for cells in section.rows:
            table.add_row(*cells)
        console.print(table)


# -- the command ------------------------------------------------------------------------------


def _console(stream: TextIO) -> Console:
    tty = stream.isatty()
    return Console(file=stream, width=None if tty else _PIPE_WIDTH, highlight=False)


def run_report(
    target: Target,
    campaign_id: str,
    *,
    first: date | None = None,
    last: date | None = None,
    html: Path | None = None,
    engine: Engine | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    opener: urllib.request.OpenerDirector | None = None,
) -> int:
    """Print the report (and write the HTML); 1 with the reason when a source fails."""
    out, err = out or sys.stdout, err or sys.stderr
    errors = _console(err)
    try:
        stats = fetch_stats(target, campaign_id, first=first, last=last, opener=opener)
        chosen: Engine = engine or ("athena" if target.kind == "aws" else "duckdb")
        figures = read_archive(target, stats, engine=chosen, console=errors)
    except (ReportError, TargetUnavailable) as error:
        print(f"error: {error}", file=err)
        return 1
    name = campaign_name(target, campaign_id)
    print_report(stats, figures, _console(out), name=name)
    if html is not None:
        from cli.report_html import write_report

        written = write_report(stats, figures, html, name=name)
        print(f"wrote {written}", file=err)
    return 0
