from __future__ import annotations

import pytest

from cli.main import EVENTS_DIR, main
from cli.openapi import build_openapi, check_openapi


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    assert "contracts" in capsys.readouterr().out


def test_committed_openapi_matches_the_routes() -> None:
    assert check_openapi(EVENTS_DIR / "openapi.json") == []


def test_openapi_documents_health() -> None:
    assert '"/v1/health"' in build_openapi()


def test_contracts_check_passes_on_the_committed_files() -> None:
    assert main(["contracts", "check"]) == 0
