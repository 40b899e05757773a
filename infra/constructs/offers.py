"""Offers: listing, code issuance, validation, redemption and rollback.

Nothing to create yet: offer data lives in the campaigns table (see campaigns.py),
so this construct will hold the offer handlers, their routes and their grants on
that table as the offers issue adds them.
"""

from __future__ import annotations

from constructs import Construct

from infra.constructs.platform import Platform


class Offers(Construct):
    def __init__(self, scope: Construct, id: str, *, platform: Platform) -> None:
        super().__init__(scope, id)
        self.platform = platform
