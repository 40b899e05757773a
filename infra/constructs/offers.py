"""Offers: the storefront routes (listing, code issuance, validation, redemption, rollback)
and the outbox that turns committed code issues and redemptions into events.

Offer data lives in the campaigns table (see campaigns.py), so this construct owns no
table: it grants its two functions what each one calls on it.

- The API function reads and writes the campaigns table and the idempotency records of
  its POST routes. It may not publish events: a redemption is one GetItem and one
  TransactWriteItems, and its event comes from the table's stream, so a crash between
  the commit and a publish can neither lose an event nor announce a refused write.
- The outbox function reads the campaigns table's stream, filtered to code issues and
  redemptions (`functions.offers.outbox.STREAM_FILTERS`), and publishes to the bus. It
  may not touch the table's items. Records that keep failing wait in its stream DLQ.

Besides the alarms every consumer has (its errors, its DLQ), the outbox pages on its own
`OutboxPublishFailures` metric (`Platform.add_outbox`, as every outbox).
"""

from __future__ import annotations

from constructs import Construct

from functions.core.api import routes_of
from functions.core.tables import CAMPAIGNS, IDEMPOTENCY
from functions.offers.handlers import api as offers_api
from functions.offers.outbox import STREAM_FILTERS
from infra.constructs.api import Api
from infra.constructs.platform import DomainFunction, Platform

API_HANDLER = "functions.offers.handlers.api.handler"
OUTBOX_HANDLER = "functions.offers.handlers.outbox.handler"
API_MEMORY_MB = 512
# The functions' POWERTOOLS_SERVICE_NAME: the `service` dimension of their metrics.
DOMAIN = "offers"

# The routes the offers API function serves, as its router declares them (the one source
# the OpenAPI document is generated from too).
ROUTES = tuple((method, path) for method, path, _ in routes_of(offers_api.router))


class Offers(Construct):
    def __init__(self, scope: Construct, id: str, *, platform: Platform, api: Api) -> None:
        super().__init__(scope, id)
        self.platform = platform

        self.api_function = DomainFunction(
            self,
            "Api",
            platform=platform,
            domain=DOMAIN,
            handler=API_HANDLER,
            description="campaigns and offers, codes, redemptions and rollbacks",
            memory_size=API_MEMORY_MB,
        )
        platform.grant_table(self.api_function, CAMPAIGNS)
        platform.grant_table(self.api_function, IDEMPOTENCY)
        self.add_routes(api)

        outbox = platform.add_outbox(
            self,
            domain=DOMAIN,
            handler=OUTBOX_HANDLER,
            description="publishes code issues, redemptions and rollbacks from the table",
            table=platform.table(CAMPAIGNS),
            filters=STREAM_FILTERS,
            publishes="a change's event",
        )
        self.outbox, self.outbox_dlq = outbox.function, outbox.dlq
        self.outbox_failures_alarm = outbox.failures_alarm

    def add_routes(self, api: Api) -> None:
        """Serve every offers route with the API function, each behind the API key."""
        for method, path in ROUTES:
            api.add_route(method, path, self.api_function)
