"""Every data-access test runs against fresh tables on in-process moto (no sockets)."""

from __future__ import annotations

from tests.support.aws import aws_env, tables

__all__ = ["aws_env", "tables"]
