"""`schema_mismatches`: how a PynamoDB model's keys, indexes and TTL differ from its
`TableSpec`. The tests run it on every model, so that model and table cannot drift."""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import TTLAttribute
from pynamodb.constants import STRING
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from functions.core.models import bound_spec
from functions.core.tables import ALL_TABLES, TableSpec


def schema_mismatches(model: type[Model]) -> list[str]:
    """Every way `model`'s keys, indexes and TTL differ from its `TableSpec` (empty: none)."""
    spec = bound_spec(model)
    if spec is None:
        return [f"{model.__name__} is not bound to a TableSpec (use Meta = table_meta(SPEC))"]
    problems = _key_problems(model, spec)
    for index_name, index in model._indexes.items():
        problems += _index_problems(model, spec, index_name, index)
    problems += _ttl_problems(model, spec)
    if spec not in ALL_TABLES:
        problems.append(f"{spec.logical_id} is not listed in ALL_TABLES")
    return problems


def _key_problems(model: type[Model], spec: TableSpec) -> list[str]:
    attributes = list(model.get_attributes().values())
    hash_key = next((a for a in attributes if a.is_hash_key), None)
    range_key = next((a for a in attributes if a.is_range_key), None)
    problems = []
    found_hash = hash_key.attr_name if hash_key else None
    if found_hash != spec.partition_key:
        problems.append(f"partition key is {found_hash!r}, spec says {spec.partition_key!r}")
    found_range = range_key.attr_name if range_key else None
    if found_range != spec.sort_key:
        problems.append(f"sort key is {found_range!r}, spec says {spec.sort_key!r}")
    for key in (hash_key, range_key):
        if key is not None and key.attr_type != STRING:
            problems.append(f"key {key.attr_name!r} is {key.attr_type}, the tables use S keys")
    return problems


def _index_problems(model: type[Model], spec: TableSpec, name: str, index: Any) -> list[str]:
    index_spec = next((i for i in spec.indexes if i.name == name), None)
    if index_spec is None:
        return [f"index {name!r} is not in {spec.logical_id}"]
    problems = []
    if not isinstance(index, GlobalSecondaryIndex):
        problems.append(f"index {name!r} must be a global secondary index")
    keys = list(index.Meta.attributes.values())
    found = (
        next((a.attr_name for a in keys if a.is_hash_key), None),
        next((a.attr_name for a in keys if a.is_range_key), None),
    )
    expected = (index_spec.partition_key, index_spec.sort_key)
    if found != expected:
        problems.append(f"index {name!r} keys are {found}, spec says {expected}")
    if index.Meta.projection.projection_type != AllProjection.projection_type:
        problems.append(f"index {name!r} must project ALL, as the tables do")
    by_dynamo_name = {a.attr_name: a for a in model.get_attributes().values()}
    for key_name in expected:
        if key_name is None:
            continue
        attribute = by_dynamo_name.get(key_name)
        if attribute is None:
            problems.append(f"index key {key_name!r} is not an attribute of {model.__name__}")
        elif attribute.attr_type != STRING:
            problems.append(f"index key {key_name!r} must be a string attribute")
    return problems


def _ttl_problems(model: type[Model], spec: TableSpec) -> list[str]:
    attributes = model.get_attributes().values()
    ttl_names = [a.attr_name for a in attributes if isinstance(a, TTLAttribute)]
    problems = [
        f"TTL attribute {n!r}, but the table's TTL is {spec.ttl_attribute!r}"
        for n in ttl_names
        if n != spec.ttl_attribute
    ]
    if spec.ttl_attribute in {a.attr_name for a in attributes} and not ttl_names:
        problems.append(f"{spec.ttl_attribute!r} is the table's TTL but not a TTLAttribute")
    return problems
