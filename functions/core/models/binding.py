"""Table binding: the base model, and the table, region and connection each model uses.

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
  client from `functions.core.aws`'s session of the thread (see `_SharedSessionConnection`);
  `reset_connections` forgets them all when a test or the local cloud changes region or
  endpoint within one process.
- Keys. `TableModel.derive_keys` sets an item's keys from its fields.

How the binding works: PynamoDB 6.1 reads ``cls.Meta.table_name`` (and ``Meta.region``)
as plain class attributes, in ``Model._get_connection`` (behind a ``hasattr`` probe) and
in the batch helpers, and rebuilds a model's cached ``TableConnection`` whenever the name
it reads differs from the cached one's. Making those two names properties of the Meta
class's metaclass therefore makes every read lazy, whatever PynamoDB path reads them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any, ClassVar, Final, Self

from pynamodb.connection import Connection, TableConnection
from pynamodb.expressions.condition import Condition
from pynamodb.models import Model

from functions.core import aws
from functions.core.aws import resolve_region
from functions.core.settings import SettingsError
from functions.core.tables import TableSpec

ALLOW_DEFAULT_TABLES_ENV: Final = "REBATES_ALLOW_DEFAULT_TABLES"


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
    """A PynamoDB Connection that builds its client from the thread's shared session.

    PynamoDB gives every model's connection its own botocore session, and a fresh session
    re-reads botocore's endpoint and service data: about 0.1 s per model on a cold start,
    paid again for each model a handler touches. On `functions.core.aws`'s session (the
    one every other client is made from) every client after the first takes a few
    milliseconds.
    """

    @property
    def session(self) -> Any:
        return aws.session()


@functools.lru_cache(maxsize=4)
def transaction_connection(region: str | None) -> Connection:
    """The connection a `Transaction` commits on: its items may span tables, so no
    model's own connection will do."""
    # Keyed by region so a changed AWS_REGION is honoured; the endpoint is botocore's.
    return _SharedSessionConnection(region=region)


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
    transaction_connection.cache_clear()
    # Sessions cache resolved credentials and configuration: start afresh too.
    aws.reset_sessions()
