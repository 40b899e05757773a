"""Suite-wide: tests under tests/integration are marked `integration` and run last.

The local cloud they share is started once and patches moto and the process
environment until the session ends; unit and infra tests must never run under it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

INTEGRATION = Path(__file__).parent / "integration"


def _is_integration(item: pytest.Item) -> bool:
    return INTEGRATION in Path(str(item.path)).parents


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _is_integration(item):
            item.add_marker(pytest.mark.integration)
    items.sort(key=_is_integration)
