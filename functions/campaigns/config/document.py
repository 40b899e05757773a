"""The raw document as the models would hold it, read for the rules.

Each value is validated on its own with its field's type; an absent or invalid one reads
as None, so a rule built on it says nothing (the shape layer reports it). A `Problem` is
what a rule reports: the location of the value to fix and a message.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any, NamedTuple, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError

from functions.core.validation import format_location

Location = tuple[str | int, ...]


class Problem(NamedTuple):
    location: Location
    message: str

    @property
    def path(self) -> str:
        return format_location(self.location)


def as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def list_items(value: Any) -> list[tuple[int, Any]]:
    return list(enumerate(value)) if isinstance(value, list | tuple) else []


def is_given(section: Mapping[str, Any], key: str) -> bool:
    # An explicit null (`reward:` with nothing after it) reads as absent, as in the models.
    return section.get(key) is not None


@cache
def _field_adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    field = model.model_fields[name]
    # The field's type with its constraints and validators (they live on the FieldInfo).
    field_type: Any = Annotated[field.annotation, field]
    return TypeAdapter(field_type)


@cache
def _item_adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    item_type = _tuple_item_type(model.model_fields[name].annotation)
    if item_type is None:
        raise TypeError(f"{model.__name__}.{name} is not a list")
    return TypeAdapter(item_type)


def _tuple_item_type(annotation: Any) -> Any:
    if get_origin(annotation) is tuple:
        return get_args(annotation)[0]
    for argument in get_args(annotation):
        found = _tuple_item_type(argument)
        if found is not None:
            return found
    return None


def _validated(adapter: TypeAdapter[Any], raw: Any) -> Any:
    try:
        return adapter.validate_python(raw)
    except ValidationError:
        return None


def read_field(section: Mapping[str, Any], model: type[BaseModel], name: str) -> Any:
    """``section[name]`` as ``model`` would hold it; None when absent or invalid (then the
    shape layer reports it, and a rule built on it has nothing to say)."""
    raw = section.get(name)
    return None if raw is None else _validated(_field_adapter(model, name), raw)


def read_items(
    section: Mapping[str, Any], model: type[BaseModel], name: str, at: Location
) -> list[tuple[Location, Any]]:
    """Each item of the list ``section[name]``, validated on its own, with its location."""
    adapter = _item_adapter(model, name)
    return [
        ((*at, name, index), _validated(adapter, raw))
        for index, raw in list_items(section.get(name))
    ]
