"""A shell with no AWS configuration at all, whatever the developer's own ~/.aws holds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def bare_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No AWS variables, no shared files, no instance metadata; returns a dir for files."""
    for name in list(os.environ):
        if name.startswith("AWS_") or name == "REBATES_TARGET":
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    # Sockets are off in unit tests: the instance-metadata provider must not try one.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path
