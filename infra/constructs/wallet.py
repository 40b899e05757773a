"""Wallet: the cashback ledger's table, its storefront routes, the scheduled sweep, the
claims workflow's credit task, and the outbox that turns committed ledger changes into
events.

Each function may do what its code calls and nothing else:

- The API function (purchases, refunds, the wallet, spends) reads and writes the wallet
  table and its POST routes' idempotency records, and reads the campaigns table (running
  cashback campaigns and their files) and updates it only as the budget needs: a credit
  reserves and a reversal gives back through `functions.campaigns.budget`, whose parts
  are updates of the campaign item inside the wallet's own transactions. No put or
  delete on the campaigns table, and no events: they come from the wallet table's stream.
- The sweep, fired by a schedule every 15 minutes, reads and writes the wallet table only.
- The credit function, a task of the claims state machine, writes the claim's lot to the
  wallet table and reads its campaign (pending days, expiry); the claims workflow
  reserved the budget in a step of its own, so it may not update campaigns.
- The outbox reads the wallet table's stream, filtered to purchases, refunds, ledger
  entries and the lots the sweep marked warned of their expiry
  (`functions.wallet.outbox.STREAM_FILTERS`), and publishes to the bus; it may
  not touch the table's items. Records that keep failing wait in its stream DLQ.

Alarms: the sweep and the outbox are event-driven, so each pages on its errors and its
DLQ (made with them); the outbox also pages on its own `OutboxPublishFailures`, which a
record failing inside a batch raises while the invocation succeeds. API failures show as
the API's 5xx alarm; a failing credit fails its claim's execution, which the claims
workflow reports.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from constructs import Construct

from functions.core.api import routes_of
from functions.core.tables import CAMPAIGNS, IDEMPOTENCY, WALLET
from functions.wallet.handlers import api as wallet_api
from functions.wallet.outbox import STREAM_FILTERS
from infra.constructs.api import Api
from infra.constructs.platform import DomainFunction, Platform

API_HANDLER: Final = "functions.wallet.handlers.api.handler"
SWEEP_HANDLER: Final = "functions.wallet.handlers.sweep.handler"
CREDIT_HANDLER: Final = "functions.wallet.handlers.credit.handler"
OUTBOX_HANDLER: Final = "functions.wallet.handlers.outbox.handler"
API_MEMORY_MB: Final = 512
# The functions' POWERTOOLS_SERVICE_NAME: the `service` dimension of their metrics.
DOMAIN: Final = "wallet"
# Release and expiry are promised by the day (a lot becomes spendable at the start of a
# local day): a quarter of an hour late at most is well inside that.
SWEEP_RATE: Final = Duration.minutes(15)
# A sweep moves every due lot of the days since its last run, each in a transaction of its
# own: after an outage that is many; it stops well before the next run is due.
SWEEP_TIMEOUT: Final = Duration.minutes(10)
# The logical id of the sweep's rule, fixed (not CDK's hash) so an operator, and the local
# cloud's `rebates local fire WalletSweepSchedule`, can name it.
SWEEP_SCHEDULE_ID: Final = "WalletSweepSchedule"

# The routes the wallet API function serves, as its router declares them (the one source
# the OpenAPI document is generated from too).
ROUTES: Final = tuple((method, path) for method, path, _ in routes_of(wallet_api.router))


class Wallet(Construct):
    def __init__(self, scope: Construct, id: str, *, platform: Platform, api: Api) -> None:
        super().__init__(scope, id)
        self.platform = platform
        self.table = platform.add_table(self, WALLET)

        self.api_function = DomainFunction(
            self,
            "Api",
            platform=platform,
            domain=DOMAIN,
            handler=API_HANDLER,
            description="purchases, refunds, the wallet and spends",
            memory_size=API_MEMORY_MB,
        )
        platform.grant_table(self.api_function, WALLET)
        platform.grant_table(self.api_function, IDEMPOTENCY)
        platform.grant_table(self.api_function, CAMPAIGNS, read_only=True)
        platform.grant_budget(self.api_function)
        for method, path in ROUTES:
            api.add_route(method, path, self.api_function)

        self.sweep = DomainFunction(
            self,
            "Sweep",
            platform=platform,
            domain=DOMAIN,
            handler=SWEEP_HANDLER,
            description="releases and expires due cashback lots (scheduled)",
            timeout=SWEEP_TIMEOUT,
            async_invocation=True,
        )
        platform.grant_table(self.sweep, WALLET)
        self.sweep_schedule = events.Rule(
            self,
            "SweepSchedule",
            description="Rebates wallet: release and expire due cashback lots",
            schedule=events.Schedule.rate(SWEEP_RATE),
            targets=[targets.LambdaFunction(self.sweep.function)],
        )
        cfn_rule = self.sweep_schedule.node.default_child
        assert isinstance(cfn_rule, events.CfnRule)
        cfn_rule.override_logical_id(SWEEP_SCHEDULE_ID)

        self.credit_function = DomainFunction(
            self,
            "Credit",
            platform=platform,
            domain=DOMAIN,
            handler=CREDIT_HANDLER,
            description="credits an approved claim's cashback (claims workflow task)",
        )
        platform.grant_table(self.credit_function, WALLET)
        platform.grant_table(self.credit_function, CAMPAIGNS, read_only=True)

        outbox = platform.add_outbox(
            self,
            domain=DOMAIN,
            handler=OUTBOX_HANDLER,
            description="publishes purchases, refunds and ledger entries from the table",
            table=self.table,
            filters=STREAM_FILTERS,
            publishes="a ledger change's event",
        )
        self.outbox, self.outbox_dlq = outbox.function, outbox.dlq
        self.outbox_failures_alarm = outbox.failures_alarm
