"""The PynamoDB base every data-access model builds on.

- `binding`: a model binds to a `TableSpec` with ``Meta = table_meta(SPEC)``, its table
  name read from the environment when PynamoDB asks for it, never at import;
  `TableModel` (keys derived from fields, connections on one botocore session per
  thread), `reset_connections`, `resolve_region`, `resolve_table_name`.
- `attributes`: `MoneyAttribute`, `InstantAttribute` (sortable UTC text),
  `IntegerAttribute`, `TypedMap` and `optional` (a nullable attribute typed ``T | None``).
- `keys`: `day_key` and `key_part` build the pieces of composite keys; `global_index`
  builds a GSI straight from its `IndexSpec`.
- `updates`: `bounded_add` and `bounded_subtract` express a counter that can never pass
  its limit or drop below zero; `upsert_actions` rewrites an item without resetting the
  counters others increment.
- `transactions`: `Transaction`, a TransactWrite whose items carry labels, so a
  cancellation says which item refused (`TransactionCancelled.reasons`).

The check that a model matches its spec runs in the tests only
(``tests/support/schema.py``).
"""

from functions.core.aws import resolve_region
from functions.core.models.attributes import (
    InstantAttribute,
    IntegerAttribute,
    MoneyAttribute,
    TypedMap,
    optional,
)
from functions.core.models.binding import (
    ALLOW_DEFAULT_TABLES_ENV,
    TableModel,
    TableNotConfigured,
    bound_models,
    bound_spec,
    reset_connections,
    resolve_table_name,
    table_meta,
)
from functions.core.models.keys import day_key, global_index, key_part
from functions.core.models.transactions import Transaction, TransactionCancelled
from functions.core.models.updates import bounded_add, bounded_subtract, upsert_actions

__all__ = [
    "ALLOW_DEFAULT_TABLES_ENV",
    "InstantAttribute",
    "IntegerAttribute",
    "MoneyAttribute",
    "TableModel",
    "TableNotConfigured",
    "Transaction",
    "TransactionCancelled",
    "TypedMap",
    "bound_models",
    "bound_spec",
    "bounded_add",
    "bounded_subtract",
    "day_key",
    "global_index",
    "key_part",
    "optional",
    "reset_connections",
    "resolve_region",
    "resolve_table_name",
    "table_meta",
    "upsert_actions",
]
