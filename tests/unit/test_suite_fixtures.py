"""The suite's own fixtures keep their promises (tests/conftest.py)."""

from __future__ import annotations

import boto3
import botocore.session
import pytest


def test_fresh_sessions_share_parsed_data_files_and_still_read_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    first = botocore.session.get_session()
    assert first.get_config_variable("region") == "eu-west-1"

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-2")
    second = botocore.session.get_session()
    assert second.get_config_variable("region") == "us-east-2"

    assert first.get_component("data_loader") is second.get_component("data_loader")


def test_boto3_sessions_add_their_data_folder_to_the_shared_loader_at_most_twice() -> None:
    for _ in range(10):
        loader = boto3.session.Session()._session.get_component("data_loader")

    paths = loader.search_paths
    assert len(paths) - len(set(paths)) <= 1, paths
