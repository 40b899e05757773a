"""DynamoDB transactions back up only the items they write.

`DynamoDBBackend.transact_write_items(self, transact_items)` deep-copies every table an
item names, once per item, to roll back on failure: a 100-item transaction into a table
of N items makes 100 copies of N items, and every copied Item stays in memory (moto's
BaseModel tracks all its instances until a reset). Storing 1,000 offer codes took 76 s
and 3 GB; 5,000 ran out of memory. The replacement is moto's own step for step, but
backs up only the items it writes (and the table's stream records), so it costs what it
writes (5,000 codes: 6 s).

Also for plain `mock_aws` tests and benchmarks, without a local cloud:
`patch_dynamodb_transactions()` installs it for the rest of the process.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from infra.local.patches.registry import Checks, Patch, install_for_good

_DYNAMODB: Final = "moto.dynamodb.models"
_DYNAMODB_TABLE: Final = "moto.dynamodb.models.table"


class _TransactionUndo:
    """The items a TransactWriteItems writes, as they were before it, put back if it fails.

    moto keeps a table's items in `Table.items` alone: {hash: Item}, or {hash: {range:
    Item}} with a sort key. Secondary indexes have no storage of their own (a Query or
    Scan on one filters and sorts `Table.items` each time), so restoring the items
    restores every index too. The only other state a write changes is the table's
    stream, when it has one (`StreamShard.items`, one record per write), which is cut
    back to the records it held: a cancelled transaction leaves no stream records.
    """

    def __init__(self) -> None:
        # (id(table), hash key, range key) -> (table, hash key, range key, a copy of the
        # item as it was or None, whether its hash had a bucket of range keys then)
        self._items: dict[tuple[int, Any, Any], tuple[Any, Any, Any, Any, bool]] = {}
        # id(shard) -> (shard, the record list it had, how many records that list had)
        self._streams: dict[int, tuple[Any, list[Any], int]] = {}

    def remember(self, table: Any, hash_key: Any, range_key: Any) -> None:
        """Keep what is at the key before the transaction writes it."""
        slot = (id(table), hash_key, range_key)
        if slot in self._items:
            # Already remembered: that was the state before the transaction. (Two ops on
            # one item are refused, but a key named by a table's name in one op and by its
            # ARN in another passes moto's check.)
            return
        # .get, not [], on the defaultdict: a lookup must not add an empty bucket.
        stored = table.items.get(hash_key)
        if range_key is None:
            item, had_bucket = stored, False
        else:
            item = None if stored is None else stored.get(range_key)
            had_bucket = stored is not None
        # UpdateItem changes the stored Item in place, so keep a copy, not the object.
        self._items[slot] = (table, hash_key, range_key, copy.deepcopy(item), had_bucket)
        shard = table.stream_shard
        if shard is not None and id(shard) not in self._streams:
            self._streams[id(shard)] = (shard, shard.items, len(shard.items))

    def restore(self) -> None:
        for table, hash_key, range_key, item, had_bucket in self._items.values():
            if range_key is None:
                if item is None:
                    table.items.pop(hash_key, None)
                else:
                    table.items[hash_key] = item
            elif item is not None:
                table.items[hash_key][range_key] = item
            else:
                bucket = table.items.get(hash_key)
                if bucket is not None:
                    bucket.pop(range_key, None)
                    if not bucket and not had_bucket:
                        del table.items[hash_key]
        for shard, records, count in self._streams.values():
            # A stream mapping's delivery replaces the list with a fresh one; the records
            # before the transaction are still the first `count` of the list it had.
            del records[count:]
            shard.items = records


_TRANSACTION_OPERATIONS: Final = frozenset({"ConditionCheck", "Put", "Delete", "Update"})


# (code, message, ALL_OLD item) for one transaction item; (None, None, None): it passed.
_Reason = tuple[str | None, str | None, dict[str, Any] | None]


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """moto's `DynamoDBBackend.transact_write_items`, backing up only what it writes.

    Step for step moto 5.2.5's own (the same checks in the same order, the same backend
    calls, the same exceptions and cancellation reasons), except for the backup: moto
    deep-copies every table an item names, once per item, before writing anything, which
    costs O(table size) per item; here each item's previous state is kept just before it
    is written (`_TransactionUndo`). So two refusals moto leaves half-written are rolled
    back as well: TransactWriteSingleOpException (AWS refuses it before writing
    anything) and items of tables named by ARN (moto backs up tables named by name).
    """
    from moto.dynamodb.exceptions import (
        TooManyTransactionsException,
        TransactionCanceledException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    undo = _TransactionUndo()
    try:
        reasons = _write_transaction(self, transact_items, undo)
        if any(code is not None for code, _, _ in reasons):
            raise TransactionCanceledException(reasons)
    except BaseException:
        undo.restore()
        raise


def _write_transaction(
    backend: Any, transact_items: list[dict[str, Any]], undo: _TransactionUndo
) -> list[_Reason]:
    """Check and write each item in turn, as moto does; one reason per item.

    Raises what refuses the whole request (ValidationException: two operations on one
    item, a malformed key...); a failed condition, a missing table and any other error
    only cancel the transaction, after every item was tried.
    """
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TransactWriteSingleOpException,
    )

    target_items: set[tuple[str, str]] = set()
    reasons: list[_Reason] = []
    for item in transact_items:
        original_item: dict[str, Any] | None = None
        if len(list(item.keys())) > 1:
            raise TransactWriteSingleOpException
        try:
            op_type, op = next(iter(item.items()))
            if op_type not in _TRANSACTION_OPERATIONS:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            key = _transaction_item_key(backend, op_type, op)
            unique = (str(table_name), str(dict(sorted(key.items()))))
            if unique in target_items:
                raise MultipleTransactionsException()
            target_items.add(unique)

            if op_type != "ConditionCheck":
                # The lookups get_item makes next, so they fail the same way first.
                table = backend.get_table(table_name)
                undo.remember(table, *backend.get_keys_value(table, key))
            current = backend.get_item(table_name, key)
            if not _transaction_condition_holds(op, current):
                if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    original_item = current.to_json()["Attributes"]
                raise ConditionalCheckFailed(item=original_item)
            _write_transaction_item(backend, op_type, op, key)
            reasons.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            raise  # refuses the whole request (the caller rolls back)
        except ConditionalCheckFailed as error:
            reasons.append(("ConditionalCheckFailed", str(error.message), original_item))
        except Exception as error:
            # Like moto: any other failure cancels the transaction with its type as the
            # reason (ResourceNotFoundException for a missing table, say).
            reasons.append((type(error).__name__, str(error), original_item))
    return reasons


def _transaction_item_key(backend: Any, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        key: dict[str, Any] = op["Key"]
        return key
    attrs = op["Item"]
    table = backend.get_table(op["TableName"])
    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attrs[table.range_key_attr]
    return key


def _transaction_condition_holds(op: dict[str, Any], current: Any) -> bool:
    from moto.dynamodb.comparisons import get_filter_expression

    condition_expression = op.get("ConditionExpression")
    if condition_expression is None:
        return True
    condition_op = get_filter_expression(
        condition_expression,
        op.get("ExpressionAttributeNames"),
        op.get("ExpressionAttributeValues"),
    )
    return bool(condition_op.expr(current))


def _write_transaction_item(
    backend: Any, op_type: str, op: dict[str, Any], key: dict[str, Any]
) -> None:
    # moto passes the condition on: each write checks it again, against the same item.
    condition = {
        "condition_expression": op.get("ConditionExpression"),
        "expression_attribute_names": op.get("ExpressionAttributeNames"),
        "expression_attribute_values": op.get("ExpressionAttributeValues"),
    }
    if op_type == "Put":
        backend.put_item(op["TableName"], op["Item"], **condition)
    elif op_type == "Delete":
        backend.delete_item(op["TableName"], key, **condition)
    elif op_type == "Update":
        backend.update_item(
            op["TableName"], key, update_expression=op["UpdateExpression"], **condition
        )


PATCH: Final = Patch(
    name="dynamodb_transactions",
    checks=Checks(
        signatures=[
            (_DYNAMODB, "DynamoDBBackend", "transact_write_items", ["self", "transact_items"]),
            (_DYNAMODB, "DynamoDBBackend", "get_keys_value", ["self", "table", "keys"]),
            (
                _DYNAMODB,
                "DynamoDBBackend",
                "get_item",
                ["self", "table_name", "keys", "projection_expressions"],
            ),
            (
                _DYNAMODB,
                "DynamoDBBackend",
                "put_item",
                [
                    "self",
                    "table_name",
                    "item_attrs",
                    "expected",
                    "condition_expression",
                    "expression_attribute_names",
                    "expression_attribute_values",
                    "overwrite",
                    "return_values_on_condition_check_failure",
                ],
            ),
            (
                _DYNAMODB,
                "DynamoDBBackend",
                "delete_item",
                [
                    "self",
                    "table_name",
                    "key",
                    "expression_attribute_names",
                    "expression_attribute_values",
                    "condition_expression",
                    "return_values_on_condition_check_failure",
                ],
            ),
            (
                _DYNAMODB,
                "DynamoDBBackend",
                "update_item",
                [
                    "self",
                    "table_name",
                    "key",
                    "update_expression",
                    "expression_attribute_names",
                    "expression_attribute_values",
                    "attribute_updates",
                    "expected",
                    "condition_expression",
                    "return_values_on_condition_check_failure",
                ],
            ),
        ],
        sources=[
            (
                _DYNAMODB,
                "DynamoDBBackend",
                "transact_write_items",
                (
                    "original_table_state[table_name] = copy.deepcopy(",
                    "raise TransactWriteSingleOpException",
                    'if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:',
                    "check_unicity(table_name, key)",
                    "current = self.get_item(table_name, key)",
                    "raise ConditionalCheckFailed(item=original_item)",
                    "except (MultipleTransactionsException, MockValidationException):",
                    "errors.append((type(e).__name__, str(e), original_item))",
                    "raise TransactionCanceledException(errors)",
                ),
                "the replacement repeats moto's transaction step for step: compare them again",
            ),
            (
                _DYNAMODB_TABLE,
                "Table",
                "__init__",
                ("self.items = defaultdict(dict)", "self.stream_shard: StreamShard | None = None"),
                "a transaction's rollback restores items in Table.items and the stream's records",
            ),
            (
                _DYNAMODB_TABLE,
                "Table",
                "put_item",
                (
                    "self.items[hash_value][range_value] = item",
                    "self.items[hash_value] = item",
                    "self.stream_shard.add(current, item)",
                ),
                "a write changes only Table.items and the stream",
            ),
            (
                _DYNAMODB_TABLE,
                "Table",
                "delete_item",
                ("self.items[hash_key].pop(range_key)", "self.items.pop(hash_key)"),
                "a delete changes only Table.items and the stream",
            ),
            (
                _DYNAMODB_TABLE,
                "Table",
                "has_idx_items",
                ("for hash_set in self.items.values():",),
                "secondary indexes are read from Table.items, so restoring items restores them",
            ),
            (
                _DYNAMODB_TABLE,
                "StreamShard",
                "add",
                ("self.items.append(", "self.items = []"),
                "a transaction's rollback cuts the stream's record list back",
            ),
        ],
    ),
    targets=[(_DYNAMODB, "DynamoDBBackend", "transact_write_items", _transact_write_items)],
)


def patch_dynamodb_transactions() -> None:
    """Make moto's TransactWriteItems cost O(items written), not O(table size) per item.

    Behaviour is unchanged (see `_transact_write_items`). For tests and benchmarks under
    plain `mock_aws`: installs it for the rest of the process; calling again does
    nothing. `apply()` installs it too (until `revert()`), with the
    `transaction_tokens` patch.
    """
    install_for_good(PATCH)


def verify() -> None:
    """Raise `PatchError` naming what moved if moto no longer fits this patch."""
    PATCH.verify()
