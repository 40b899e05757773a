"""Every change the local cloud makes to moto's behaviour, and a check that it still fits.

moto 5.2.5 is pinned because these reach into private members. `verify()` checks each
target still exists with the shape the patch expects; tests/unit/local/test_patches.py
fails loudly (naming what moved) when a moto upgrade breaks one.

The patches:

1. `LambdaFunction._invoke_lambda(self, event)` runs the real handler in-process
   (`LambdaRuntime.run`) instead of in Docker, returning `(payload_json, is_error,
   logs)`. Every Lambda delivery in moto funnels through it via `LambdaFunction.invoke`,
   and every one hands it an already-parsed JSON event (a dict), except an Invoke with
   an empty body, which arrives as the string "{}":
   - Invoke (RequestResponse, Event and DryRun alike: moto runs all three synchronously
     inside the request; an Event invocation's error is only in the history);
   - Step Functions Lambda tasks, both `Resource: <function ARN>` and
     `arn:aws:states:::lambda:invoke` (moto's ASL engine calls Invoke over HTTP on
     http://localhost:$MOTO_PORT, or in-process under `mock_aws`: the Invoke path);
   - S3 notifications (inside PutObject; moto swallows the handler's error);
   - SNS to Lambda (inside Publish; a fixed sample envelope around the message);
   - SQS, Kinesis and DynamoDB-stream event source mappings (synchronously inside
     SendMessage/PutRecord/the write). SQS mappings are detached from moto
     (`detach_sqs_event_source`) and delivered by `pollers.SqsPoller` instead;
     DynamoDB stream mappings likewise (`detach_table_stream_source`), delivered by
     `stream_pollers.TableStreamPoller` after the write, with their FilterCriteria:
     moto would run the function in the middle of a transaction, before it is known
     to commit, with the gate released.
2. `Queue.wait_for_messages(self, timeout)` releases the gate while a long-polling
   ReceiveMessage waits, so `aws sqs receive-message --wait-time-seconds 20` or a
   poller does not stall every other request into moto for that long; it also waits
   in 0.1 s slices so a message made visible again is picked up promptly.
3. Step Functions Wait states and Retry intervals sleep for real; moto has no setting
   for it. `set_step_functions_time_scale(0.01)` shortens both (default 1: real time).
4. `DynamoDBBackend.transact_write_items(self, transact_items)` deep-copies every table
   an item names, once per item, to roll back on failure: a 100-item transaction into a
   table of N items makes 100 copies of N items, and every copied Item stays in memory
   (moto's BaseModel tracks all its instances until a reset). Storing 1,000 offer codes
   took 76 s and 3 GB; 5,000 ran out of memory. The replacement is moto's own step for
   step, but backs up only the items it writes (and the table's stream records), so it
   costs what it writes (5,000 codes: 6 s). In the local cloud only,
   `DynamoHandler.transact_write_items(self)` is wrapped too: moto ignores
   ClientRequestToken, so an SDK retry of a transaction whose response was lost would
   apply it twice (its conditions then refuse the retry: a redemption that happened
   reads as refused); the wrapper answers a repeat as DynamoDB does, with success and
   no second effect within 10 minutes.
5. `S3Backend.delete_object(self, bucket_name, key_name, version_id, bypass)` on a
   versioned bucket notifies nothing for a delete marker it creates, and ObjectRemoved
   for a version only when it was the key's last. As S3 does, the replacement notifies
   `s3:ObjectRemoved:DeleteMarkerCreated` for a DeleteObject without a version id and
   `s3:ObjectRemoved:Delete` for each version removed, through moto's own
   `notifications.send_event` (Lambda, SQS, SNS, EventBridge, as for ObjectCreated).

4 and 5 are also for plain `mock_aws` tests and benchmarks, without a local cloud:
`patch_dynamodb_transactions()` and `patch_s3_delete_notifications()` install them for
the rest of the process; `apply()` installs them until `revert()`.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import inspect
import json
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from infra.local.lambdas import LocalFunction, log_tail, save_logs_to_moto

if TYPE_CHECKING:
    from infra.local.lambdas import LambdaRuntime

__all__ = [
    "PINNED_MOTO_VERSION",
    "PatchError",
    "active_runtime",
    "apply",
    "detach_sqs_event_source",
    "detach_table_stream_source",
    "patch_dynamodb_transactions",
    "patch_s3_delete_notifications",
    "revert",
    "set_step_functions_time_scale",
    "step_functions_time_scale",
    "verify",
]

PINNED_MOTO_VERSION: Final = "5.2.5"


class PatchError(RuntimeError):
    """moto no longer has the shape a patch expects (see `verify()`)."""


_lock = threading.RLock()
# A stack, so a second local cloud in the same process (an integration test module
# beside a session-wide one) can take over and hand back; moto's backends are global.
_runtimes: list[LambdaRuntime] = []
# (owner object, attribute name, original value) for each attribute apply() patched;
# revert() restores them.
_originals: list[tuple[Any, str, Any]] = []
# The same for patches installed for the rest of the process (patch_dynamodb_transactions,
# patch_s3_delete_notifications); apply() leaves these as they are.
_lasting: list[tuple[Any, str, Any]] = []


class _TimeScale:
    value = 1.0


def active_runtime() -> LambdaRuntime | None:
    with _lock:
        return _runtimes[-1] if _runtimes else None


def _runtime() -> LambdaRuntime:
    runtime = active_runtime()
    if runtime is None:
        raise PatchError("moto called a local-cloud patch after revert()")
    return runtime


def _original(owner: Any, name: str) -> Any:
    """The unpatched attribute (also while patched)."""
    for patched_owner, patched_name, value in (*_originals, *_lasting):
        if patched_owner is owner and patched_name == name:
            return value
    return getattr(owner, name)


def _is_lasting(owner: Any, name: str) -> bool:
    return any(patched is owner and patched_name == name for patched, patched_name, _ in _lasting)


# -- 1. Lambda invocations run the real handler -----------------------------------------


def _event_from_moto(event: Any) -> Any:
    # `LambdaFunction.invoke` json-loads the body, but substitutes the *string* "{}"
    # for an empty body; the Docker path then json.dumps it into `"{}"`. Lambda would
    # hand the handler an empty object.
    if event is None or event == "{}":
        return {}
    return event


def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
    runtime = _runtime()
    invocation = runtime.run(LocalFunction.from_moto(self), _event_from_moto(event))
    if runtime.save_logs:
        # The moto request that called us holds the gate again by now.
        save_logs_to_moto(self, invocation.logs)
    tail = log_tail(invocation.logs)
    if invocation.error is not None:
        # The Python runtime's error document; Step Functions reads `errorType` from it
        # for Retry/Catch, and puts the whole document in the Cause.
        document = {
            "errorMessage": invocation.error["errorMessage"],
            "errorType": invocation.error["errorType"],
            "requestId": invocation.request_id,
            "stackTrace": invocation.error["stackTrace"],
        }
        return json.dumps(document), True, tail
    return json.dumps(invocation.payload), False, tail


# -- 2. long polls do not hold the gate ------------------------------------------------


# moto's wait wakes on SendMessage only; a message becoming visible again (a retry
# after ChangeMessageVisibility, an expired visibility timeout) is noticed when the
# wait times out. receive_message loops until its own deadline anyway, so shorter
# waits change nothing but how soon such a message is picked up.
_LONG_POLL_SLICE_SECONDS: Final = 0.1


def _wait_for_messages(self: Any, timeout: int) -> None:
    from moto.sqs.models import Queue

    original = _original(Queue, "wait_for_messages")
    # receive_message only reads queue state again after this wait returns, so other
    # requests may run meanwhile.
    with _runtime().gate.released():
        original(self, min(timeout, _LONG_POLL_SLICE_SECONDS))


# -- 3. Step Functions waits ----------------------------------------------------------


def set_step_functions_time_scale(scale: float) -> None:
    """Multiply every Step Functions Wait state and Retry interval by `scale` (>0).

    For tests and the demo: 0.01 makes a 60 s Wait take 0.6 s. Applies from the next
    wait on, while the patches are applied.
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    _TimeScale.value = float(scale)


def step_functions_time_scale() -> float:
    return _TimeScale.value


def _wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
        WaitFunction,
    )

    scale = _TimeScale.value
    if scale == 1.0:
        _original(WaitFunction, "_wait_interval")(self, env, wait_seconds)
        return
    # moto's own loop rounds waited time to whole seconds, so a fractional wait would
    # never finish there; this keeps its contract: wake early only if the execution
    # stops (program_state_event), otherwise wait out the (scaled) interval.
    deadline = time.monotonic() + wait_seconds * scale
    while env.is_running():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        if env.program_state_event.wait(remaining) and env.is_running():
            time.sleep(min(remaining, 0.05))


class _ScaledTime:
    """Stands in for the `time` module inside moto's retrier: scaled `sleep`."""

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(seconds * _TimeScale.value)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


# -- 4. DynamoDB transactions back up only the items they write -----------------------


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


# DynamoDB remembers a transaction's ClientRequestToken for 10 minutes after it succeeds.
_TOKEN_WINDOW_SECONDS: Final = 600.0
# Oldest first (insertion order), so expired tokens are dropped from the front.
_completed_tokens: dict[str, tuple[float, str]] = {}


def _idempotent_parameter_mismatch(token: str) -> Exception:
    from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException

    return DynamodbException(
        ERROR_TYPE_PREFIX + "IdempotentParameterMismatchException",
        f"ClientRequestToken {token} was used with different parameters",
    )


def _transact_write_items_once(self: Any) -> Any:
    """`DynamoHandler.transact_write_items` honouring ClientRequestToken, as DynamoDB does.

    moto ignores the token, so an SDK retry of a transaction whose response was lost
    (a dropped connection, a 5xx after the commit) applies it a second time: its
    conditions then refuse it, and a redemption that happened is reported as a refusal.
    DynamoDB instead answers an identical request with the same token, within 10
    minutes of the first one's success, with success and no second effect; the same
    token with other parameters is IdempotentParameterMismatchException.
    """
    from moto.core.responses import ActionResult
    from moto.dynamodb.responses import DynamoHandler

    stock = _original(DynamoHandler, "transact_write_items")
    token = self.body.get("ClientRequestToken")
    if not token:
        return stock(self)
    request = {key: value for key, value in self.body.items() if key != "ClientRequestToken"}
    fingerprint = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
    now = time.monotonic()
    with _lock:
        while _completed_tokens:
            oldest = next(iter(_completed_tokens))
            if now - _completed_tokens[oldest][0] <= _TOKEN_WINDOW_SECONDS:
                break
            del _completed_tokens[oldest]
        seen = _completed_tokens.get(token)
    if seen is not None:
        if seen[1] != fingerprint:
            raise _idempotent_parameter_mismatch(token)
        return ActionResult({"ConsumedCapacity": [], "ItemCollectionMetrics": {}})
    result = stock(self)
    with _lock:
        _completed_tokens[token] = (time.monotonic(), fingerprint)
    return result


def patch_dynamodb_transactions() -> None:
    """Make moto's TransactWriteItems cost O(items written), not O(table size) per item.

    Behaviour is unchanged (see `_transact_write_items`). For tests and benchmarks under
    plain `mock_aws`: installs it for the rest of the process; calling again does
    nothing. `apply()` installs it too (until `revert()`), with `_transact_write_items_once`.
    """
    from moto.dynamodb.models import DynamoDBBackend

    _install_for_good(
        DynamoDBBackend, "transact_write_items", _transact_write_items, _DYNAMODB_CHECKS
    )


# -- 5. S3 delete notifications as AWS sends them -------------------------------------


@dataclass(frozen=True)
class _RemovedObject:
    """What moto's notification builders read from a key (`notifications.send_event`),
    taken before moto disposes of the version it removes."""

    name: str
    size: int
    etag: str
    version_id: str


def _removed_object(version: Any) -> _RemovedObject:
    from moto.s3.models import FakeDeleteMarker

    if isinstance(version, FakeDeleteMarker):
        # A delete marker has no content, size or ETag (AWS leaves both out of removal
        # events; moto's event builder writes them for every event).
        return _RemovedObject(version.name, 0, "", version.version_id)
    return _RemovedObject(version.name, version.size, version.etag, version.version_id)


def _delete_object(
    self: Any,
    bucket_name: str,
    key_name: str,
    version_id: str | None = None,
    bypass: bool = False,
) -> tuple[bool, dict[str, Any]]:
    from moto.s3 import notifications
    from moto.s3.models import S3Backend

    delete = _original(S3Backend, "delete_object")
    bucket = self.get_bucket(bucket_name)  # the lookup moto starts with: same errors
    if not bucket.is_versioned:
        # moto sends ObjectRemoved:Delete itself, as AWS does.
        deleted: bool
        meta: dict[str, Any]
        deleted, meta = delete(self, bucket_name, key_name, version_id, bypass)
        return deleted, meta

    removed = None
    if version_id is not None:
        versions = bucket.keys.getlist(key_name, [])
        matching = [v for v in versions if str(v.version_id) == str(version_id)]
        removed = _removed_object(matching[0]) if matching else None
    # On a versioned bucket moto notifies only when a key's last version goes (and then
    # fails if that version is a delete marker: it has no ETag), never for a delete
    # marker created. So its own notification is off while it deletes, and the one AWS
    # sends goes out after. (Nothing else reads the bucket's configuration meanwhile:
    # requests into moto run one at a time in the local cloud, as in a test.)
    configuration = bucket.notification_configuration
    bucket.notification_configuration = None
    try:
        deleted, meta = delete(self, bucket_name, key_name, version_id, bypass)
    finally:
        bucket.notification_configuration = configuration

    if version_id is None:
        if not deleted:  # moto makes no marker for a key it does not have
            return deleted, meta
        event = notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT
        subject = _removed_object(bucket.keys[key_name])  # the marker: the latest version
    else:
        remaining = bucket.keys.getlist(key_name, [])
        if removed is None or any(str(v.version_id) == str(version_id) for v in remaining):
            return deleted, meta
        event = notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_EVENT
        subject = removed
    notifications.send_event(self.account_id, event, bucket, subject)
    return deleted, meta


def patch_s3_delete_notifications() -> None:
    """Make moto notify deletes on versioned buckets as S3 does.

    A DeleteObject without a version id on a versioned bucket sends
    `s3:ObjectRemoved:DeleteMarkerCreated` (moto: nothing); one with a version id sends
    `s3:ObjectRemoved:Delete` for the version it removes (moto: only for a key's last
    version). Unversioned buckets are unchanged (`s3:ObjectRemoved:Delete`). For tests
    under plain `mock_aws`: installs it for the rest of the process; calling again does
    nothing. `apply()` installs it too (until `revert()`).
    """
    from moto.s3.models import S3Backend

    _install_for_good(S3Backend, "delete_object", _delete_object, _S3_CHECKS)


# -- apply / revert -------------------------------------------------------------------


def _targets() -> list[tuple[Any, str, Any]]:
    from moto.awslambda.models import LambdaFunction
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler
    from moto.s3.models import S3Backend
    from moto.sqs.models import Queue
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
        WaitFunction,
    )

    return [
        (LambdaFunction, "_invoke_lambda", _invoke_lambda),
        (Queue, "wait_for_messages", _wait_for_messages),
        (WaitFunction, "_wait_interval", _wait_interval),
        (retrier_decl, "time", _ScaledTime()),
        (DynamoDBBackend, "transact_write_items", _transact_write_items),
        (DynamoHandler, "transact_write_items", _transact_write_items_once),
        (S3Backend, "delete_object", _delete_object),
    ]


def apply(runtime: LambdaRuntime) -> None:
    """Route moto's Lambda invocations to `runtime` (and install the other patches).

    Nested applies stack: the latest runtime serves until its `revert()`.
    """
    with _lock:
        if not _runtimes:
            problems = verify()
            if problems:
                raise PatchError("cannot patch moto:\n- " + "\n- ".join(problems))
            for owner, name, replacement in _targets():
                if _is_lasting(owner, name):
                    continue
                _originals.append((owner, name, getattr(owner, name)))
                setattr(owner, name, replacement)
        _runtimes.append(runtime)


def _install_for_good(owner: Any, name: str, replacement: Any, checks: _Checks) -> None:
    """Patch `owner.name` for the rest of the process (idempotent; kept past revert())."""
    with _lock:
        if _is_lasting(owner, name):
            return
        for index, (patched, patched_name, _) in enumerate(_originals):
            if patched is owner and patched_name == name:
                _lasting.append(_originals.pop(index))  # apply()'d: revert() now leaves it
                return
        problems = _version_problems() + _shape_problems(checks)
        if problems:
            raise PatchError(f"cannot patch moto's {name}:\n- " + "\n- ".join(problems))
        _lasting.append((owner, name, getattr(owner, name)))
        setattr(owner, name, replacement)


def revert() -> None:
    """Undo the latest `apply()`; the last one restores all that apply() patched.

    Patches installed for the rest of the process (`patch_dynamodb_transactions()`,
    `patch_s3_delete_notifications()`, also when called while applied) stay.
    """
    with _lock:
        if not _runtimes:
            return
        _runtimes.pop()
        if not _runtimes:
            while _originals:
                owner, name, value = _originals.pop()
                setattr(owner, name, value)
            _TimeScale.value = 1.0


# -- SQS event source mappings ----------------------------------------------------------


def detach_sqs_event_source(queue_arn: str, function_arn: str) -> None:
    """Stop moto delivering `queue_arn` to `function_arn`; the mapping stays listed.

    moto delivers at SendMessage, synchronously, with ApproximateReceiveCount "1",
    fixed timestamps, no message attributes, no partial batch responses and a failed
    batch made visible again at once (Queue.add_message): no real retries or redrive.
    The mapping itself stays in moto's Lambda backend (list-event-source-mappings shows
    it); `pollers.SqsPoller` delivers instead.
    """
    from moto.sqs.models import sqs_backends

    parts = queue_arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise ValueError(f"not an SQS queue ARN: {queue_arn!r}")
    region, account, name = parts[3], parts[4], parts[5]
    runtime = active_runtime()
    with runtime.gate.held() if runtime is not None else nullcontext():
        queue = sqs_backends[account][region].queues.get(name)
        if queue is None:
            raise LookupError(f"moto has no queue {queue_arn}")
        mappings: dict[str, Any] = queue.lambda_event_source_mappings
        if mappings.pop(function_arn, None) is None:
            raise LookupError(
                f"moto has no event source mapping from {queue_arn} to {function_arn} "
                f"(mapped functions: {sorted(mappings) or 'none'})"
            )


def detach_table_stream_source(stream_arn: str, function_arn: str) -> None:
    """Stop moto delivering the table stream `stream_arn` to `function_arn`.

    moto invokes the function from inside every write (`StreamShard.add`), for the
    whole shard so far, ignoring FilterCriteria. The mapping stays listed in moto's
    Lambda backend; `stream_pollers.TableStreamPoller` delivers instead.
    """
    from moto.dynamodb.models import dynamodb_backends

    parts = stream_arn.split(":", 5)
    resource = parts[5].split("/") if len(parts) == 6 else []
    if parts[2:3] != ["dynamodb"] or len(resource) != 4 or resource[2] != "stream":
        raise ValueError(f"not a DynamoDB stream ARN: {stream_arn!r}")
    region, account, table_name = parts[3], parts[4], resource[1]
    runtime = active_runtime()
    with runtime.gate.held() if runtime is not None else nullcontext():
        table = dynamodb_backends[account][region].get_table(table_name)
        mappings: dict[str, Any] = table.lambda_event_source_mappings
        if mappings.pop(function_arn, None) is None:
            raise LookupError(
                f"moto has no event source mapping from {stream_arn} to {function_arn} "
                f"(mapped functions: {sorted(mappings) or 'none'})"
            )


# -- verification ---------------------------------------------------------------------

_LAMBDA: Final = "moto.awslambda.models"
_SQS: Final = "moto.sqs.models"
_WAIT: Final = "moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function"
_RETRY: Final = "moto.stepfunctions.parser.asl.component.common.retry.retrier_decl"

# (module, class or "" for a module function, member, expected parameters)
_SIGNATURES: Final = [
    (_LAMBDA, "LambdaFunction", "_invoke_lambda", ["self", "event"]),
    (_LAMBDA, "LambdaBackend", "get_function", ["self", "function_name_or_arn", "qualifier"]),
    (_SQS, "Queue", "wait_for_messages", ["self", "timeout"]),
    (_WAIT, "WaitFunction", "_wait_interval", ["self", "env", "wait_seconds"]),
]

# (module, class or "", member, what its source must contain, what relies on it)
_SOURCES: Final = [
    (
        _LAMBDA,
        "LambdaFunction",
        "invoke",
        ("json.loads(body)", "self._invoke_lambda(event=body)"),
        "every delivery reaches the hook with a parsed event",
    ),
    (
        _LAMBDA,
        "LambdaFunction",
        "__init__",
        (
            "self.handler =",
            "self.environment_vars =",
            "self.timeout =",
            "self.memory_size =",
            "self.function_arn",
            "self.function_name =",
            "self.run_time =",
            "self.logs_backend =",
            "self.logs_group_name =",
        ),
        "LocalFunction.from_moto and the CloudWatch log copy read these attributes",
    ),
    (_LAMBDA, "LambdaBackend", "invoke", ("fn.invoke(",), "Invoke reaches the hook"),
    (
        _LAMBDA,
        "LambdaBackend",
        "_send_sqs_message",
        ("self.invoke(",),
        "SQS mappings reach the hook",
    ),
    (_LAMBDA, "LambdaBackend", "send_sns_message", ("func.invoke(",), "SNS reaches the hook"),
    (_LAMBDA, "LambdaBackend", "send_dynamodb_items", ("func.invoke(",), "streams reach the hook"),
    (
        _LAMBDA,
        "LambdaBackend",
        "send_kinesis_message",
        ("func.invoke(",),
        "Kinesis reaches the hook",
    ),
    (
        "moto.s3.notifications",
        "",
        "_invoke_awslambda",
        ("func.invoke(",),
        "S3 notifications reach the hook",
    ),
    (_SQS, "Queue", "__init__", ("self.lambda_event_source_mappings",), "detach_sqs_event_source"),
    (
        _SQS,
        "Queue",
        "add_message",
        ("self.lambda_event_source_mappings.items()",),
        "detach_sqs_event_source stops moto's delivery at SendMessage",
    ),
    (
        _SQS,
        "SQSBackend",
        "receive_message",
        (
            "queue.wait_for_messages(",
            'queue.redrive_policy["maxReceiveCount"]',
            "dead_letter_queue.add_message(",
        ),
        "long polls release the gate; receives move poison messages to the DLQ",
    ),
    (
        "moto.stepfunctions.responses",
        "",
        "get_backend",
        ('"execute_state_machine"',),
        "MotoServer switches Step Functions to executing ASL",
    ),
    (
        "moto.stepfunctions.parser.asl.utils.boto_client",
        "",
        "boto_client_for",
        ("moto_server_port()",),
        "service tasks call this server on localhost:$MOTO_PORT",
    ),
    (
        "moto.dynamodb.responses",
        "DynamoHandler",
        "transact_write_items",
        (
            'transact_items = self.body["TransactItems"]',
            "self.dynamodb_backend.transact_write_items(transact_items)",
            "return ActionResult(response)",
        ),
        "ClientRequestToken is honoured around moto's own handler",
    ),
    (
        "moto.dynamodb.models.table",
        "Table",
        "__init__",
        ("self.lambda_event_source_mappings",),
        "detach_table_stream_source",
    ),
    (
        "moto.dynamodb.models.table",
        "StreamShard",
        "add",
        ("self.table.lambda_event_source_mappings.items()",),
        "detach_table_stream_source stops moto's delivery inside the write",
    ),
    (_WAIT, "WaitFunction", "_wait_interval", ("program_state_event",), "the Wait time scale"),
    (_RETRY, "RetrierDecl", "_eval_body", ("time.sleep(",), "the Retry time scale"),
]

# (module, class or "", attribute)
_ATTRIBUTES: Final = [
    (_LAMBDA, "", "lambda_backends"),
    (_LAMBDA, "LambdaFunction", "save_logs"),
    (_SQS, "", "sqs_backends"),
    ("moto.dynamodb.models", "", "dynamodb_backends"),
    ("moto.logs.models", "LogsBackend", "ensure_log_group"),
    ("moto.moto_server.werkzeug_app", "", "DomainDispatcherApplication"),
    ("moto.moto_server.werkzeug_app", "", "create_backend_app"),
    ("moto.moto_server.werkzeug_app", "", "MotoRequestHandler"),
]


_DYNAMODB: Final = "moto.dynamodb.models"
_DYNAMODB_TABLE: Final = "moto.dynamodb.models.table"
_S3: Final = "moto.s3.models"
_S3_NOTIFICATIONS: Final = "moto.s3.notifications"


@dataclass(frozen=True)
class _Checks:
    """What some patches rely on in moto, in the shapes described above."""

    signatures: list[tuple[str, str, str, list[str]]]
    sources: list[tuple[str, str, str, tuple[str, ...], str]]
    attributes: list[tuple[str, str, str]]


_LOCAL_CLOUD_CHECKS: Final = _Checks(_SIGNATURES, _SOURCES, _ATTRIBUTES)

_DYNAMODB_CHECKS: Final = _Checks(
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
    attributes=[],
)

_S3_CHECKS: Final = _Checks(
    signatures=[
        (
            _S3,
            "S3Backend",
            "delete_object",
            ["self", "bucket_name", "key_name", "version_id", "bypass"],
        ),
        (_S3_NOTIFICATIONS, "", "send_event", ["account_id", "event_name", "bucket", "key"]),
    ],
    sources=[
        (
            _S3,
            "S3Backend",
            "delete_object",
            (
                "bucket = self.get_bucket(bucket_name)",
                "if not bucket.is_versioned:",
                "self._set_delete_marker(bucket_name, key_name)",
                "notifications.send_event(",
            ),
            "versioned deletes notify only through send_event, which the replacement "
            "turns off while moto deletes",
        ),
        (
            _S3,
            "S3Backend",
            "_set_delete_marker",
            ("bucket.keys[key_name] = delete_marker",),
            "a new delete marker is the key's latest version",
        ),
        (
            _S3_NOTIFICATIONS,
            "",
            "send_event",
            ("if bucket.notification_configuration is None:",),
            "a bucket without a notification configuration notifies nothing",
        ),
        (
            _S3_NOTIFICATIONS,
            "",
            "_get_s3_event",
            ("key.etag", "key.size", "key.name"),
            "what an event reads from the removed object (_RemovedObject)",
        ),
        (
            _S3_NOTIFICATIONS,
            "",
            "_send_event_bridge_message",
            ("key.etag", "key.size", "key.name", "key.version_id"),
            "what an EventBridge event reads from the removed object (_RemovedObject)",
        ),
    ],
    attributes=[
        (_S3, "", "FakeDeleteMarker"),
        (_S3_NOTIFICATIONS, "S3NotificationEvent", "OBJECT_REMOVED_DELETE_EVENT"),
        (_S3_NOTIFICATIONS, "S3NotificationEvent", "OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT"),
    ],
)


def _owner(module: str, owner: str) -> Any:
    loaded = importlib.import_module(module)
    return getattr(loaded, owner) if owner else loaded


def _name(module: str, owner: str, member: str) -> str:
    return f"{module}.{owner + '.' if owner else ''}{member}"


def _version_problems() -> list[str]:
    import moto

    if moto.__version__ == PINNED_MOTO_VERSION:
        return []
    return [
        f"moto {moto.__version__} is installed, the patches were written for "
        f"{PINNED_MOTO_VERSION}: re-check every patch in infra/local/patches.py, then "
        "update PINNED_MOTO_VERSION"
    ]


def _settings_problems() -> list[str]:
    from moto.core.config import default_user_config

    problems = _version_problems()
    if default_user_config.get("lambda", {}).get("use_docker", True) is False:
        problems.append(
            "moto's config has lambda.use_docker=False: invocations would go to its stub "
            "backend and never reach the hook"
        )
    if _original(_owner(_RETRY, ""), "time") is not time:
        problems.append(f"{_RETRY} no longer sleeps through the time module")
    return problems


def _shape_problems(checks: _Checks) -> list[str]:
    problems = []
    for module, owner, member, expected in checks.signatures:
        name = _name(module, owner, member)
        try:
            found = list(inspect.signature(_original(_owner(module, owner), member)).parameters)
        except Exception as error:
            problems.append(f"{name}: {type(error).__name__}: {error}")
            continue
        if found != expected:
            problems.append(f"{name}: parameters are now {found}, the patch expects {expected}")
    for module, owner, member, needles, why in checks.sources:
        name = _name(module, owner, member)
        try:
            text = inspect.getsource(_original(_owner(module, owner), member))
        except Exception as error:
            problems.append(f"{name}: {type(error).__name__}: {error} ({why})")
            continue
        missing = [needle for needle in needles if needle not in text]
        if missing:
            problems.append(f"{name} no longer contains {missing}: {why}")
    for module, owner, attribute in checks.attributes:
        try:
            present = hasattr(_owner(module, owner), attribute)
        except Exception as error:
            problems.append(f"{_name(module, owner, attribute)}: {type(error).__name__}: {error}")
            continue
        if not present:
            problems.append(f"{_name(module, owner, attribute)} is gone")
    return problems


def verify() -> list[str]:
    """What no longer matches the patches' expectations in the installed moto (empty: OK)."""
    return _settings_problems() + [
        problem
        for checks in (_LOCAL_CLOUD_CHECKS, _DYNAMODB_CHECKS, _S3_CHECKS)
        for problem in _shape_problems(checks)
    ]
