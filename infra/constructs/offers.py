"""Offers: the storefront routes (listing, code issuance, validation, redemption, rollback),
the codes a purchase issues, the daily reminder sweep, and the outbox that turns committed
code issues, reminders and redemptions into events.

Offer data lives in the campaigns table (see campaigns.py), so this construct owns no
table: it grants each function what it calls on it.

- The API function reads and writes the campaigns table and the idempotency records of
  its POST routes. It may not publish events: a redemption is one GetItem and one
  TransactWriteItems, and its event comes from the table's stream, so a crash between
  the commit and a publish can neither lose an event nor announce a refused write.
- The purchases function reads `PurchaseRecorded` from a queue of its own (a rule on the
  bus, a DLQ behind it) and issues the buyer's post-purchase codes: reads, the issue's
  put and the code's and offer's updates on the campaigns table; no deletes, no events
  (the outbox announces the issue).
- The reminder sweep, fired daily by `OffersReminderSchedule`, reads the campaigns table
  and updates code issues with their reminder marks; no puts, no deletes, no events (the
  outbox announces each mark as `OfferExpiring`).
- The outbox function reads the campaigns table's stream, filtered to code issues,
  reminders and redemptions (`functions.offers.outbox.STREAM_FILTERS`), and publishes to
  the bus. It may not touch the table's items. Records that keep failing wait in its
  stream DLQ.

Besides the alarms every event-driven function has (its errors, its DLQs), the outbox
pages on its own `OutboxPublishFailures` metric (`Platform.add_outbox`, as every outbox).
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from constructs import Construct

from functions.core.api import routes_of
from functions.core.event_types import PurchaseRecorded
from functions.core.tables import CAMPAIGNS, IDEMPOTENCY
from functions.offers.handlers import api as offers_api
from functions.offers.outbox import STREAM_FILTERS
from infra.constructs.api import Api
from infra.constructs.platform import DomainFunction, Platform

API_HANDLER = "functions.offers.handlers.api.handler"
OUTBOX_HANDLER = "functions.offers.handlers.outbox.handler"
PURCHASES_HANDLER: Final = "functions.offers.handlers.purchases.handler"
REMINDERS_HANDLER: Final = "functions.offers.handlers.reminders.handler"
API_MEMORY_MB = 512
# Reminders count the campaign's local days, so any hour of the day does; 00:00 UTC is
# 09:00 in Tokyo, where the campaigns' marketers are.
REMINDER_SCHEDULE: Final = events.Schedule.cron(minute="0", hour="0")
# A big offer is many reminders, each a transaction: the longest run Lambda allows. The
# sweep stops in time and fails, so that Lambda's retries finish the day's reminders.
REMINDERS_TIMEOUT: Final = Duration.minutes(15)
# The logical id of the sweep's rule, fixed (not CDK's hash) so an operator, and the local
# cloud's `rebates local fire OffersReminderSchedule`, can name it.
REMINDER_SCHEDULE_ID: Final = "OffersReminderSchedule"
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

        self.purchases_queue = platform.event_queue(
            self,
            "Purchases",
            description="Rebates offers: purchases, to issue the buyer post-purchase codes",
            detail_types=[PurchaseRecorded.detail_type],
        )
        self.purchases = DomainFunction(
            self,
            "PostPurchaseCodes",
            platform=platform,
            domain=DOMAIN,
            handler=PURCHASES_HANDLER,
            description="issues the buyer of a purchase its post-purchase codes",
        )
        self.purchases.consume_queue(self.purchases_queue)
        platform.grant_table(self.purchases, CAMPAIGNS, read_only=True)
        self._grant_item_writes(self.purchases, "dynamodb:PutItem", "dynamodb:UpdateItem")

        self.reminders = DomainFunction(
            self,
            "Reminders",
            platform=platform,
            domain=DOMAIN,
            handler=REMINDERS_HANDLER,
            description="marks the day's reminders of unused codes (scheduled)",
            timeout=REMINDERS_TIMEOUT,
            async_invocation=True,
        )
        platform.grant_table(self.reminders, CAMPAIGNS, read_only=True)
        self._grant_item_writes(self.reminders, "dynamodb:UpdateItem")
        self.reminder_schedule = events.Rule(
            self,
            "ReminderSchedule",
            description="Rebates offers: remind customers of unused codes before they expire",
            schedule=REMINDER_SCHEDULE,
            targets=[targets.LambdaFunction(self.reminders.function)],
        )
        cfn_rule = self.reminder_schedule.node.default_child
        assert isinstance(cfn_rule, events.CfnRule)
        cfn_rule.override_logical_id(REMINDER_SCHEDULE_ID)

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

    def _grant_item_writes(self, fn: DomainFunction, *actions: str) -> None:
        """Let `fn` make exactly these writes to items of the campaigns table (not its
        indexes, which no write names): narrower than `grant_table`'s every write."""
        fn.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=list(actions), resources=[self.platform.table(CAMPAIGNS).table_arn]
            )
        )

    def add_routes(self, api: Api) -> None:
        """Serve every offers route with the API function, each behind the API key."""
        for method, path in ROUTES:
            api.add_route(method, path, self.api_function)
