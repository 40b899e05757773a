"""The report as one HTML file with charts, openable anywhere without a network.

Pure: everything is drawn from a stats body and the archive's figures
(`cli.report.ArchiveFigures`), so the demo and the tests render reports without a cloud.

The charts are matplotlib figures saved as SVG with their text drawn as paths, so the
file needs no font (the campaign names and channels may be Japanese: matplotlib draws
them with Noto Sans CJK JP, falling back glyph by glyph along `FONT_FAMILY`), and no
script: each is an ``<img>`` whose ``src`` is a ``data:`` URI, which also keeps the ids
of one SVG from clashing with another's. The page has a fixed layout: a header of
`HEADER_HEIGHT` px, then the four charts in a grid of `CHART_WIDTH` x `CHART_HEIGHT`
px boxes (`chart_box` says where each is), then the tables of the terminal report.

Money is plotted in minor units (integers); only the axis labels turn it into the
currency's units, through the same `money_text` as the tables.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from cli.report import ArchiveFigures, ReportDay, Section, money_text, report_days, report_title
from cli.report import sections as report_sections

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

__all__ = [
    "CHARTS",
    "CHART_HEIGHT",
    "CHART_WIDTH",
    "FONT_FAMILY",
    "PAGE_BACKGROUND",
    "SERIES",
    "WINDOW",
    "attribution_chart",
    "budget_chart",
    "chart_box",
    "daily_chart",
    "font_family",
    "funnel_chart",
    "render_html",
    "write_report",
]

CHARTS: Final = ("funnel", "daily", "attribution", "budget")
CHART_WIDTH: Final = 600
CHART_HEIGHT: Final = 380
HEADER_HEIGHT: Final = 96
GAP: Final = 20
COLUMNS: Final = 2
# A window that shows the header and every chart whole.
WINDOW: Final = (
    COLUMNS * CHART_WIDTH + (COLUMNS + 1) * GAP,
    HEADER_HEIGHT + 2 * CHART_HEIGHT + 2 * GAP,
)
PAGE_BACKGROUND: Final = "#ffffff"
# Every chart draws its main series in SERIES["main"]; the others tell series apart.
SERIES: Final = {
    "main": "#2563eb",
    "second": "#ea580c",
    "archive": "#94a3b8",
    "limit": "#dc2626",
}
TEXT: Final = "#1f2937"
# Japanese first where it matters (fonts-noto-cjk on Debian gives the first), then
# DejaVu Sans, which matplotlib ships, for anything else.
FONT_FAMILY: Final = ("Noto Sans CJK JP", "Noto Sans JP", "IPAexGothic", "DejaVu Sans")
_STYLE: Final[dict[RcKeyType, Any]] = {
    "font.size": 10,
    "text.color": TEXT,
    "axes.labelcolor": TEXT,
    "axes.edgecolor": "#9ca3af",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.color": TEXT,
    "ytick.color": TEXT,
    "svg.fonttype": "path",
    # The same report gives the same file (clip-path ids hash with this salt).
    "svg.hashsalt": "rebates-report",
}
# Nothing in the file names a date or a tool: two renders of one report are equal.
_SVG_METADATA: Final = {"Date": None, "Creator": None, "Format": None, "Type": None}
_MAX_DATE_TICKS: Final = 8
_FUNNEL_LABELS: Final = {
    "offer_view": "offer view",
    "add_to_cart": "add to cart",
    "checkout": "checkout",
    "purchase": "purchase",
}


@cache
def font_family() -> list[str]:
    """`FONT_FAMILY` less the families this machine lacks (matplotlib would log each
    missing one for every text it draws)."""
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    return [family for family in FONT_FAMILY if family in installed] or ["DejaVu Sans"]


def _style() -> dict[RcKeyType, Any]:
    return {**_STYLE, "font.family": font_family()}


def chart_box(name: str) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) in CSS px of the chart `name` in the page."""
    index = CHARTS.index(name)
    row, column = divmod(index, COLUMNS)
    left = GAP + column * (CHART_WIDTH + GAP)
    top = HEADER_HEIGHT + row * (CHART_HEIGHT + GAP)
    return left, top, left + CHART_WIDTH, top + CHART_HEIGHT


# -- charts -----------------------------------------------------------------------------------


def _figure() -> Figure:
    # 72 pt to the inch: the SVG's size in pt is its box in CSS px, so font sizes in pt
    # come out as the same px in the page.
    return Figure(figsize=(CHART_WIDTH / 72, CHART_HEIGHT / 72), facecolor=PAGE_BACKGROUND)


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata=_SVG_METADATA, facecolor=PAGE_BACKGROUND)
    return buffer.getvalue()


def _nothing_yet(axes: Axes, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes)


def funnel_chart(stats: Mapping[str, Any], figures: ArchiveFigures | None) -> str:
    """Sessions at each step: the counters' bars beside the archive's (SQL)."""
    with rc_context(_style()):
        figure = _figure()
        axes = figure.add_subplot()
        steps = list(stats.get("funnel", []))
        archived = {step.step: step.sessions for step in figures.funnel} if figures else {}
        positions = list(range(len(steps)))
        counted = [step["sessions"] for step in steps]
        height = 0.38 if figures else 0.6
        bars = axes.barh(
            [p - (height / 2 if figures else 0) for p in positions],
            counted,
            height=height,
            color=SERIES["main"],
            label="counters",
        )
        for bar, step in zip(bars, steps, strict=True):
            axes.annotate(
                f" {step['sessions']:,} ({step['rate'] * 100:.1f}%)",
                (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                va="center",
                fontsize=9,
            )
        if figures:
            axes.barh(
                [p + height / 2 for p in positions],
                [archived.get(step["step"], 0) for step in steps],
                height=height,
                color=SERIES["archive"],
                label="archive (SQL)",
            )
            axes.legend(loc="lower right", frameon=False)
        axes.set_yticks(positions, [_FUNNEL_LABELS.get(s["step"], s["step"]) for s in steps])
        axes.invert_yaxis()
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlim(0, max([*counted, *archived.values(), 1]) * 1.3)
        axes.set_xlabel("sessions")
        axes.set_title("Funnel", loc="left", fontweight="bold")
        if not any(counted):
            _nothing_yet(axes, "no session reached the funnel yet")
        figure.tight_layout()
        return _svg(figure)


def _date_axis(axes: Axes, days: Sequence[ReportDay]) -> list[int]:
    positions = list(range(len(days)))
    step = max(1, -(-len(days) // _MAX_DATE_TICKS))
    axes.set_xticks(positions[::step], [day.day.strftime("%m-%d") for day in days][::step])
    axes.set_xlim(-0.6, max(len(days) - 0.4, 0.6))
    return positions


def daily_chart(stats: Mapping[str, Any], days: Sequence[ReportDay]) -> str:
    """Sessions (bars) and conversions (line, its own axis) of each local day."""
    with rc_context(_style()):
        figure = _figure()
        axes = figure.add_subplot()
        positions = _date_axis(axes, days)
        axes.bar(positions, [d.sessions for d in days], color=SERIES["main"], label="sessions")
        axes.set_ylabel("sessions", color=SERIES["main"])
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        conversions = axes.twinx()
        conversions.spines["right"].set_visible(True)
        conversions.plot(
            positions,
            [d.conversions for d in days],
            color=SERIES["second"],
            marker="o",
            markersize=3,
            linewidth=2,
            label="conversions",
        )
        conversions.set_ylabel("conversions", color=SERIES["second"])
        conversions.yaxis.set_major_locator(MaxNLocator(integer=True))
        conversions.set_ylim(0, max([d.conversions for d in days] + [1]) * 1.15)
        axes.set_title(
            f"Sessions and conversions by day ({stats['timezone']})",
            loc="left",
            fontweight="bold",
        )
        if not any(d.sessions for d in days):
            _nothing_yet(axes, "no session yet")
        figure.tight_layout()
        return _svg(figure)


def attribution_chart(stats: Mapping[str, Any]) -> str:
    """Conversions by channel under last touch and first touch; the rewards paid to
    each last-touch channel beside its bar."""
    with rc_context(_style()):
        figure = _figure()
        axes = figure.add_subplot()
        attribution = stats.get("attribution", {})
        last = {row["channel"]: row for row in attribution.get("lastTouch", [])}
        first = {row["channel"]: row["conversions"] for row in attribution.get("firstTouch", [])}
        channels = sorted(
            set(last) | set(first),
            key=lambda c: (-last.get(c, {}).get("conversions", 0), -first.get(c, 0), c),
        )
        positions = list(range(len(channels)))
        height = 0.38
        bars = axes.barh(
            [p - height / 2 for p in positions],
            [last.get(c, {}).get("conversions", 0) for c in channels],
            height=height,
            color=SERIES["main"],
            label="last touch",
        )
        axes.barh(
            [p + height / 2 for p in positions],
            [first.get(c, 0) for c in channels],
            height=height,
            color=SERIES["second"],
            label="first touch",
        )
        for bar, channel in zip(bars, channels, strict=True):
            paid = last.get(channel, {}).get("rewardsPaid")
            if paid and paid["amount"]:
                axes.annotate(
                    f" {money_text(paid['amount'], paid['currency'])}",
                    (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                    va="center",
                    fontsize=8,
                )
        axes.set_yticks(positions, channels)
        axes.invert_yaxis()
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        most = max([*first.values(), *(r["conversions"] for r in last.values()), 1])
        axes.set_xlim(0, most * 1.45)
        axes.set_xlabel("conversions (rewards paid beside the last touch)")
        axes.set_title("Attribution by channel", loc="left", fontweight="bold")
        if channels:
            axes.legend(loc="lower right", frameon=False)
        else:
            _nothing_yet(axes, "no conversion yet")
        figure.tight_layout()
        return _svg(figure)


def budget_chart(stats: Mapping[str, Any], days: Sequence[ReportDay]) -> str:
    """Rewards paid and discounts added up day by day, against the budget's limit."""
    currency = stats["currency"]
    limit = (stats.get("budget") or {}).get("limit")
    with rc_context(_style()):
        figure = _figure()
        axes = figure.add_subplot()
        positions = _date_axis(axes, days)
        spent = [d.spent_to_date for d in days]
        axes.fill_between(positions, spent, color=SERIES["main"], alpha=0.15, linewidth=0)
        axes.plot(positions, spent, color=SERIES["main"], linewidth=2.5, label="spent to date")
        top = max([*spent, 1])
        if limit is not None:
            axes.axhline(
                limit["amount"], color=SERIES["limit"], linestyle="--", linewidth=2, label="limit"
            )
            top = max(top, limit["amount"])
        # Display only: the tick positions matplotlib picks are floats of minor units.
        axes.yaxis.set_major_formatter(
            FuncFormatter(lambda value, _: money_text(round(value), currency))
        )
        # Headroom above the limit for the legend, so it never hides the line.
        axes.set_ylim(0, top * 1.25)
        title = "Budget burn: rewards paid + discounts"
        if limit is None:
            title += " (no budget limit)"
        axes.set_title(title, loc="left", fontweight="bold")
        axes.legend(loc="upper left", ncols=2, frameon=False)
        figure.tight_layout()
        return _svg(figure)


# -- the page ---------------------------------------------------------------------------------


def _image(svg: str, name: str, description: str) -> str:
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return (
        f'<img class="chart" id="chart-{name}" alt="{html.escape(description)}" '
        f'width="{CHART_WIDTH}" height="{CHART_HEIGHT}" src="data:image/svg+xml;base64,{data}">'
    )


def _table(section: Section) -> str:
    head = "".join(f"<th>{html.escape(column)}</th>" for column in section.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>"
        for cells in section.rows
    )
    note = f"<caption>{html.escape(section.note)}</caption>" if section.note else ""
    return (
        f"<section><h2>{html.escape(section.title)}</h2><table>{note}"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></section>"
    )


_CSS: Final = f"""
* {{ box-sizing: border-box; }}
html, body {{ margin: 0; padding: 0; background: {PAGE_BACKGROUND}; color: {TEXT}; }}
body {{ width: {WINDOW[0]}px; font: 14px/1.5 'Noto Sans CJK JP', 'Noto Sans JP',
  'Hiragino Sans', Meiryo, system-ui, sans-serif; }}
header {{ height: {HEADER_HEIGHT}px; padding: 18px {GAP}px 0; overflow: hidden; }}
h1 {{ margin: 0; font-size: 24px; line-height: 32px; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }}
header p {{ margin: 4px 0 0; color: #4b5563; }}
.charts {{ display: grid; grid-template-columns: repeat({COLUMNS}, {CHART_WIDTH}px);
  grid-auto-rows: {CHART_HEIGHT}px; gap: {GAP}px; padding: 0 {GAP}px; }}
img.chart {{ display: block; width: {CHART_WIDTH}px; height: {CHART_HEIGHT}px; }}
.tables {{ padding: {GAP}px; }}
h2 {{ font-size: 17px; margin: 24px 0 8px; }}
table {{ border-collapse: collapse; }}
caption {{ caption-side: bottom; text-align: left; color: #6b7280; font-size: 12px;
  padding-top: 4px; }}
th, td {{ padding: 3px 12px; border-bottom: 1px solid #e5e7eb; white-space: nowrap; }}
th {{ text-align: right; background: #f9fafb; }}
td {{ text-align: right; font-variant-numeric: tabular-nums; }}
th:first-child, td:first-child {{ text-align: left; }}
"""


def render_html(
    stats: Mapping[str, Any], figures: ArchiveFigures | None, *, name: str | None = None
) -> str:
    """The whole report page: header, the four charts in their boxes, the tables."""
    days = report_days(stats, figures)
    charts = {
        "funnel": (funnel_chart(stats, figures), "Funnel: sessions at each step"),
        "daily": (daily_chart(stats, days), "Sessions and conversions by day"),
        "attribution": (attribution_chart(stats), "Conversions by channel"),
        "budget": (budget_chart(stats, days), "Budget burn against the limit"),
    }
    images = "".join(_image(svg, chart, text) for chart, (svg, text) in charts.items())
    tables = "".join(_table(section) for section in report_sections(stats, figures))
    title = html.escape(report_title(stats, name))
    source = figures.source if figures else "the archive was not read"
    subtitle = html.escape(
        f"{stats['timezone']} · {stats['currency']} · counters from the stats API; "
        f"SQL figures: {source}"
    )
    return (
        '<!DOCTYPE html>\n<html lang="ja"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{title}</h1><p>{subtitle}</p></header>"
        f'<main class="charts">{images}</main>'
        f'<div class="tables">{tables}</div>'
        "</body></html>\n"
    )


def write_report(
    stats: Mapping[str, Any],
    figures: ArchiveFigures | None,
    path: Path,
    *,
    name: str | None = None,
) -> Path:
    """Write `render_html` to `path` (its folder made if needed); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(stats, figures, name=name), encoding="utf-8")
    return path
