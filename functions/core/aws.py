"""AWS clients, every one of them (PynamoDB's included) from one botocore session per thread.

- botocore, not boto3: a handler only calls APIs, and importing boto3 adds its resource
  layer and s3transfer (about 50 ms of every cold start) for nothing a handler uses.
- One session per thread: a fresh botocore session re-reads botocore's endpoint and
  partition data before its first client, about 50 ms; PynamoDB would otherwise make one
  of its own beside the one boto3 makes. Sessions are not safe to share across threads
  while clients are created, hence one per thread.
- The region is ``AWS_REGION`` (Lambda sets it) then ``AWS_DEFAULT_REGION``: botocore
  itself reads only the latter, so a shell exporting just ``AWS_REGION`` would otherwise
  fail with NoRegionError.

Clients are made on first use, never at import, so tests can start moto (or pass a stub)
first; `reset_sessions` forgets every thread's session when a test or the local cloud
changes credentials, region or endpoint within one process.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import botocore.session
from botocore.config import Config

_sessions = threading.local()


def resolve_region() -> str | None:
    """``AWS_REGION`` then ``AWS_DEFAULT_REGION``; None lets botocore decide."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def session() -> botocore.session.Session:
    """This thread's botocore session."""
    current = getattr(_sessions, "session", None)
    if current is None:
        current = _sessions.session = botocore.session.get_session()
    return current


def client(service_name: str, *, config: Config | None = None) -> Any:
    """A new client of `service_name` on this thread's session, in `resolve_region`."""
    return session().create_client(service_name, region_name=resolve_region(), config=config)


def reset_sessions() -> None:
    """Forget every thread's session: the next client re-reads the environment."""
    global _sessions  # noqa: PLW0603  (a new thread-local drops every thread's session)
    _sessions = threading.local()
