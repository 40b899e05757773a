from __future__ import annotations

from pathlib import Path

import pytest

from cli.local import LocalCloudUnavailable, control, parse_duration
from cli.main import main


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("2h", 7200), ("3d", 259_200), ("-1d", -86_400)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["3", "3w", "d", "1.5h", ""])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="unit"):
        parse_duration(text)


def test_control_without_a_running_cloud_says_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(LocalCloudUnavailable, match="make run"):
        control("GET", "clock", outputs=tmp_path / "outputs.json")


def test_local_fire_fails_cleanly_without_a_cloud(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("cli.local.OUTPUTS", tmp_path / "outputs.json")
    assert main(["local", "fire", "reminders"]) == 1
    assert "make run" in capsys.readouterr().err
