"""DynamoDB transactions honour ClientRequestToken (in the local cloud only).

`DynamoHandler.transact_write_items(self)` is wrapped: moto ignores ClientRequestToken,
so an SDK retry of a transaction whose response was lost would apply it twice (its
conditions then refuse the retry: a redemption that happened reads as refused); the
wrapper answers a repeat as DynamoDB does, with success and no second effect within 10
minutes. Plain `mock_aws` keeps moto's own handler.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any, Final

from infra.local.patches.registry import Checks, Patch, original

# DynamoDB remembers a transaction's ClientRequestToken for 10 minutes after it succeeds.
_TOKEN_WINDOW_SECONDS: Final = 600.0
# Oldest first (insertion order), so expired tokens are dropped from the front.
_completed_tokens: dict[str, tuple[float, str]] = {}
# The tokens are shared by every thread that calls into moto.
_tokens_lock = threading.Lock()


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

    stock = original(DynamoHandler, "transact_write_items")
    token = self.body.get("ClientRequestToken")
    if not token:
        return stock(self)
    request = {key: value for key, value in self.body.items() if key != "ClientRequestToken"}
    fingerprint = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
    now = time.monotonic()
    with _tokens_lock:
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
    with _tokens_lock:
        _completed_tokens[token] = (time.monotonic(), fingerprint)
    return result


PATCH: Final = Patch(
    name="transaction_tokens",
    checks=Checks(
        sources=[
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
        ],
    ),
    targets=[
        (
            "moto.dynamodb.responses",
            "DynamoHandler",
            "transact_write_items",
            _transact_write_items_once,
        )
    ],
)


def verify() -> None:
    """Raise `PatchError` naming what moved if moto no longer fits this patch."""
    PATCH.verify()
