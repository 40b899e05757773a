"""Every SQL text of `functions/analytics/sql/` stays one text for DuckDB and Athena.

Each file must parse as Trino (Athena's engine) and as DuckDB, and use only what both
do alike. The checks walk sqlglot's tree rather than the text where they can:

- no QUALIFY (Athena lacks it), no ILIKE, no DuckDB ``//`` or ``::``;
- functions only from `PORTABLE_FUNCTIONS`, an allow-list of names both engines define
  with the same meaning; anything sqlglot does not know (DuckDB's ``epoch_ms``, Trino's
  ``from_unixtime``...) fails, with the DuckDB-only and Trino-only names known to tempt
  named in the message;
- no ``/`` unless one side is cast to DOUBLE: Trino divides integers as integers and
  DuckDB as doubles;
- no timestamp arithmetic or time zone conversion (the engines disagree on both:
  instants are compared as ``occurred_ms``, days are made by the caller);
- every ``?`` inside a WHERE clause (Athena takes execution parameters nowhere else), no
  ``?`` anywhere else in the text (a comment's would shift the parameters), and as many
  as the file's ``-- parameters:`` line names.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from functions.analytics.queries import QUERY_NAMES, load_query

SQL_DIR = Path(__file__).resolve().parents[3] / "functions" / "analytics" / "sql"
SQL_FILES = sorted(SQL_DIR.glob("*.sql"))

# Names both DuckDB and Trino define alike, as sqlglot names them. Extend with care:
# check the function in both engines' documentation first.
PORTABLE_FUNCTIONS = frozenset(
    {
        "COUNT",
        "SUM",
        "MIN",
        "MAX",
        "AVG",
        "COALESCE",
        "ROW_NUMBER",
        "CASE",
        "IF",  # sqlglot's node for CASE's WHEN branches
        "CAST",
        "ABS",
        "GREATEST",
        "LEAST",
        "LOWER",
        "UPPER",
    }
)
# What tempts, named so a failure says why.
DUCKDB_ONLY = frozenset(
    {
        "epoch_ms",
        "epoch",
        "strftime",
        "strptime",
        "list",
        "list_value",
        "list_agg",
        "array_agg",
        "struct_pack",
        "regexp_matches",
        "string_agg",
        "time_bucket",
        "date_sub",
        "datediff",
        "make_timestamp",
        "to_timestamp",
        "arg_max",
        "arg_min",
        "timezone",
        "ifnull",
        "nullif",
    }
)
TRINO_ONLY = frozenset(
    {
        "from_unixtime",
        "to_unixtime",
        "at_timezone",
        "date_format",
        "date_diff",
        "date_add",
        "format_datetime",
        "max_by",
        "min_by",
        "approx_distinct",
        "try",
        "regexp_like",
    }
)
FORBIDDEN_NODES: dict[type[exp.Expr], str] = {
    exp.Qualify: "QUALIFY (Athena has none: filter row_number() in an outer WHERE)",
    exp.ILike: "ILIKE (Trino has none: lower() and LIKE)",
    exp.IntDiv: "// (DuckDB only)",
    exp.AtTimeZone: "AT TIME ZONE (DuckDB and Trino read it differently)",
    exp.Interval: "INTERVAL arithmetic (use occurred_ms)",
    exp.TimeToUnix: "a time-to-epoch function (use occurred_ms)",
    exp.UnixToTime: "an epoch-to-time function (use occurred_ms)",
}
DOUBLE_TYPES = frozenset({exp.DataType.Type.DOUBLE})


def sql_id(path: Path) -> str:
    return path.name


def code_only(text: str) -> str:
    """The text without comments and string literals (where ``?`` or ``::`` mean nothing
    to the engine but would to a check on the text)."""
    text = re.sub(r"'(?:[^']|'')*'", "''", text)
    return re.sub(r"--[^\n]*", "", text)


def trino_tree(text: str) -> exp.Expr:
    statements = sqlglot.parse(text, read="trino")
    assert len(statements) == 1, "one statement per file"
    tree = statements[0]
    assert tree is not None
    return tree


def function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).upper()
    return node.sql_name().upper()


def _is_double(node: exp.Expr) -> bool:
    if isinstance(node, exp.Paren):
        return _is_double(node.this)
    if isinstance(node, exp.Cast):
        return node.to.this in DOUBLE_TYPES
    return isinstance(node, exp.Literal) and not node.is_string and "." in node.this


# -- the checks: each returns what it finds wrong ------------------------------------------


def forbidden_constructs(text: str) -> list[str]:
    code = code_only(text)
    found = []
    if "::" in code:
        found.append(":: casts (DuckDB only: CAST(x AS t))")
    if re.search(r"\bqualify\b", code, re.IGNORECASE):
        found.append("QUALIFY (Athena has none: filter row_number() in an outer WHERE)")
    try:
        tree = trino_tree(text)
    except sqlglot.ParseError as error:
        return [*found, f"does not parse as Trino: {error}"]
    found += [why for kind, why in FORBIDDEN_NODES.items() if tree.find(kind) is not None]
    return found


def engine_specific_functions(text: str) -> list[str]:
    called = {name.lower() for name in re.findall(r"\b([A-Za-z_]+)\s*\(", code_only(text))}
    found = [f"{name} (DuckDB only)" for name in sorted(called & DUCKDB_ONLY)]
    found += [f"{name} (Trino only)" for name in sorted(called & TRINO_ONLY)]
    names = {
        function_name(node)
        for node in trino_tree(text).find_all(exp.Func)
        if not isinstance(node, exp.Binary | exp.Connector | exp.Not | exp.Paren)
    }
    found += [f"{name} (not known to be alike)" for name in sorted(names - PORTABLE_FUNCTIONS)]
    return found


def integer_divisions(text: str) -> list[str]:
    return [
        division.sql("trino")
        for division in trino_tree(text).find_all(exp.Div)
        if not (_is_double(division.this) or _is_double(division.expression))
    ]


def misplaced_parameters(text: str) -> list[str]:
    placeholders = list(trino_tree(text).find_all(exp.Placeholder))
    found = [
        f"? outside WHERE: {p.parent.sql('trino') if p.parent else '?'}"
        for p in placeholders
        if p.find_ancestor(exp.Where) is None
    ]
    if text.count("?") != len(placeholders):
        found.append("a ? in a comment or string would shift the parameters")
    return found


# -- the files ------------------------------------------------------------------------------


def test_every_query_has_its_file() -> None:
    assert {path.stem for path in SQL_FILES} == set(QUERY_NAMES)


@pytest.mark.parametrize("path", SQL_FILES, ids=sql_id)
def test_parses_as_trino_and_as_duckdb(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    trino_tree(text)
    assert sqlglot.parse_one(text, read="duckdb") is not None
    (as_duckdb,) = sqlglot.transpile(text, read="trino", write="duckdb")
    assert sqlglot.parse_one(as_duckdb, read="duckdb") is not None


@pytest.mark.parametrize("path", SQL_FILES, ids=sql_id)
def test_uses_no_construct_either_engine_lacks(path: Path) -> None:
    assert forbidden_constructs(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", SQL_FILES, ids=sql_id)
def test_calls_only_functions_both_engines_define_alike(path: Path) -> None:
    assert engine_specific_functions(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", SQL_FILES, ids=sql_id)
def test_divides_only_doubles(path: Path) -> None:
    assert integer_divisions(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", SQL_FILES, ids=sql_id)
def test_parameters_sit_in_where_clauses_and_match_their_names(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert misplaced_parameters(text) == []
    placeholders = list(trino_tree(text).find_all(exp.Placeholder))
    assert len(placeholders) == len(load_query(path.stem).parameters)


@pytest.mark.parametrize("path", SQL_FILES, ids=sql_id)
def test_reads_only_the_events_relation(path: Path) -> None:
    tree = trino_tree(path.read_text(encoding="utf-8"))
    ctes = {cte.alias for cte in tree.find_all(exp.CTE)}
    assert {table.name for table in tree.find_all(exp.Table)} - ctes == {"events"}


def scans_of_events(text: str) -> int:
    """How often Trino reads ``events`` for `text`: it inlines every WITH query at each
    reference, so a CTE read twice is scanned (and billed by Athena) twice."""
    tree = trino_tree(text)
    bodies = {cte.alias: cte.this for cte in tree.find_all(exp.CTE)}
    main = tree.copy()
    main.set("with_", None)

    def scans(node: exp.Expr) -> int:
        total = 0
        for table in node.find_all(exp.Table):
            if table.name in bodies:
                total += scans(bodies[table.name])
            elif table.name == "events":
                total += 1
        return total

    return scans(main)


# What each query costs Athena in reads of the archive: the funnel and the daily figures
# one, attribution two (the campaign's purchases, and every visitor's touches).
SCANS = {"funnel": 1, "daily": 1, "attribution": 2}


@pytest.mark.parametrize("path", SQL_FILES, ids=sql_id)
def test_reads_the_archive_as_few_times_as_it_must(path: Path) -> None:
    assert scans_of_events(path.read_text(encoding="utf-8")) == SCANS[path.stem]


def test_scans_count_every_reference_of_a_cte() -> None:
    text = "WITH a AS (SELECT x FROM events) SELECT x FROM a UNION ALL SELECT x FROM a"
    assert scans_of_events(text) == 2


# -- the checks catch what they are for -----------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "caught"),
    [
        ("SELECT a FROM events QUALIFY row_number() OVER (ORDER BY a) = 1", "QUALIFY"),
        ("SELECT a::BIGINT FROM events", "::"),
        ("SELECT a FROM events WHERE b ILIKE 'x%'", "ILIKE"),
        ("SELECT a // 2 FROM events", "does not parse as Trino"),
        ("SELECT a FROM events WHERE t > t - INTERVAL '1' DAY", "INTERVAL"),
        ("SELECT a AT TIME ZONE 'Asia/Tokyo' FROM events", "AT TIME ZONE"),
    ],
)
def test_forbidden_constructs_are_caught(sql: str, caught: str) -> None:
    assert any(caught in found for found in forbidden_constructs(sql)), forbidden_constructs(sql)


@pytest.mark.parametrize(
    ("sql", "caught"),
    [
        ("SELECT epoch_ms(a) FROM events", "epoch_ms (DuckDB only)"),
        ("SELECT strftime(a, '%Y') FROM events", "strftime (DuckDB only)"),
        ("SELECT list_value(a) FROM events", "list_value (DuckDB only)"),
        ("SELECT from_unixtime(a) FROM events", "from_unixtime (Trino only)"),
        ("SELECT max_by(a, b) FROM events", "max_by (Trino only)"),
        ("SELECT date_trunc('day', a) FROM events", "not known to be alike"),
    ],
)
def test_engine_specific_functions_are_caught(sql: str, caught: str) -> None:
    found = engine_specific_functions(sql)
    assert any(caught in what for what in found), found


def test_integer_division_is_caught_and_a_double_passes() -> None:
    assert integer_divisions("SELECT count(*) / sum(b) FROM events") != []
    assert integer_divisions("SELECT CAST(count(*) AS DOUBLE) / sum(b) FROM events") == []
    assert integer_divisions("SELECT a / 2.0 FROM events") == []


def test_parameters_outside_where_are_caught() -> None:
    assert misplaced_parameters("SELECT ? AS a FROM events") != []
    assert misplaced_parameters("-- is it?\nSELECT a FROM events WHERE b = ?") != []
    assert misplaced_parameters("SELECT a FROM events WHERE b = ?") == []
