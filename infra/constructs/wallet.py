"""Wallet: the cashback ledger (credit, release, spend, reverse, expire)."""

from __future__ import annotations

from constructs import Construct

from functions.core.tables import WALLET
from infra.constructs.platform import Platform


class Wallet(Construct):
    def __init__(self, scope: Construct, id: str, *, platform: Platform) -> None:
        super().__init__(scope, id)
        self.table = platform.add_table(self, WALLET)
