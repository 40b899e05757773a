"""Analytics SQL: the funnel and attribution queries over 1,000,000 archived events in
DuckDB, time and peak memory.

One archive is generated per run (deterministic seed) under a temporary folder, laid out
as Firehose leaves it (``events/dt=YYYY-MM-DD/`` objects of newline-delimited JSON, one
line per `TrackedEvent.to_archive_line`): storefront sessions of a March campaign in
Tokyo and of another campaign, page views (the first of a session often with utm),
offer views, carts, checkouts, purchases (some twice in a session, some steps past the
24 h funnel window), visitors returning across days so touches fall inside and outside
the 30-day lookback, the system's own domain events, and 1 % of lines replayed in
objects of their own. The report's range is the campaign's March (local days), reading
``dt`` 2027-01-29..2027-04-02 (`ReportRange`): the whole archive.

Each query runs in a fresh interpreter (so its peak RSS is its own), two ways:

- ``files``: `DuckDbArchive` as is, each query reading the JSON files again;
- ``loaded``: ``load=True``, the files read once into a DuckDB table (what the report
  does, running three queries over one copy), the load timed apart.

The floor is the same engine's scan of the same rows and columns, aggregated trivially
(a max of each column the queries read): what any query over this archive pays. The
ratio says what the query itself (dedupe, joins, windows) adds. Target: each query at
most 2 s. Peak memory is the child's peak RSS, beside that of a child that only imports
DuckDB and connects.

Run only this part with `python -m tests.bench analytics-sql`.
"""

from __future__ import annotations

import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any, Final

from functions.analytics.queries import DuckDbArchive, ReportRange
from functions.analytics.records import STOREFRONT, TrackedEvent
from tests.bench.report import python, record, table

EVENTS: Final = 1_000_000
SEED: Final = 20270301
RUNS: Final = 5
# Reading the JSON again at every query takes seconds a query: one run of each, for context.
FILES_RUNS: Final = 1
TARGET_SECONDS: Final = 2.0
LINES_PER_OBJECT: Final = 50_000
REPLAYED_SHARE: Final = 0.01
# Lines whose fast formatting is checked against `TrackedEvent.to_archive_line`.
CHECKED_LINES: Final = 20_000

CAMPAIGN: Final = "spring-trail-2027"
OTHER: Final = "store-opening-2027"
ZONE: Final = "Asia/Tokyo"
FROM_DAY: Final = date(2027, 3, 1)
TO_DAY: Final = date(2027, 3, 31)
RANGE: Final = ReportRange.of_local_days(FROM_DAY, TO_DAY, ZONE)
# Sessions start anywhere from the first dt read to the day before the last.
FIRST_MS: Final = int(datetime.combine(RANGE.first_dt, datetime.min.time(), UTC).timestamp()) * 1000
LAST_MS: Final = int(datetime.combine(RANGE.last_dt, datetime.min.time(), UTC).timestamp()) * 1000
VISITORS: Final = 90_000
CHANNELS: Final = (
    ("google", "cpc"),
    ("facebook", "social"),
    ("instagram", "social"),
    ("newsletter", "email"),
    ("affiliate", None),
    ("bing", "cpc"),
)
CHANNEL_WEIGHTS: Final = (30, 20, 15, 15, 10, 10)
MINUTE: Final = 60_000
HOUR: Final = 60 * MINUTE

# Columns the queries read: the floor reads the same.
FLOOR_SQL: Final = """
SELECT count(*), max(event_id), max(type), max(source), max(session_id), max(anonymous_id),
       max(campaign_id), max(occurred_ms), max(received_at), max(utm_source), max(utm_medium)
FROM events
WHERE dt BETWEEN ? AND ?
"""


# -- the archive --------------------------------------------------------------------------


def _text(value: str | None) -> str:
    return "null" if value is None else f'"{value}"'


def _number(value: int | None) -> str:
    return "null" if value is None else str(value)


_DAY_TEXT: dict[int, str] = {}


def _instant(epoch_ms: int) -> str:
    """`records.archive_instant`, without a datetime per call."""
    day, rest = divmod(epoch_ms, 86_400_000)
    prefix = _DAY_TEXT.get(day)
    if prefix is None:
        prefix = _DAY_TEXT[day] = datetime.fromtimestamp(day * 86_400, UTC).date().isoformat()
    seconds, milli = divmod(rest, 1000)
    hours, rest_seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(rest_seconds, 60)
    return f"{prefix} {hours:02d}:{minutes:02d}:{seconds:02d}.{milli:03d}000"


def archive_line(r: TrackedEvent) -> tuple[str, bytes]:
    """The line's UTC date (its ``dt``) and `TrackedEvent.to_archive_line(None)` in a
    fraction of its time, for values that need no JSON escaping (the generator's ids and
    names); `generate` checks the two agree."""
    occurred = _instant(r.occurred_ms)
    return occurred[:10], (
        f'{{"event_id":{_text(r.event_id)},"type":{_text(r.type)},"source":{_text(r.source)},'
        f'"occurred_at":"{occurred}","occurred_ms":{r.occurred_ms},'
        f'"received_at":"{_instant(r.received_ms)}","session_id":{_text(r.session_id)},'
        f'"anonymous_id":{_text(r.anonymous_id)},"customer_key":null,'
        f'"campaign_id":{_text(r.campaign_id)},"offer_id":{_text(r.offer_id)},'
        f'"order_id":{_text(r.order_id)},"value_amount":{_number(r.value)},'
        f'"value_currency":{_text(r.currency)},"utm_source":{_text(r.utm_source)},'
        f'"utm_medium":{_text(r.utm_medium)},"utm_campaign":{_text(r.utm_campaign)}}}\n'
    ).encode()


class Writer:
    """Lines into per-day objects of at most `LINES_PER_OBJECT`, replays apart."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lines = 0
        self.bytes = 0
        self.objects = 0
        self._open: dict[tuple[str, str], tuple[IO[bytes], int]] = {}
        self._serial = 0

    def write(self, day: str, line: bytes, *, replay: bool = False) -> None:
        key = (day, "replay" if replay else "part")
        file, count = self._open.get(key, (None, 0))
        if file is None or count >= LINES_PER_OBJECT:
            if file is not None:
                file.close()
            folder = self.root / "events" / f"dt={day}"
            folder.mkdir(parents=True, exist_ok=True)
            self._serial += 1
            file = (folder / f"EventsArchive-1-{key[1]}-{self._serial:05d}").open("wb")
            self.objects += 1
            count = 0
        file.write(line)
        self._open[key] = (file, count + 1)
        self.lines += 1
        self.bytes += len(line)

    def close(self) -> None:
        for file, _ in self._open.values():
            file.close()
        self._open.clear()


@dataclass(frozen=True)
class Archive:
    root: Path
    lines: int
    bytes: int
    objects: int
    sessions: int
    seconds: float


def session_events(rng: random.Random, serial: int) -> Iterator[TrackedEvent]:
    """One visit: page views, then the funnel as far as the visitor goes, and the
    domain events the system records for it."""
    visitor = f"anon-{rng.randrange(VISITORS):06d}"
    session = f"sess-{serial:07d}"
    campaign = CAMPAIGN if rng.random() < 0.8 else OTHER
    at = rng.randrange(FIRST_MS, LAST_MS - 2 * 24 * HOUR)
    utm = rng.choices(CHANNELS, CHANNEL_WEIGHTS)[0] if rng.random() < 0.55 else None
    ids = iter(range(100))
    # draw() and a product: a third of randrange's time, over a million events.
    draw = rng.random

    def storefront(kind: str, **fields: Any) -> TrackedEvent:
        return TrackedEvent(
            event_id=f"evt-{serial:07d}-{next(ids):02d}",
            type=kind,
            source=STOREFRONT,
            occurred_ms=at,
            received_ms=at + 200 + int(draw() * 2800),
            session_id=session,
            anonymous_id=visitor,
            campaign_id=campaign,
            **fields,
        )

    def domain(kind: str, **fields: Any) -> TrackedEvent:
        return TrackedEvent(
            event_id=f"dom-{serial:07d}-{next(ids):02d}",
            type=kind,
            source="rebates.offers",
            occurred_ms=at + 500,
            received_ms=at + 1500,
            campaign_id=campaign,
            **fields,
        )

    pages = 1 + min(int(rng.expovariate(0.6)), 9)
    for page in range(pages):
        source, medium = utm if utm is not None and page == 0 else (None, None)
        yield storefront("page_view", utm_source=source, utm_medium=medium)
        at += 10_000 + int(draw() * 3 * MINUTE)
    if draw() >= 0.7:
        return
    yield storefront("offer_view", offer_id="TRAIL10")
    if draw() < 0.2:
        yield domain("code_issued", offer_id="TRAIL10")
    for step, share in (("add_to_cart", 0.5), ("checkout", 0.6), ("purchase", 0.65)):
        if draw() >= share:
            return
        # A few visitors come back to the next step after the 24 h window.
        at += 25 * HOUR if draw() < 0.03 else MINUTE + int(draw() * 19 * MINUTE)
        if step != "purchase":
            yield storefront(step)
            continue
        order = f"ord-{serial:07d}"
        total = 2_000 + int(draw() * 38_000)
        yield storefront("purchase", order_id=order, value=total, currency="JPY")
        yield domain("purchase_recorded", order_id=order, value=total, currency="JPY")
        if draw() < 0.1:
            at += MINUTE + int(draw() * HOUR)
            yield storefront("purchase", order_id=f"{order}-2", value=total, currency="JPY")


def generate(root: Path) -> Archive:
    started = time.perf_counter()
    rng = random.Random(SEED)
    draw = rng.random
    writer = Writer(root)
    serial = 0
    try:
        while writer.lines < EVENTS:
            serial += 1
            for record in session_events(rng, serial):
                if writer.lines >= EVENTS:
                    break
                day, line = archive_line(record)
                if writer.lines < CHECKED_LINES and line != record.to_archive_line(None):
                    raise RuntimeError(f"archive_line differs from the archive's: {line!r}")
                writer.write(day, line)
                if draw() < REPLAYED_SHARE and writer.lines < EVENTS:
                    writer.write(day, line, replay=True)
    finally:
        writer.close()
    seconds = time.perf_counter() - started
    return Archive(root, writer.lines, writer.bytes, writer.objects, serial, seconds)


# -- one child per way of reading ---------------------------------------------------------


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(root: Path, mode: str, runs: int) -> dict[str, Any]:
    """Time the floor, the funnel and the attribution, alternating, `runs` times."""
    window = (CAMPAIGN, RANGE.start_ms, RANGE.end_ms, RANGE.first_dt, RANGE.last_dt)
    dts = [RANGE.first_dt.isoformat(), RANGE.last_dt.isoformat()]
    if mode == "baseline":
        import duckdb

        duckdb.connect(":memory:").execute("SELECT 1").fetchall()
        return {"peak_rss_mb": peak_rss_mb()}
    archive = DuckDbArchive(root, load=mode == "loaded")
    started = time.perf_counter()
    rows = archive.connection.execute("SELECT count(*) FROM events").fetchone()
    load = time.perf_counter() - started
    times: dict[str, list[float]] = {"floor": [], "funnel": [], "attribution": []}
    answers: dict[str, Any] = {}
    for _ in range(runs):
        for name, samples in times.items():
            started = time.perf_counter()
            if name == "floor":
                answer: Any = archive.connection.execute(FLOOR_SQL, dts).fetchall()
            elif name == "funnel":
                answer = archive.funnel(*window)
            else:
                answer = archive.attribution(*window)
            samples.append(time.perf_counter() - started)
            answers[name] = answer
    memory = archive.connection.execute(
        "SELECT sum(memory_usage_bytes) FROM duckdb_memory()"
    ).fetchone()
    threads = archive.connection.execute("SELECT current_setting('threads')").fetchone()
    archive.close()
    return {
        "rows": rows[0] if rows else 0,
        "load_seconds": load,
        "times": times,
        "funnel": [[s.step, s.sessions] for s in answers["funnel"]],
        "attribution": [[c.model, c.channel, c.conversions] for c in answers["attribution"]],
        "duckdb_memory_mb": (memory[0] or 0) / 1_000_000 if memory else 0.0,
        "threads": threads[0] if threads else None,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_child(root: Path, mode: str, runs: int) -> dict[str, Any]:
    out = subprocess.run(
        [python(), "-m", "tests.bench.analytics_sql", "child", str(root), mode, str(runs)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# -- the report ---------------------------------------------------------------------------


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def run() -> None:
    with tempfile.TemporaryDirectory(prefix="rebates-bench-archive-") as folder:
        archive = generate(Path(folder))
        baseline = run_child(archive.root, "baseline", 1)
        results = {
            "files": run_child(archive.root, "files", FILES_RUNS),
            "loaded": run_child(archive.root, "loaded", RUNS),
        }
    if results["files"]["funnel"] != results["loaded"]["funnel"] or (
        results["files"]["attribution"] != results["loaded"]["attribution"]
    ):
        raise RuntimeError("the two ways of reading gave different answers")
    rows = []
    for mode, result in results.items():
        floor = statistics.median(result["times"]["floor"])
        for query in ("funnel", "attribution"):
            median = statistics.median(result["times"][query])
            ok = median <= TARGET_SECONDS
            rows.append(
                [
                    f"`{query}.sql`, {mode}",
                    f"**{median / floor:.2f}**",
                    _s(median),
                    f"{_s(min(result['times'][query]))} to {_s(max(result['times'][query]))}",
                    _s(floor),
                    f"{TARGET_SECONDS:g} s",
                    "ok" if ok else "over target",
                ]
            )
    memory_rows = [
        ["DuckDB imported and connected (baseline)", f"{baseline['peak_rss_mb']:.0f} MB", "", ""],
        *(
            [
                f"{mode}: {len(result['times']['funnel'])} x (floor, funnel, attribution)",
                f"{result['peak_rss_mb']:.0f} MB",
                f"{result['peak_rss_mb'] - baseline['peak_rss_mb']:.0f} MB",
                f"{result['duckdb_memory_mb']:.0f} MB",
            ]
            for mode, result in results.items()
        ),
    ]
    loaded = results["loaded"]
    funnel = ", ".join(f"{step} {n:,}" for step, n in loaded["funnel"])
    last_touch = [row for row in loaded["attribution"] if row[0] == "last_touch"]
    conversions = sum(row[2] for row in last_touch)
    body = "\n".join(
        [
            f"{archive.lines:,} archived events ({archive.bytes / 1_000_000:.0f} MB of "
            f"newline-delimited JSON in {archive.objects} objects over "
            f"{(RANGE.last_dt - RANGE.first_dt).days + 1} `dt` folders; {archive.sessions:,} "
            f"sessions of {VISITORS:,} visitors, {REPLAYED_SHARE:.0%} of lines replayed), "
            f"generated from seed {SEED} in {_s(archive.seconds)}. The queries: campaign "
            f"`{CAMPAIGN}`, {FROM_DAY}..{TO_DAY} in {ZONE}, `dt` {RANGE.first_dt}.."
            f"{RANGE.last_dt}. They found: funnel {funnel}; {conversions:,} conversions "
            f"over {len(last_touch)} last-touch channels. DuckDB "
            f"{results['files']['threads']} threads.",
            "",
            "Each query in a fresh interpreter, two ways: **files**, `DuckDbArchive` reading "
            "the JSON files at every query; **loaded**, `DuckDbArchive(load=True)` reading "
            f"them once into a table (that load: {_s(loaded['load_seconds'])}; files: the "
            f"first count took {_s(results['files']['load_seconds'])}). Floor: the same "
            "engine scanning the same rows and the columns the queries read, with a max of "
            f"each. Median of {RUNS} runs loaded, floor and queries alternating; "
            f"{FILES_RUNS} from the files (seconds a query). Target: each query "
            f"<= {TARGET_SECONDS:g} s.",
            "",
            table(
                [
                    "query",
                    "ratio to floor",
                    "time",
                    "range",
                    "floor",
                    "target",
                    "verdict",
                ],
                rows,
            ),
            "",
            "Peak memory: the child's peak RSS (`ru_maxrss`), above the baseline, and "
            "what DuckDB still held at the end (`duckdb_memory()`).",
            "",
            table(["child", "peak RSS", "above baseline", "DuckDB held at end"], memory_rows),
        ]
    )
    record("analytics-sql", "Analytics SQL: funnel and attribution over 1M events", body)


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "child":
    print(json.dumps(child(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]))))
