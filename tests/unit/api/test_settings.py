from __future__ import annotations

import pytest

from functions.core.settings import EventBusSettings, SettingsError, parse_settings


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
