"""Suite-wide: tests under tests/integration are marked `integration` and run last, and
every botocore session reads botocore's data files through one loader.

The local cloud they share is started once and patches moto and the process
environment until the session ends; unit and infra tests must never run under it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import botocore.loaders
import botocore.session
import pytest

INTEGRATION = Path(__file__).parent / "integration"


def _is_integration(item: pytest.Item) -> bool:
    return INTEGRATION in Path(str(item.path)).parents


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _is_integration(item):
            item.add_marker(pytest.mark.integration)
    items.sort(key=_is_integration)


@pytest.fixture(scope="session", autouse=True)
def one_botocore_loader() -> Iterator[None]:
    """Every botocore session of the run reads botocore's data files through one loader.

    Tests start afresh often (`reset_connections`, and moto drops boto3's default session
    on every start), and each fresh session would parse endpoints.json and every service
    model it creates a client of again, 0.1-0.3 s a test. The files never change during
    a run, and what a session reads from the environment (region, credentials,
    endpoints) is still read afresh: only the parsed data files are kept, as one
    long-lived session keeps them.
    """
    loaders: dict[str | None, botocore.loaders.Loader] = {}
    create_loader = botocore.session.create_loader

    def shared_loader(search_path_string: str | None = None) -> botocore.loaders.Loader:
        if search_path_string not in loaders:
            loaders[search_path_string] = create_loader(search_path_string)
        loader = loaders[search_path_string]
        # Each boto3 session appends boto3's data folder to its loader's search paths:
        # pruned back to one copy (in its first place) whenever a session takes the
        # loader, or the list would grow by one with every session of the run.
        loader.search_paths[:] = dict.fromkeys(loader.search_paths)
        return loader

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(botocore.session, "create_loader", shared_loader)
        yield
