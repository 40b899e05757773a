"""Event contracts as files: the JSON Schemas of every event detail, generated from the models.

`write_event_schemas` writes `events/detail/<DetailType>.schema.json` for every model in
`functions.core.event_types.EVENT_TYPES`; `check_event_schemas` reports what is out of
date, so CI (`rebates contracts check`) fails when a model changes without regenerating.
The samples beside the schemas (`<DetailType>.sample.json`, whole EventBridge envelopes)
are written by hand; the check also makes sure each one exists and still fits its type.
The campaign file's schema, `events/campaign.schema.json`, is generated and checked the
same way from `functions.campaigns.config.campaign_json_schema`.

The schemas are draft-07, the dialect fastjsonschema (the publisher's validator) and
EventBridge's schema registry both read. pydantic emits 2020-12 style `$defs` references;
they are inlined here, because in draft-07 any keyword next to a `$ref` is ignored and
because a self-contained schema per type is easier to read and hand to a consumer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fastjsonschema
from pydantic import ValidationError

from functions.campaigns.config import campaign_json_schema
from functions.core.event_types import EVENT_TYPES, EventDetail
from functions.core.events import (
    SCHEMA_SUFFIX,
    detail_sample_path,
    detail_schema_path,
    detail_schemas_dir,
)

DRAFT_07 = "http://json-schema.org/draft-07/schema#"
CAMPAIGN_SCHEMA_FILE = "campaign.schema.json"

# Keywords whose value is a schema, a list of schemas, or a name -> schema mapping. Only
# these are walked: the values of `examples`, `enum`, `const` are data, and a property
# may well be named `title`.
_SCHEMA_VALUED = frozenset(
    {"items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else"}
)
_SCHEMA_LISTS = frozenset({"anyOf", "allOf", "oneOf", "prefixItems"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties"})
# pydantic's generated titles ("Occurredat") and defaults add nothing: every property is
# required in a published detail, and the top-level title is set to the detail-type. (The
# campaign file's few defaults are stated in its field descriptions instead.)
_DROPPED = frozenset({"title", "default"})
_DEFS_PREFIX = "#/$defs/"


def detail_schema(model: type[EventDetail]) -> dict[str, Any]:
    """The draft-07 JSON Schema of a detail as published (serialised, by alias)."""
    generated = model.model_json_schema(by_alias=True, mode="serialization")
    return _draft_07(generated, title=model.detail_type)


def campaign_schema() -> dict[str, Any]:
    """The draft-07 JSON Schema of a campaign file (what marketers write)."""
    generated = campaign_json_schema()
    return _draft_07(generated, title=generated["title"])


def campaign_schema_path(events_dir: Path) -> Path:
    return events_dir / CAMPAIGN_SCHEMA_FILE


def _draft_07(generated: dict[str, Any], title: str) -> dict[str, Any]:
    definitions = generated.pop("$defs", {})
    schema = _normalise(generated, definitions, ())
    return {"$schema": DRAFT_07, **schema, "title": title}


def render_schema(schema: Mapping[str, Any]) -> str:
    """Deterministic text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_event_schemas(events_dir: Path) -> list[Path]:
    """Write every detail schema under `events_dir/detail/`; return the paths written.

    The campaign file's schema is written too (`write_campaign_schema`), so that one
    `make contracts` regenerates every generated contract; it is not in the list.

    Schema files of detail-types that no longer exist are deleted, so the directory
    always describes exactly the current models.
    """
    directory = detail_schemas_dir(events_dir)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for detail_type, model in sorted(EVENT_TYPES.items()):
        path = detail_schema_path(detail_type, events_dir)
        path.write_text(render_schema(detail_schema(model)), encoding="utf-8")
        written.append(path)
    for stale in _stale_schemas(directory):
        stale.unlink()
    write_campaign_schema(events_dir)
    return written


def write_campaign_schema(events_dir: Path) -> Path:
    """Write the campaign file's schema as `events_dir/campaign.schema.json`."""
    path = campaign_schema_path(events_dir)
    path.write_text(render_schema(campaign_schema()), encoding="utf-8")
    return path


def check_event_schemas(events_dir: Path) -> list[str]:
    """What differs from what the models produce: one line per problem, none when current.

    Reports missing, out-of-date and stale schema files (the campaign file's included),
    and missing or invalid samples.
    """
    problems: list[str] = []
    for detail_type, model in sorted(EVENT_TYPES.items()):
        schema = detail_schema(model)
        path = detail_schema_path(detail_type, events_dir)
        if not path.exists():
            problems.append(f"{path} is missing")
        elif path.read_text(encoding="utf-8") != render_schema(schema):
            problems.append(f"{path} is out of date with {model.__module__}.{model.__name__}")
        problems.extend(_check_sample(model, schema, detail_sample_path(detail_type, events_dir)))
    problems.extend(
        f"{stale} has no detail-type in EVENT_TYPES"
        for stale in _stale_schemas(detail_schemas_dir(events_dir))
    )
    problems.extend(_check_campaign_schema(campaign_schema_path(events_dir)))
    return problems


def _check_campaign_schema(path: Path) -> list[str]:
    if not path.exists():
        return [f"{path} is missing"]
    if path.read_text(encoding="utf-8") != render_schema(campaign_schema()):
        return [f"{path} is out of date with functions.campaigns.config.CampaignConfig"]
    return []


def _check_sample(model: type[EventDetail], schema: dict[str, Any], path: Path) -> list[str]:
    if not path.exists():
        return [f"{path} is missing: write one sample envelope per detail-type"]
    try:
        envelope = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        return [f"{path} is not JSON: {error}"]
    if not isinstance(envelope, dict) or not isinstance(envelope.get("detail"), dict):
        return [f"{path} is not an EventBridge envelope with a `detail` object"]
    problems = [
        f"{path}: {key} is {envelope.get(key)!r}, expected {expected!r}"
        for key, expected in (("detail-type", model.detail_type), ("source", model.source))
        if envelope.get(key) != expected
    ]
    try:
        fastjsonschema.compile(schema)(envelope["detail"])
    except fastjsonschema.JsonSchemaValueException as error:
        problems.append(f"{path}: detail does not match the schema: {error.message}")
    try:
        model.model_validate(envelope["detail"])
    except ValidationError as error:
        problems.append(f"{path}: detail does not parse as {model.__name__}: {error}")
    return problems


def _stale_schemas(directory: Path) -> list[Path]:
    return sorted(
        path
        for path in directory.glob(f"*{SCHEMA_SUFFIX}")
        if path.name.removesuffix(SCHEMA_SUFFIX) not in EVENT_TYPES
    )


def _normalise(
    node: Mapping[str, Any], definitions: Mapping[str, Any], resolving: tuple[str, ...]
) -> dict[str, Any]:
    """Inline `$defs` references, drop generated noise, close every object schema."""
    if "$ref" in node:
        reference = node["$ref"]
        if not isinstance(reference, str) or not reference.startswith(_DEFS_PREFIX):
            raise ValueError(f"unexpected reference {reference!r} in a generated schema")
        name = reference.removeprefix(_DEFS_PREFIX)
        if name in resolving:
            # Inlining would never end; no detail is recursive, and none should become so.
            raise ValueError(f"recursive model {name} cannot be inlined into a detail schema")
        target = _normalise(definitions[name], definitions, (*resolving, name))
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        # Keywords beside the reference (a field's description) refine the definition.
        return {**target, **_normalise(siblings, definitions, resolving)}

    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key in _SCHEMA_VALUED and isinstance(value, Mapping):
            result[key] = _normalise(value, definitions, resolving)
        elif key in _SCHEMA_LISTS:
            result[key] = [_normalise(item, definitions, resolving) for item in value]
        elif key in _SCHEMA_MAPS:
            result[key] = {
                name: _normalise(item, definitions, resolving) for name, item in value.items()
            }
        else:
            result[key] = value
    if result.get("type") == "object" and "properties" in result:
        # Details are produced only from models, so an unknown key is a producer bug.
        result.setdefault("additionalProperties", False)
    return result
