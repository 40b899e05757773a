"""`make bench`: run every benchmark and record its figures in docs/benchmarks.md."""

from __future__ import annotations

from tests.bench import foundation, local_cloud, offers


def main() -> None:
    foundation.run()
    local_cloud.run()
    offers.run()


if __name__ == "__main__":
    main()
