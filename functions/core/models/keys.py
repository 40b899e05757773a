"""The pieces of composite keys (`day_key`, `key_part`, with ``clock.instant_key``) and
`global_index`, which builds a GSI straight from its `IndexSpec`."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pynamodb.attributes import UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex

from functions.core.clock import instant_key
from functions.core.tables import TableSpec


def day_key(value: datetime | date) -> str:
    """``YYYY-MM-DD``: the UTC day of an aware instant, or a calendar date as given.

    Buckets of due work (ledger releases and expiries) are UTC days; a campaign's local
    "day" (a date already computed in its timezone) is passed as a `date`.
    """
    if isinstance(value, datetime):
        return instant_key(value)[:10]
    return value.isoformat()


def key_part(value: str) -> str:
    """Escape ``%`` and ``#`` so an opaque value can sit between ``#`` separators.

    Without it the parts ``("a#b", "c")`` and ``("a", "b#c")`` would build the same key,
    which for a uniqueness guard means a false duplicate.
    """
    return value.replace("%", "%25").replace("#", "%23")


def global_index(spec: TableSpec, name: str) -> Any:
    """A GSI (ALL projection, string keys) built from the spec's index called `name`.

    Declare it on the model as ``gsi1: GlobalSecondaryIndex[MyModel] = global_index(...)``
    and declare the key attributes (``gsi1pk``, ``gsi1sk``) on the model too, usually with
    `optional` so the index stays sparse. Returned as ``Any`` because the index is generic
    in a model class that does not exist yet while its body is being evaluated.
    """
    index = next((i for i in spec.indexes if i.name == name), None)
    if index is None:
        raise ValueError(f"{spec.logical_id} has no index {name!r}")
    namespace: dict[str, Any] = {
        "Meta": type("Meta", (), {"index_name": index.name, "projection": AllProjection()}),
        index.partition_key: UnicodeAttribute(hash_key=True),
    }
    if index.sort_key is not None:
        namespace[index.sort_key] = UnicodeAttribute(range_key=True)
    index_cls = type(f"{spec.logical_id}_{index.name}", (GlobalSecondaryIndex,), namespace)
    return index_cls()
