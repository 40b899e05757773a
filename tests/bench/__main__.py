"""`make bench`: run every benchmark and record its figures in docs/benchmarks.md.

`python -m tests.bench PART...` runs only the parts named (foundation, local-cloud,
offers, wallet, claims, notifications, analytics, analytics-sql), in the order given; no
name runs them all.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from tests.bench import (
    analytics,
    analytics_sql,
    claims,
    foundation,
    local_cloud,
    notifications,
    offers,
    wallet,
)

PARTS: dict[str, Callable[[], None]] = {
    "foundation": foundation.run,
    "local-cloud": local_cloud.run,
    "offers": offers.run,
    "wallet": wallet.run,
    "claims": claims.run,
    "notifications": notifications.run,
    "analytics": analytics.run,
    "analytics-sql": analytics_sql.run,
}


def main(argv: list[str] | None = None) -> None:
    names = sys.argv[1:] if argv is None else argv
    unknown = [name for name in names if name not in PARTS]
    if unknown:
        raise SystemExit(f"unknown part(s) {', '.join(unknown)}: choose from {', '.join(PARTS)}")
    for name in names or list(PARTS):
        PARTS[name]()


if __name__ == "__main__":
    main()
