"""Typed settings: every handler reads its environment through one pydantic model.

A missing or malformed variable is a deployment bug, so it fails the first invocation
of the container with a message that names every offending variable, instead of a
KeyError deep inside some request.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class SettingsError(RuntimeError):
    """The function's environment does not satisfy its settings model."""


class CoreSettings(BaseModel):
    """What every Rebates function has in its environment."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    service_name: str = Field(alias="POWERTOOLS_SERVICE_NAME", min_length=1)
    version: str = Field(alias="REBATES_VERSION", min_length=1)


class EventBusSettings(CoreSettings):
    """Functions that publish domain events."""

    event_bus_name: str = Field(alias="EVENT_BUS_NAME", min_length=1)


SettingsT = TypeVar("SettingsT", bound=CoreSettings)


def parse_settings(model: type[SettingsT], environ: Mapping[str, str]) -> SettingsT:
    """Validate `environ` against `model`, naming every missing or invalid variable."""
    try:
        return model.model_validate(dict(environ))
    except ValidationError as error:
        problems = []
        for issue in error.errors():
            variable = ".".join(str(part) for part in issue["loc"])
            problems.append(f"{variable}: {issue['msg']}")
        raise SettingsError(
            f"{model.__name__}: environment is missing or invalid: " + "; ".join(problems)
        ) from error


@functools.cache
def _variables(model: type[CoreSettings]) -> tuple[str, ...]:
    return tuple(field.alias or name for name, field in model.model_fields.items())


_loaded: dict[tuple[type[CoreSettings], tuple[str | None, ...]], CoreSettings] = {}


def load_settings(model: type[SettingsT]) -> SettingsT:
    """The settings of this function, validated once for each distinct environment.

    In Lambda that is once per container. The cache is keyed on the values of the
    model's own variables, so functions sharing one process (the local cloud) or
    tests that change the environment never see another environment's settings.
    """
    key = (model, tuple(os.environ.get(variable) for variable in _variables(model)))
    settings = _loaded.get(key)
    if settings is None:
        settings = _loaded[key] = parse_settings(model, os.environ)
    return settings  # type: ignore[return-value]
