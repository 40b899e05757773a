"""The PynamoDB base every data-access model builds on.

- Table binding. A model binds to a `TableSpec` with ``Meta = table_meta(SPEC)``. The
  table name is read from ``SPEC.env_var`` each time PynamoDB asks for it, never at import
  time, so importing a model needs no environment and a test can point a model at another
  table by changing one variable. ``SPEC.default_name`` is used only when
  ``REBATES_ALLOW_DEFAULT_TABLES=1`` (unit tests, offline tools); otherwise a missing
  variable raises `TableNotConfigured` naming it.
- Region and endpoint. PynamoDB passes ``host=None`` to botocore's ``create_client``, so
  botocore honours ``AWS_ENDPOINT_URL_DYNAMODB`` / ``AWS_ENDPOINT_URL`` (the local cloud)
  by itself. The region is read lazily from ``AWS_REGION`` (set by Lambda) then
  ``AWS_DEFAULT_REGION``; when neither is set botocore's own chain decides.
- Connections. `TableModel` keeps PynamoDB's per-model connection cache but builds every
  client from one botocore session per thread (see `_SharedSessionConnection`);
  `reset_connections` forgets them all when a test or the local cloud changes region or
  endpoint within one process.
- Attributes. `MoneyAttribute` (a map ``{amount: N, currency: S}`` read back as `Money`),
  `InstantAttribute` (UTC, a fixed-width RFC 3339 string ending in ``Z``, so that string
  order is time order), `IntegerAttribute` (counters and minor units, never fractional),
  `TypedMap` (typed map attributes) and `optional` (a nullable attribute typed ``T | None``).
- Keys. `TableModel.derive_keys` sets an item's keys from its fields; `global_index`
  builds a GSI straight from its `IndexSpec`; `day_key` and `key_part` (with
  ``clock.instant_key``) build the pieces of composite keys; `schema_mismatches` checks a
  model against its spec (the tests run it on every model, so model and table cannot drift).
- Writes. `Transaction` is a TransactWrite whose items carry labels, so a cancellation
  says which item refused (`TransactionCancelled.reasons`); `bounded_add` and
  `bounded_subtract` express a counter that can never pass its limit or drop below zero;
  `upsert_actions` rewrites an item without resetting the counters others increment.

How the binding works: PynamoDB 6.1 reads ``cls.Meta.table_name`` (and ``Meta.region``)
as plain class attributes, in ``Model._get_connection`` (behind a ``hasattr`` probe) and
in the batch helpers, and rebuilds a model's cached ``TableConnection`` whenever the name
it reads differs from the cached one's. Making those two names properties of the Meta
class's metaclass therefore makes every read lazy, whatever PynamoDB path reads them.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, Self, TypeVar, cast

import botocore.session
from pynamodb.attributes import Attribute, MapAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.connection import Connection, TableConnection
from pynamodb.constants import MAP, NUMBER, STRING
from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from functions.core.clock import instant_key
from functions.core.money import Money
from functions.core.settings import SettingsError
from functions.core.tables import ALL_TABLES, TableSpec

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
    "schema_mismatches",
    "table_meta",
    "upsert_actions",
]

ALLOW_DEFAULT_TABLES_ENV: Final = "REBATES_ALLOW_DEFAULT_TABLES"

T = TypeVar("T")
M = TypeVar("M", bound=Model)


# ---------------------------------------------------------------------------------------
# Table binding
# ---------------------------------------------------------------------------------------


class TableNotConfigured(SettingsError):
    """A model was used while its table's environment variable is unset.

    A `SettingsError` (hence a RuntimeError) and deliberately not an AttributeError:
    PynamoDB probes ``hasattr(Meta, "table_name")``, which would swallow an
    AttributeError and replace this message with its own, vaguer one.
    """

    def __init__(self, spec: TableSpec) -> None:
        super().__init__(
            f"environment variable {spec.env_var} is not set: it must carry the name of the "
            f"{spec.logical_id} DynamoDB table (set {ALLOW_DEFAULT_TABLES_ENV}=1 to use the "
            f"default name {spec.default_name!r} in tests and offline tools)"
        )
        self.spec = spec
        self.variable = spec.env_var


def resolve_table_name(spec: TableSpec) -> str:
    """The deployed name of the table described by `spec`, read from the environment now."""
    name = os.environ.get(spec.env_var, "").strip()
    if name:
        return name
    if os.environ.get(ALLOW_DEFAULT_TABLES_ENV) == "1" and spec.default_name:
        return spec.default_name
    raise TableNotConfigured(spec)


def resolve_region() -> str | None:
    """``AWS_REGION`` (Lambda sets it) then ``AWS_DEFAULT_REGION``; None lets botocore decide.

    botocore itself reads only ``AWS_DEFAULT_REGION``, so a shell that exports just
    ``AWS_REGION`` would otherwise fail with NoRegionError.
    """
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


class _BoundMetaType(type):
    """Metaclass of a bound ``Meta``: PynamoDB's class-attribute reads become lazy lookups."""

    spec: TableSpec

    @property
    def table_name(cls) -> str:
        return resolve_table_name(cls.spec)

    @property
    def region(cls) -> str | None:
        return resolve_region()


class BoundMeta(metaclass=_BoundMetaType):
    """Base of the Meta classes `table_meta` creates; ``isinstance`` checks use it."""

    spec: ClassVar[TableSpec]
    # Left to botocore so that AWS_ENDPOINT_URL(_DYNAMODB) works (see the module docstring).
    host: ClassVar[str | None] = None


def table_meta(spec: TableSpec) -> Any:
    """A fresh PynamoDB ``Meta`` bound to `spec`: ``Meta = table_meta(CAMPAIGNS)``.

    Fresh per model because PynamoDB writes its defaults (timeouts, credentials) onto the
    Meta class it finds in a model's namespace. Typed ``Any`` because PynamoDB declares
    ``Model.Meta`` as a protocol instance, which a class with metaclass properties
    satisfies at run time but not in mypy's eyes.
    """
    return _BoundMetaType("Meta", (BoundMeta,), {"spec": spec, "__module__": __name__})


def bound_spec(model: type[Model]) -> TableSpec | None:
    """The spec `model` is bound to, or None for a model not built on `table_meta`."""
    meta = getattr(model, "Meta", None)
    if isinstance(meta, type) and issubclass(meta, BoundMeta):
        return meta.spec
    return None


def _all_subclasses(cls: type[Model]) -> Iterator[type[Model]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def bound_models() -> list[type[Model]]:
    """Every imported model class bound to a spec (the tests check each against its spec)."""
    return [m for m in _all_subclasses(Model) if bound_spec(m) is not None]


class _SharedSessionConnection(Connection):
    """A PynamoDB Connection that builds its client from the shared botocore session.

    PynamoDB gives every model's connection its own botocore session, and a fresh session
    re-reads botocore's endpoint and service data: about 0.1 s per model on a cold start,
    paid again for each model a handler touches. One session per thread (botocore
    sessions are not safe to share across threads while creating clients) brings every
    client after the first down to a few milliseconds.
    """

    @property
    def session(self) -> Any:
        session = getattr(_sessions, "session", None)
        if session is None:
            session = _sessions.session = botocore.session.get_session()
        return session


_sessions = threading.local()


class TableModel(Model):
    """Base of the Rebates models: key attributes are derived from the fields they encode.

    A subclass overrides `derive_keys` to set ``pk``/``sk`` and its GSI keys from its
    fields. It runs when a model is built in code (so ``Claim(claim_id=...)`` already has
    its key for ``get``/``update``/``delete``) and again before every serialisation (so a
    ``save`` after a status change also moves the item to its new index partition), which
    means no caller ever assembles a key string by hand or leaves an index key stale.
    Items read from the table are not re-derived: they come back as stored.
    """

    def __init__(
        self,
        hash_key: Any = None,
        range_key: Any = None,
        _user_instantiated: bool = True,
        **attributes: Any,
    ) -> None:
        super().__init__(hash_key, range_key, _user_instantiated, **attributes)
        if _user_instantiated:
            self.derive_keys()

    def derive_keys(self) -> None:
        """Set the key attributes from the other fields (no-op by default)."""

    @classmethod
    def first_time(cls) -> Condition:
        """The condition of a put that must create the item, never overwrite it."""
        hash_key = next(a for a in cls.get_attributes().values() if a.is_hash_key)
        return hash_key.does_not_exist()

    def serialize(self, null_check: bool = True) -> dict[str, dict[str, Any]]:
        self.derive_keys()
        return super().serialize(null_check)

    @classmethod
    def _get_connection(cls) -> TableConnection:
        # PynamoDB builds (and caches, per model class, per table name) the connection with
        # its key and index schema; only the inner Connection is swapped for one on the
        # shared session. The settings are the same Meta values PynamoDB just used; Meta
        # credentials are not carried over, as Rebates only uses the environment's chain.
        table_connection = super()._get_connection()
        if not isinstance(table_connection.connection, _SharedSessionConnection):
            meta = cls.Meta
            shared = _SharedSessionConnection(
                region=meta.region,
                host=meta.host,
                connect_timeout_seconds=meta.connect_timeout_seconds,
                read_timeout_seconds=meta.read_timeout_seconds,
                max_retry_attempts=meta.max_retry_attempts,
                max_pool_connections=meta.max_pool_connections,
                extra_headers=meta.extra_headers,
            )
            shared.add_meta_table(table_connection.get_meta_table())
            table_connection.connection = shared
        return table_connection

    @classmethod
    def get_or_none(
        cls, hash_key: str, range_key: str | None = None, *, consistent_read: bool = True
    ) -> Self | None:
        """The item at this key, or None. Consistent by default: reads that decide a write
        (limits, statuses, idempotency) must see the latest committed state."""
        try:
            return cls.get(hash_key, range_key, consistent_read=consistent_read)
        except cls.DoesNotExist:
            return None


def reset_connections() -> None:
    """Forget cached connections, so the next call re-reads region and endpoint.

    PynamoDB rebuilds a model's connection when the table name changes but keeps it when
    only the region or endpoint does; tests and the local cloud, which change those between
    runs in one process, call this.
    """
    for model in bound_models():
        if model.__dict__.get("_connection") is not None:
            model._connection = None
    _transaction_connection.cache_clear()
    # Sessions cache resolved credentials and configuration: start afresh too.
    global _sessions  # noqa: PLW0603  (a new thread-local drops every thread's session)
    _sessions = threading.local()


# ---------------------------------------------------------------------------------------
# Attributes
# ---------------------------------------------------------------------------------------


def optional(attribute: Attribute[T]) -> Attribute[T | None]:
    """Make `attribute` nullable and say so to the type checker.

    PynamoDB types ``UnicodeAttribute(null=True)`` as ``str``; wrapping it types the value
    as ``str | None``, so code reading an optional field has to handle its absence.
    """
    attribute.null = True
    return cast(Attribute[T | None], attribute)


class InstantAttribute(Attribute[datetime]):
    """An instant, stored in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``.

    Always six fractional digits: a variable width would sort ``...:00.5Z`` before
    ``...:00Z`` and break range conditions and sort keys. Naive datetimes are refused
    rather than guessed to be UTC (the contract: instants carry an offset).
    """

    attr_type = STRING

    def serialize(self, value: datetime) -> str:
        return instant_key(value)

    def deserialize(self, value: str) -> datetime:
        return _parse_stored_instant(value)


_STORED_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


def _parse_stored_instant(value: str) -> datetime:
    if not _STORED_INSTANT.fullmatch(value):
        raise ValueError(f"stored instant {value!r} is not YYYY-MM-DDTHH:MM:SS.ffffffZ")
    return datetime.fromisoformat(value)


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


class IntegerAttribute(Attribute[int]):
    """A whole number (counters, minor-unit amounts, versions), read back as `int`.

    PynamoDB's NumberAttribute is typed ``float`` and reads ``"1.5"`` back as a float;
    counters and money must never be fractional, so both ways are checked here.
    """

    attr_type = NUMBER

    def serialize(self, value: int) -> str:
        if type(value) is not int:
            raise TypeError(f"expected an int, got {type(value).__name__} {value!r}")
        return str(value)

    def deserialize(self, value: str) -> int:
        if not _INTEGER.fullmatch(value):
            raise ValueError(f"stored number {value!r} is not an integer")
        return int(value)


_INTEGER: Final = re.compile(r"-?\d+")


class TypedMap(MapAttribute[str, Any]):
    """Base of the typed map attributes (a subclass declares its fields as attributes).

    PynamoDB leaves ``MapAttribute.__init__`` unannotated, which strict mypy refuses to
    call; this only declares its signature for the type checker.
    """

    if TYPE_CHECKING:

        def __init__(self, **attributes: Any) -> None: ...


class MoneyAttribute(Attribute[Money]):
    """`Money` stored as the map ``{"amount": N, "currency": S}``; the amount is an integer."""

    attr_type = MAP

    def serialize(self, value: Money) -> dict[str, dict[str, str]]:
        if not isinstance(value, Money):
            raise TypeError(f"expected Money, got {type(value).__name__}")
        amount = value.amount
        # bool is an int subclass and a float may slip past a lax model: neither is money.
        if type(amount) is not int:
            raise TypeError(f"money amount must be an int, got {type(amount).__name__}")
        return {"amount": {NUMBER: str(amount)}, "currency": {STRING: value.currency}}

    # PynamoDB serialises a MAP attribute's update and condition values only when they
    # are dicts (pynamodb.expressions.operand.Value); a Money is handed over pre-serialised
    # so that ``Claim.reward.set(money)`` and ``Claim.reward == money`` work.
    def set(self, value: Any) -> Any:
        return super().set(self._operand(value))

    def __eq__(self, other: Any) -> Any:
        return super().__eq__(self._operand(other))

    def __ne__(self, other: Any) -> Any:
        return super().__ne__(self._operand(other))

    # Unhashable, like every PynamoDB attribute (their __eq__ builds a condition).
    __hash__ = None  # type: ignore[assignment]

    def _operand(self, value: Any) -> Any:
        return {MAP: self.serialize(value)} if isinstance(value, Money) else value

    def deserialize(self, value: dict[str, dict[str, str]]) -> Money:
        try:
            raw_amount = value["amount"][NUMBER]
            currency = value["currency"][STRING]
        except (KeyError, TypeError) as error:
            raise ValueError(f"stored money {value!r} is not {{amount: N, currency: S}}") from error
        if not _INTEGER.fullmatch(raw_amount):
            raise ValueError(f"stored money amount {raw_amount!r} is not an integer")
        return Money(amount=int(raw_amount), currency=currency)


# ---------------------------------------------------------------------------------------
# Keys and indexes
# ---------------------------------------------------------------------------------------


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


def upsert_actions(item: Model, *, counters: Iterable[str] = ()) -> list[Action]:
    """An update writing every field of `item` but its key, as a put would, except that
    each of `counters` keeps its stored value (starting at `item`'s value when absent).

    For items that are republished while something else counts on them (a campaign's
    budget counters, an offer's redemption count): a put would zero the counters.
    """
    if isinstance(item, TableModel):
        item.derive_keys()
    keep = set(counters)
    actions: list[Action] = []
    for name, attribute in type(item).get_attributes().items():
        if attribute.is_hash_key or attribute.is_range_key:
            continue
        value = getattr(item, name)
        if name in keep:
            actions.append(attribute.set(attribute | value))
        elif value is None:
            actions.append(attribute.remove())
        else:
            actions.append(attribute.set(value))
    return actions


# ---------------------------------------------------------------------------------------
# Bounded counters
# ---------------------------------------------------------------------------------------


def bounded_add(
    counter: Attribute[Any], amount: int, limit: int | None
) -> tuple[list[Action], Condition | None]:
    """``ADD amount`` to `counter`, on condition that the result stays ``<= limit``.

    DynamoDB has no ``a + b <= c`` condition, so the check is ``counter <= limit - amount``;
    a counter that does not exist yet counts as 0, as ``ADD`` itself treats it. With
    ``limit=None`` the counter is unbounded and no condition is returned.
    """
    _check_amount(amount)
    actions: list[Action] = [counter.add(amount)]
    if limit is None:
        return actions, None
    headroom = limit - amount
    if headroom < 0:
        # Not even an empty counter can take it; "missing counts as 0" must not let it in.
        return actions, counter <= headroom
    return actions, counter.does_not_exist() | (counter <= headroom)


def bounded_subtract(counter: Attribute[Any], amount: int) -> tuple[list[Action], Condition]:
    """``ADD -amount`` to `counter`, on condition that it does not go below zero."""
    _check_amount(amount)
    return [counter.add(-amount)], counter >= amount


def _check_amount(amount: int) -> None:
    if type(amount) is not int or amount < 0:
        raise ValueError(f"counter amounts are non-negative ints, got {amount!r}")


# ---------------------------------------------------------------------------------------
# Transactions
# ---------------------------------------------------------------------------------------

# PynamoDB sends a TransactWrite's items grouped by kind in this order, whatever the order
# of the calls (see pynamodb.connection.base.Connection.transact_write_items), and DynamoDB
# returns cancellation reasons in the order sent; labels are matched back the same way.
_KIND_ORDER: Final = ("condition_check", "delete", "put", "update")

_Kind = Literal["condition_check", "delete", "put", "update"]


class TransactionCancelled(Exception):
    """DynamoDB cancelled a transaction; `reasons` maps each refusing item's label to a code.

    Codes are DynamoDB's: ``ConditionalCheckFailed`` (the item's condition was false: a
    limit reached, a duplicate), ``TransactionConflict`` (a concurrent write; retrying is
    reasonable), ``ValidationError``, ``ThrottlingError``...
    """

    def __init__(self, reasons: Mapping[str, str], cause: TransactWriteError) -> None:
        self.reasons: dict[str, str] = dict(reasons)
        self.cause = cause
        summary = ", ".join(f"{label}: {code}" for label, code in self.reasons.items())
        super().__init__(f"transaction cancelled ({summary or 'no reason given'})")

    def failed(self, label: str) -> bool:
        """Whether the item labelled `label` was refused by its condition."""
        return self.reasons.get(label) == "ConditionalCheckFailed"

    @property
    def conflicted(self) -> bool:
        """A concurrent transaction touched the same items: safe to retry as a whole."""
        return "TransactionConflict" in self.reasons.values()


class Transaction:
    """One DynamoDB TransactWrite (all items or none), with a label per item.

    ::

        tx = Transaction()
        tx.update("code", Code.ref(code), *Code.use())
        tx.put("redemption", redemption, condition=Redemption.pk.does_not_exist())
        try:
            tx.commit()
        except TransactionCancelled as cancelled:
            if cancelled.failed("code"): ...

    Items may live in different tables; each model supplies its own table name.
    """

    def __init__(self, *, client_request_token: str | None = None) -> None:
        self._token = client_request_token
        self._ops: list[tuple[_Kind, str, Callable[[TransactWrite], None]]] = []

    @property
    def labels(self) -> list[str]:
        return [label for _, label, _ in self._ops]

    def _add(self, kind: _Kind, label: str, op: Callable[[TransactWrite], None]) -> None:
        if label in self.labels:
            raise ValueError(f"duplicate transaction label {label!r}")
        self._ops.append((kind, label, op))

    def condition_check(
        self,
        label: str,
        model: type[M],
        hash_key: str,
        range_key: str | None = None,
        *,
        condition: Condition,
    ) -> None:
        self._add(
            "condition_check",
            label,
            lambda tx: tx.condition_check(model, hash_key, range_key, condition=condition),
        )

    def put(self, label: str, item: Model, *, condition: Condition | None = None) -> None:
        self._add("put", label, lambda tx: tx.save(item, condition=condition))

    def update(
        self,
        label: str,
        item: Model,
        actions: list[Action],
        condition: Condition | None = None,
    ) -> None:
        """Update `item` (a key-only ``ref`` will do; an absent item is created).

        `actions` and `condition` come as the pair the models' helpers return, so
        ``tx.update("code", Code.ref(code), *Code.use())`` reads as it runs.
        """
        self._add("update", label, lambda tx: tx.update(item, actions, condition=condition))

    def delete(self, label: str, item: Model, *, condition: Condition | None = None) -> None:
        self._add("delete", label, lambda tx: tx.delete(item, condition=condition))

    def commit(self) -> None:
        """Send the transaction; raise `TransactionCancelled` if DynamoDB refuses it."""
        if not self._ops:
            raise ValueError("an empty transaction cannot be committed")
        try:
            # A token per commit: the SDK's own retries of this request (a lost response,
            # a dropped connection) resend it, and DynamoDB answers a repeat within 10
            # minutes with success instead of applying it again, when its conditions
            # would now refuse it. A caller retrying a cancelled commit gets a new one.
            with TransactWrite(
                connection=_transaction_connection(resolve_region()),
                client_request_token=self._token or uuid.uuid4().hex,
            ) as tx:
                for _, _, op in self._ops:
                    op(tx)
        except TransactWriteError as error:
            if error.cause_response_code != "TransactionCanceledException":
                raise
            sent = sorted(self._ops, key=lambda entry: _KIND_ORDER.index(entry[0]))
            reasons = {
                label: reason.code
                for (_, label, _), reason in zip(sent, error.cancellation_reasons, strict=False)
                if reason is not None and reason.code not in ("None", "")
            }
            raise TransactionCancelled(reasons, error) from error


@functools.lru_cache(maxsize=4)
def _transaction_connection(region: str | None) -> Connection:
    # Keyed by region so a changed AWS_REGION is honoured; the endpoint is botocore's.
    return _SharedSessionConnection(region=region)
