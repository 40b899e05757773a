"""The DynamoDB tables, described once.

Both sides read this: the PynamoDB models bind to a table through its spec, and the
CDK stack creates each table (keys, indexes, TTL, stream) from the same spec, so the
deployed schema and the code's view of it cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IndexSpec:
    name: str
    partition_key: str
    sort_key: str | None = None


@dataclass(frozen=True)
class TableSpec:
    logical_id: str
    # Lambda environment variable carrying the deployed (CDK-generated) table name.
    env_var: str
    partition_key: str
    sort_key: str | None
    indexes: tuple[IndexSpec, ...] = ()
    ttl_attribute: str | None = None
    stream: bool = False
    # Name used when no environment is given: unit tests on moto, offline tools.
    default_name: str = ""


# Campaigns, their versions and offers, budget counters, codes, code issues,
# redemptions and per-customer usage: everything a redemption transaction touches.
# Its stream is the offers outbox (functions/offers/outbox.py): code issues, redemptions
# and rollbacks become events from the committed items, so the API never calls PutEvents.
CAMPAIGNS = TableSpec(
    logical_id="CampaignsTable",
    env_var="CAMPAIGNS_TABLE",
    partition_key="pk",
    sort_key="sk",
    indexes=(IndexSpec("gsi1", "gsi1pk", "gsi1sk"),),
    stream=True,
    default_name="rebates-campaigns",
)

# Claims, their duplicate-detection records, per-customer claim counters and receipts.
# Its stream is the claims outbox (functions/claims/outbox.py): a claim submitted and its
# status changes become events from the committed items.
CLAIMS = TableSpec(
    logical_id="ClaimsTable",
    env_var="CLAIMS_TABLE",
    partition_key="pk",
    sort_key="sk",
    indexes=(IndexSpec("gsi1", "gsi1pk", "gsi1sk"), IndexSpec("gsi2", "gsi2pk", "gsi2sk")),
    stream=True,
    default_name="rebates-claims",
)

# Cashback ledger entries and the per-customer balance item.
# Its stream is the wallet outbox (functions/wallet/outbox.py): purchases, refunds and
# ledger entries become events from the committed items, so the API never calls PutEvents.
WALLET = TableSpec(
    logical_id="WalletTable",
    env_var="WALLET_TABLE",
    partition_key="pk",
    sort_key="sk",
    indexes=(IndexSpec("gsi1", "gsi1pk", "gsi1sk"),),
    stream=True,
    default_name="rebates-wallet",
)

# Customer profiles (contact, locale, consent), their consent log, and what notifications
# keep of each campaign (name, time zone) to word and date its messages.
CUSTOMERS = TableSpec(
    logical_id="CustomersTable",
    env_var="CUSTOMERS_TABLE",
    partition_key="pk",
    sort_key="sk",
    default_name="rebates-customers",
)

# API idempotency records (Powertools layout: `id`, `expiration`) and the dedupe
# records of queue consumers and notifications, all short-lived.
IDEMPOTENCY = TableSpec(
    logical_id="IdempotencyTable",
    env_var="IDEMPOTENCY_TABLE",
    partition_key="id",
    sort_key=None,
    ttl_attribute="expiration",
    default_name="rebates-idempotency",
)

# Per campaign per day counters and the seen-event records that make counting exact.
ANALYTICS = TableSpec(
    logical_id="AnalyticsTable",
    env_var="ANALYTICS_TABLE",
    partition_key="pk",
    sort_key="sk",
    ttl_attribute="expiresAt",
    default_name="rebates-analytics",
)

ALL_TABLES: tuple[TableSpec, ...] = (CAMPAIGNS, CLAIMS, WALLET, CUSTOMERS, IDEMPOTENCY, ANALYTICS)
