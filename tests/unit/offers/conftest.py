"""Offer tests that store codes run on fresh tables on in-process moto (no sockets)."""

from __future__ import annotations

from tests.support.aws import aws_env, tables

__all__ = ["aws_env", "tables"]
