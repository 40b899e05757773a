from __future__ import annotations

import pytest

from functions.core.settings import EventBusSettings, SettingsError, load_settings, parse_settings


def test_settings_parse_from_environment() -> None:
    settings = parse_settings(
        EventBusSettings,
        {
            "POWERTOOLS_SERVICE_NAME": "offers",
            "REBATES_VERSION": "1.0",
            "EVENT_BUS_NAME": "rebates",
        },
    )
    assert settings.event_bus_name == "rebates"
    assert settings.service_name == "offers"


def test_every_missing_variable_is_named() -> None:
    with pytest.raises(SettingsError) as error:
        parse_settings(EventBusSettings, {"POWERTOOLS_SERVICE_NAME": "offers"})
    message = str(error.value)
    assert "REBATES_VERSION" in message
    assert "EVENT_BUS_NAME" in message


def test_empty_value_is_refused() -> None:
    with pytest.raises(SettingsError, match="EVENT_BUS_NAME"):
        parse_settings(
            EventBusSettings,
            {"POWERTOOLS_SERVICE_NAME": "offers", "REBATES_VERSION": "1", "EVENT_BUS_NAME": ""},
        )


def test_loaded_settings_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "offers")
    monkeypatch.setenv("REBATES_VERSION", "1")
    monkeypatch.setenv("EVENT_BUS_NAME", "rebates")
    first = load_settings(EventBusSettings)
    assert load_settings(EventBusSettings) is first
    # Another function in the same process (the local cloud) sees its own values.
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "claims")
    assert load_settings(EventBusSettings).service_name == "claims"
    monkeypatch.delenv("EVENT_BUS_NAME")
    with pytest.raises(SettingsError, match="EVENT_BUS_NAME"):
        load_settings(EventBusSettings)
