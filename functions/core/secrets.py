"""Keys kept in Secrets Manager (HMAC keys: unsubscribe tokens, archive pseudonyms).

A key is the SecretString of a generated secret, read on first use and kept for the
container's life, per secret ARN (the local cloud runs several environments in one
process): one GetSecretValue per cold start. A rotation reaches running containers when
they are replaced.
"""

from __future__ import annotations

import threading
from typing import Any

from functions.core import aws

__all__ = ["SecretKey"]


class SecretKey:
    def __init__(self, client: Any = None) -> None:
        self._client = client
        self._keys: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        # Made for each read (a read is once per secret per container): a client kept
        # here would outlive the environment it was made for, e.g. the local cloud's.
        return self._client if self._client is not None else aws.client("secretsmanager")

    def get(self, secret_arn: str) -> bytes:
        with self._lock:
            key = self._keys.get(secret_arn)
        if key is not None:
            return key
        answer = self.client.get_secret_value(SecretId=secret_arn)
        text = answer.get("SecretString")
        if not isinstance(text, str) or not text:
            raise RuntimeError(f"secret {secret_arn} has no SecretString to key with")
        key = text.encode("utf-8")
        with self._lock:
            self._keys[secret_arn] = key
        return key
