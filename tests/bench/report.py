"""Benchmark figures: printed, and recorded in docs/benchmarks.md section by section.

Each benchmark owns one section between markers; a run replaces its own section and
leaves the others, so figures from different issues live side by side.
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS_DOC = ROOT / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\n"
    "Written by `make bench`. Every figure is a ratio against a floor measured in the same\n"
    "run on the same machine, so figures stay comparable across machines; absolute times\n"
    "are shown for context only.\n"
)


def machine() -> str:
    return f"{platform.machine()}, Python {platform.python_version()}, {platform.system()}"


def median_seconds(
    command: Sequence[str], runs: int, env: dict[str, str] | None = None
) -> tuple[float, list[str]]:
    """Median of the seconds a child reports on its last line, and its other lines."""
    samples = []
    lines: list[str] = []
    for _ in range(runs):
        out = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
        *lines, last = out.stdout.strip().splitlines()
        samples.append(float(last))
    return statistics.median(samples), lines


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def record(section: str, title: str, body: str) -> None:
    """Print a section and replace it in docs/benchmarks.md."""
    text = f"## {title}\n\nMachine: {machine()}.\n\n{body.strip()}\n"
    print(text)
    begin, end = f"<!-- BEGIN {section} -->", f"<!-- END {section} -->"
    doc = BENCHMARKS_DOC.read_text(encoding="utf-8") if BENCHMARKS_DOC.exists() else HEADER
    block = f"{begin}\n{text}{end}"
    if begin in doc and end in doc:
        head, rest = doc.split(begin, 1)
        _, tail = rest.split(end, 1)
        doc = head + block + tail
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    BENCHMARKS_DOC.write_text(doc, encoding="utf-8")


def python() -> str:
    return sys.executable
