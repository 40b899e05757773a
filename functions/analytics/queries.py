"""The deep queries over the event archive: one SQL text per query, run by DuckDB on a
local copy of the archive or by Athena on the Glue table over it.

The texts are `sql/*.sql` (funnel, attribution, daily), each read as it is by both
engines: they read a relation ``events`` with the archive's columns
(`records.ARCHIVE_COLUMNS`) plus ``dt``, the ``YYYY-MM-DD`` partition as text, and
keep to what DuckDB and Trino (Athena) both do alike (`tests/unit/analytics/
test_sql_portability.py` enforces it). What the queries count is defined in each file's
header and in `docs/metrics.md`. Each keeps one row per ``event_id`` of the rows it reads
(the archive is written at least once; its copies of an event are the same line) with a
GROUP BY rather than ``row_number() ... WHERE rn = 1``: the same answer, and in DuckDB a
third of the funnel's time less. Trino inlines WITH queries at every reference, so each
text reads ``events`` as few times as it can (the funnel and the days once, attribution
twice), which is what Athena bills.

Parameters are positional ``?`` placeholders in both engines, never text pasted into the
SQL. DuckDB binds them as prepared-statement parameters. Athena's StartQueryExecution
takes ``ExecutionParameters``, a list of SQL literals in the order the placeholders
appear, and accepts placeholders only in WHERE clauses, which is why every ``?`` of the
texts sits in one. So the Athena runner renders each value as a literal itself, from
validated values only (`athena_literal`): an integer as its digits, a date as its ISO
text quoted, any other text quoted with its quotes doubled (Trino strings have no
backslash escapes). A query's placeholders may repeat a value; each file names its
parameters in order on a ``-- parameters:`` line, and `SqlQuery.arguments` lays the
values out by it.

- `EventArchive`: the one interface (`funnel`, `attribution`, `daily`).
- `DuckDbArchive`: a folder laid out like the archive (``<root>/events/dt=YYYY-MM-DD/*``,
  newline-delimited JSON, plain or gzip), read with explicit column types.
- `AthenaArchive`: a workgroup and the Glue database holding the ``events`` table.
- `download_archive` / `downloaded_archive`: the archive objects of a ``dt`` range copied
  from S3 into a local folder for `DuckDbArchive` (DuckDB cannot read ``s3://`` here),
  reporting progress.

duckdb and boto3 are imported on first use: nothing here is needed to import a handler.
"""

from __future__ import annotations

import re
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_start
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "ARCHIVE_COLUMN_TYPES",
    "LOOKBACK_DAYS",
    "QUERY_NAMES",
    "ArchiveQueryError",
    "AthenaArchive",
    "ChannelConversions",
    "DayCounts",
    "DuckDbArchive",
    "EventArchive",
    "FunnelStep",
    "Progress",
    "ReportRange",
    "SqlQuery",
    "athena_literal",
    "download_archive",
    "downloaded_archive",
    "load_query",
]

QUERY_NAMES: Final = ("funnel", "attribution", "daily")
# The archive's columns as DuckDB reads them (the Glue table declares the same); ``dt``
# comes from the folder name, as text like Athena's projected partition.
ARCHIVE_COLUMN_TYPES: Final = {
    "event_id": "VARCHAR",
    "type": "VARCHAR",
    "source": "VARCHAR",
    "occurred_at": "VARCHAR",
    "occurred_ms": "BIGINT",
    "received_at": "VARCHAR",
    "session_id": "VARCHAR",
    "anonymous_id": "VARCHAR",
    "customer_key": "VARCHAR",
    "campaign_id": "VARCHAR",
    "offer_id": "VARCHAR",
    "order_id": "VARCHAR",
    "value_amount": "BIGINT",
    "value_currency": "VARCHAR",
    "utm_source": "VARCHAR",
    "utm_medium": "VARCHAR",
    "utm_campaign": "VARCHAR",
}
# Attribution looks 30 days back from a conversion at the start of the range, and a
# range's first local day starts up to 14 h before its UTC date: 31 days of ``dt`` cover it.
LOOKBACK_DAYS: Final = 31
# A funnel anchored at the end of the last local day runs 24 h on, and that local day
# ends up to 12 h into the next UTC date: 2 days of ``dt`` after it cover it.
TRAILING_DAYS: Final = 2
ARCHIVE_PREFIX: Final = "events/"
_PARAMETERS_LINE: Final = re.compile(r"^-- parameters:(.*)$", re.MULTILINE)
_PARAMETER_NAMES: Final = frozenset({"first_dt", "last_dt", "campaign_id", "start_ms", "end_ms"})
# Campaign ids are slugs; anything else is refused before it reaches an engine.
_CAMPAIGN_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
# Epoch milliseconds of 9999-12-31: beyond it no instant is meant.
_MAX_MS: Final = 253_402_300_799_999
_GZIP_MAGIC: Final = b"\x1f\x8b"
_CHUNK: Final = 1024 * 1024

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes in all) as a download goes."""


class ArchiveQueryError(RuntimeError):
    """A query that did not give its rows: failed, cancelled, or out of time."""


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunnelStep:
    step: str
    position: int
    sessions: int


@dataclass(frozen=True)
class ChannelConversions:
    model: str  # "last_touch" | "first_touch"
    channel: str
    conversions: int


@dataclass(frozen=True)
class DayCounts:
    day: date  # campaign-local
    sessions: int
    conversions: int


@dataclass(frozen=True)
class ReportRange:
    """What the queries of a report on campaign-local days ``from_day..to_day`` take:
    the UTC instants ``[start_ms, end_ms)`` those days span and the ``dt`` folders to
    read, wide enough for the attribution lookback and the funnel window."""

    start_ms: int
    end_ms: int
    first_dt: date
    last_dt: date

    @classmethod
    def of_local_days(cls, from_day: date, to_day: date, timezone: str) -> ReportRange:
        if to_day < from_day:
            raise ValueError(f"the range ends ({to_day}) before it starts ({from_day})")
        zone = ZoneInfo(timezone)
        start = datetime.combine(from_day, day_start(), zone)
        end = datetime.combine(to_day + timedelta(days=1), day_start(), zone)
        return cls(
            start_ms=_epoch_ms(start),
            end_ms=_epoch_ms(end),
            first_dt=from_day - timedelta(days=LOOKBACK_DAYS),
            last_dt=to_day + timedelta(days=TRAILING_DAYS),
        )


def _epoch_ms(instant: datetime) -> int:
    return int(instant.timestamp()) * 1000 + instant.microsecond // 1000


# -- the SQL texts -------------------------------------------------------------------------


@dataclass(frozen=True)
class SqlQuery:
    """One SQL text and the names of its ``?`` placeholders, in order."""

    name: str
    text: str
    parameters: tuple[str, ...]

    def arguments(self, values: Mapping[str, object]) -> list[object]:
        return [values[name] for name in self.parameters]


@cache
def load_query(name: str) -> SqlQuery:
    """`sql/<name>.sql`, with the parameters its ``-- parameters:`` line names."""
    if name not in QUERY_NAMES:
        raise ValueError(f"no query {name!r}: choose from {', '.join(QUERY_NAMES)}")
    text = (resources.files("functions.analytics") / "sql" / f"{name}.sql").read_text(
        encoding="utf-8"
    )
    declared = _PARAMETERS_LINE.search(text)
    if declared is None:
        raise ValueError(f"{name}.sql names no parameters (a '-- parameters:' line)")
    parameters = tuple(part.strip() for part in declared.group(1).split(","))
    unknown = set(parameters) - _PARAMETER_NAMES
    if unknown:
        raise ValueError(f"{name}.sql names unknown parameters {sorted(unknown)}")
    return SqlQuery(name, text, parameters)


def _checked(
    campaign_id: str, start_ms: int, end_ms: int, first_dt: date, last_dt: date
) -> dict[str, object]:
    """The parameters, refused unless each is what its placeholder expects."""
    if not isinstance(campaign_id, str) or not _CAMPAIGN_ID.fullmatch(campaign_id):
        raise ValueError(f"not a campaign id: {campaign_id!r}")
    for name, value in (("start_ms", start_ms), ("end_ms", end_ms)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_MS:
            raise ValueError(f"{name} is not epoch milliseconds: {value!r}")
    if end_ms < start_ms:
        raise ValueError(f"end_ms {end_ms} is before start_ms {start_ms}")
    for name, day in (("first_dt", first_dt), ("last_dt", last_dt)):
        if isinstance(day, datetime) or not isinstance(day, date):
            raise ValueError(f"{name} is not a date: {day!r}")
    return {
        "campaign_id": campaign_id,
        "start_ms": start_ms,
        "end_ms": end_ms,
        # ``dt`` is text in both engines; ISO dates compare as their days do.
        "first_dt": first_dt.isoformat(),
        "last_dt": last_dt.isoformat(),
    }


def athena_literal(value: object) -> str:
    """`value` as the SQL literal Athena's ExecutionParameters carry (see the module
    docstring). Only integers and text come here, both already validated."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"no literal for {type(value).__name__}")
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


# -- the interface -------------------------------------------------------------------------


class EventArchive(ABC):
    """The queries, over whichever engine `_rows` runs them on."""

    @abstractmethod
    def _rows(self, query: SqlQuery, arguments: Sequence[object]) -> list[tuple[Any, ...]]:
        """The result rows of `query` with `arguments` bound to its placeholders, in order;
        values as the engine gives them (DuckDB typed, Athena as text)."""

    def _query(self, name: str, values: Mapping[str, object]) -> list[tuple[Any, ...]]:
        query = load_query(name)
        return self._rows(query, query.arguments(values))

    def funnel(
        self, campaign_id: str, start_ms: int, end_ms: int, first_dt: date, last_dt: date
    ) -> list[FunnelStep]:
        """The four funnel steps in order, each with the sessions that reached it."""
        rows = self._query("funnel", _checked(campaign_id, start_ms, end_ms, first_dt, last_dt))
        steps = [FunnelStep(str(step), int(position), int(n)) for step, position, n in rows]
        return sorted(steps, key=lambda step: step.position)

    def attribution(
        self, campaign_id: str, start_ms: int, end_ms: int, first_dt: date, last_dt: date
    ) -> list[ChannelConversions]:
        """Conversions by channel, last touch then first touch, most conversions first."""
        values = _checked(campaign_id, start_ms, end_ms, first_dt, last_dt)
        rows = self._query("attribution", values)
        found = [ChannelConversions(str(m), str(c), int(n)) for m, c, n in rows]
        return sorted(found, key=lambda r: (r.model != "last_touch", -r.conversions, r.channel))

    def daily(  # noqa: PLR0917 - the five query parameters, as the others, and the zone
        self,
        campaign_id: str,
        start_ms: int,
        end_ms: int,
        first_dt: date,
        last_dt: date,
        timezone: str,
    ) -> list[DayCounts]:
        """Sessions and conversions of every campaign-local day the range touches, zeros
        included, from the query's quarter-hour slots."""
        zone = ZoneInfo(timezone)
        rows = self._query("daily", _checked(campaign_id, start_ms, end_ms, first_dt, last_dt))
        if end_ms == start_ms:
            return []
        by_day: dict[date, tuple[int, int]] = {}
        for slot_ms, sessions, conversions in rows:
            day = _local_day(int(slot_ms), zone)
            before = by_day.get(day, (0, 0))
            by_day[day] = (before[0] + int(sessions), before[1] + int(conversions))
        days: list[DayCounts] = []
        day, last = _local_day(start_ms, zone), _local_day(end_ms - 1, zone)
        while day <= last:
            sessions, conversions = by_day.get(day, (0, 0))
            days.append(DayCounts(day, sessions, conversions))
            day += timedelta(days=1)
        return days


def _local_day(epoch_ms: int, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(epoch_ms // 1000, UTC).astimezone(zone).date()


# -- DuckDB --------------------------------------------------------------------------------


class DuckDbArchive(EventArchive):
    """The queries on DuckDB over ``<root>/events/dt=YYYY-MM-DD/*``.

    ``load=True`` reads the files once into an in-memory table, for a caller that runs
    several queries over the same copy (a report runs three); otherwise each query reads
    the files again through a view. ``memory_limit`` (DuckDB's syntax, e.g. ``"2GB"``)
    caps what DuckDB holds before it spills to disk.
    """

    def __init__(
        self,
        root: Path,
        *,
        load: bool = False,
        memory_limit: str | None = None,
        threads: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.load = load
        self.memory_limit = memory_limit
        self.threads = threads
        self._connection: duckdb.DuckDBPyConnection | None = None

    def __enter__(self) -> DuckDbArchive:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The connection, with ``events`` defined on first use."""
        if self._connection is None:
            import duckdb

            config: dict[str, str | int | bool | float | list[str]] = {}
            if self.memory_limit is not None:
                config["memory_limit"] = self.memory_limit
            if self.threads is not None:
                config["threads"] = self.threads
            connection = duckdb.connect(":memory:", config=config)
            kind = "TABLE" if self.load else "VIEW"
            connection.execute(f"CREATE {kind} events AS {self._source()}")
            self._connection = connection
        return self._connection

    def _source(self) -> str:
        """The SELECT that reads the folder; a typed empty relation when it holds no file
        (read_json refuses a pattern that matches nothing)."""
        columns = ARCHIVE_COLUMN_TYPES
        folder = self.root / "events"
        if not any(path.is_file() for path in folder.glob("dt=*/*")):
            typed = ", ".join(f"CAST(NULL AS {kind}) AS {name}" for name, kind in columns.items())
            return f"SELECT {typed}, CAST(NULL AS VARCHAR) AS dt WHERE 1 = 0"
        pattern = _sql_text(str(folder.resolve() / "dt=*" / "*"))
        spec = ", ".join(f"{_sql_text(name)}: {_sql_text(kind)}" for name, kind in columns.items())
        # Explicit types, not sampling: a day whose utm columns are all null must read as
        # text all the same; ``dt`` stays text, not the DATE DuckDB would guess.
        return (
            "SELECT * FROM read_json("  # noqa: S608 - the folder's own path, quoted
            f"{pattern}, format = 'newline_delimited', compression = 'auto', "
            f"columns = {{{spec}}}, hive_partitioning = true, "
            "hive_types = {'dt': 'VARCHAR'})"
        )

    def _rows(self, query: SqlQuery, arguments: Sequence[object]) -> list[tuple[Any, ...]]:
        return self.connection.execute(query.text, list(arguments)).fetchall()


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# -- Athena --------------------------------------------------------------------------------

_DONE: Final = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})


class AthenaArchive(EventArchive):
    """The queries on Athena: ``events`` is the Glue table of `database`, run in
    `workgroup` (whose enforced configuration sets the results location, their
    encryption and the bytes-scanned limit). A query still running after
    `timeout_seconds` is stopped and reported."""

    def __init__(
        self,
        *,
        workgroup: str,
        database: str,
        client: Any | None = None,
        timeout_seconds: float = 300.0,
        first_poll_seconds: float = 0.25,
        max_poll_seconds: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.workgroup = workgroup
        self.database = database
        self._client = client
        self.timeout_seconds = timeout_seconds
        self.first_poll_seconds = first_poll_seconds
        self.max_poll_seconds = max_poll_seconds
        self._sleep = sleep
        self._clock = clock

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("athena")
        return self._client

    def start(self, query: SqlQuery, arguments: Sequence[object]) -> str:
        """Start `query`; its execution id."""
        request: dict[str, Any] = {
            "QueryString": query.text,
            "WorkGroup": self.workgroup,
            "QueryExecutionContext": {"Database": self.database},
        }
        if arguments:
            request["ExecutionParameters"] = [athena_literal(value) for value in arguments]
        return str(self.client.start_query_execution(**request)["QueryExecutionId"])

    def wait(self, execution_id: str) -> None:
        """Poll until the query has succeeded; raise if it failed, was cancelled, or is
        still going at the deadline (then it is stopped, so it scans no more)."""
        deadline = self._clock() + self.timeout_seconds
        pause = self.first_poll_seconds
        while True:
            execution = self.client.get_query_execution(QueryExecutionId=execution_id)
            status = execution["QueryExecution"]["Status"]
            state = status["State"]
            if state == "SUCCEEDED":
                return
            if state in _DONE:
                reason = status.get("StateChangeReason", "no reason given")
                raise ArchiveQueryError(f"Athena query {execution_id} {state.lower()}: {reason}")
            if self._clock() + pause > deadline:
                self.client.stop_query_execution(QueryExecutionId=execution_id)
                raise ArchiveQueryError(
                    f"Athena query {execution_id} still {state.lower()} after "
                    f"{self.timeout_seconds:g} s: stopped"
                )
            self._sleep(pause)
            pause = min(pause * 2, self.max_poll_seconds)

    def results(self, execution_id: str) -> list[tuple[str | None, ...]]:
        """Every row of a finished query, as text (None for NULL), its header left out."""
        rows: list[tuple[str | None, ...]] = []
        pages = self.client.get_paginator("get_query_results").paginate(
            QueryExecutionId=execution_id
        )
        for page in pages:
            for row in page["ResultSet"]["Rows"]:
                rows.append(tuple(cell.get("VarCharValue") for cell in row["Data"]))
        # A SELECT's first row is its column names.
        return rows[1:]

    def _rows(self, query: SqlQuery, arguments: Sequence[object]) -> list[tuple[Any, ...]]:
        execution_id = self.start(query, arguments)
        self.wait(execution_id)
        return list(self.results(execution_id))


# -- a local copy of the archive -----------------------------------------------------------


def _days(first_dt: date, last_dt: date) -> Iterator[date]:
    day = first_dt
    while day <= last_dt:
        yield day
        day += timedelta(days=1)


def _local_name(key: str, partition: str, head: bytes) -> str:
    """The file name of an archive object in its local ``dt=`` folder: the key's part
    under the partition, flat, with ``.gz`` added to gzip content DuckDB must inflate."""
    name = key[len(partition) :].replace("/", "_")
    if name in {".", ".."}:
        name = f"_{name}"
    if head.startswith(_GZIP_MAGIC) and not name.endswith(".gz"):
        name += ".gz"
    return name


def download_archive(
    bucket: str,
    first_dt: date,
    last_dt: date,
    into: Path,
    *,
    client: Any | None = None,
    progress: Progress | None = None,
) -> Path:
    """Copy the archive objects of ``dt`` first_dt..last_dt from `bucket` into
    ``<into>/events/dt=YYYY-MM-DD/``, the layout `DuckDbArchive` reads; return `into`.
    `progress` hears the bytes done against the total listed, once before the first
    byte and after every chunk."""
    if client is None:
        import boto3

        client = boto3.client("s3")
    listing = client.get_paginator("list_objects_v2")
    objects: list[tuple[str, str, int]] = []  # partition, key, size
    for day in _days(first_dt, last_dt):
        partition = f"{ARCHIVE_PREFIX}dt={day.isoformat()}/"
        for page in listing.paginate(Bucket=bucket, Prefix=partition):
            objects += [
                (partition, item["Key"], int(item["Size"]))
                for item in page.get("Contents", [])
                if not item["Key"].endswith("/")
            ]
    total = sum(size for _, _, size in objects)
    done = 0
    if progress is not None:
        progress(done, total)
    for partition, key, _ in objects:
        folder = into / partition
        folder.mkdir(parents=True, exist_ok=True)
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        chunk: bytes = body.read(_CHUNK)
        with (folder / _local_name(key, partition, chunk)).open("wb") as file:
            while chunk:
                file.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
                chunk = body.read(_CHUNK)
    return into


@contextmanager
def downloaded_archive(
    bucket: str,
    first_dt: date,
    last_dt: date,
    *,
    client: Any | None = None,
    progress: Progress | None = None,
) -> Iterator[Path]:
    """`download_archive` into a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="rebates-archive-") as folder:
        yield download_archive(
            bucket, first_dt, last_dt, Path(folder), client=client, progress=progress
        )
