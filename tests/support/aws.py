"""In-process moto fixtures: fake credentials and the Rebates tables, fresh per test.

Shared by the unit test packages that touch DynamoDB (no sockets: moto runs in-process).
A package uses them by importing both names into its conftest or test module, as pytest
finds fixtures by name in the module namespace.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from functions.core.models import ALLOW_DEFAULT_TABLES_ENV, reset_connections
from functions.core.tables import ALL_TABLES
from tests.support.tables import create_tables

__all__ = ["aws_env", "tables"]


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region, default table names, and nothing inherited.

    Inherited table variables or endpoints would point the models somewhere else than the
    tables created here; clearing them keeps a developer's shell from changing results.
    """
    for spec in ALL_TABLES:
        monkeypatch.delenv(spec.env_var, raising=False)
    for variable in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-northeast-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv(ALLOW_DEFAULT_TABLES_ENV, "1")


@pytest.fixture
def tables(aws_env: None) -> Iterator[list[str]]:
    """All the Rebates tables, created from their specs, empty; yields their names."""
    # Connections cached by an earlier test may carry another region or endpoint.
    reset_connections()
    with mock_aws():
        yield create_tables()
    reset_connections()
