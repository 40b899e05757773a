"""Models bind to the table specs: names from the environment, schema equal to the spec."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from pynamodb.models import Model

import functions.analytics.models as analytics
import functions.campaigns.models as campaigns
import functions.claims.models as claims
import functions.core.idempotency as idempotency
import functions.notifications.models as notifications
import functions.offers.models as offers
import functions.wallet.models as wallet
from functions.core.clock import utc_now
from functions.core.models import (
    ALLOW_DEFAULT_TABLES_ENV,
    TableNotConfigured,
    bound_models,
    bound_spec,
    reset_connections,
    resolve_region,
)
from functions.core.settings import SettingsError
from functions.core.tables import (
    ALL_TABLES,
    ANALYTICS,
    CAMPAIGNS,
    CLAIMS,
    CUSTOMERS,
    IDEMPOTENCY,
    WALLET,
    TableSpec,
)
from tests.support.schema import schema_mismatches
from tests.support.tables import create_table_request

ROOT = Path(__file__).resolve().parents[3]

EXPECTED: dict[type[Model], TableSpec] = {
    campaigns.Campaign: CAMPAIGNS,
    campaigns.CampaignVersion: CAMPAIGNS,
    campaigns.Offer: CAMPAIGNS,
    campaigns.Code: CAMPAIGNS,
    campaigns.CodeGeneration: CAMPAIGNS,
    offers.CodeIssue: CAMPAIGNS,
    offers.CustomerUsage: CAMPAIGNS,
    offers.Redemption: CAMPAIGNS,
    offers.OrderRedemption: CAMPAIGNS,
    claims.Claim: CLAIMS,
    claims.DuplicateGuard: CLAIMS,
    claims.CustomerClaimCount: CLAIMS,
    claims.ClaimRequest: CLAIMS,
    claims.Receipt: CLAIMS,
    claims.ReceiptFileUse: CLAIMS,
    wallet.LedgerEntry: WALLET,
    wallet.LedgerEntryId: WALLET,
    wallet.Balance: WALLET,
    wallet.Lot: WALLET,
    wallet.RewardCount: WALLET,
    wallet.Spend: WALLET,
    wallet.Purchase: WALLET,
    wallet.Refund: WALLET,
    wallet.SweepMark: WALLET,
    notifications.CustomerProfile: CUSTOMERS,
    notifications.ConsentEntry: CUSTOMERS,
    notifications.CampaignDirectoryEntry: CUSTOMERS,
    notifications.NotificationRecord: IDEMPOTENCY,
    notifications.OrderFollowUp: IDEMPOTENCY,
    idempotency.IdempotencyRecord: IDEMPOTENCY,
    analytics.DailyCounter: ANALYTICS,
    analytics.DailyAmounts: ANALYTICS,
    analytics.DailyBreakdown: ANALYTICS,
    analytics.SeenEvent: ANALYTICS,
    analytics.SessionState: ANALYTICS,
    analytics.VisitorTouch: ANALYTICS,
    analytics.CustomerChannel: ANALYTICS,
    analytics.CreditChannel: ANALYTICS,
    analytics.OrderFact: ANALYTICS,
    analytics.CampaignCustomer: ANALYTICS,
}

# Models defined by tests (e.g. below) are bound too; only the production ones are listed.
PRODUCTION = sorted(
    (m for m in bound_models() if m.__module__.startswith("functions.")),
    key=lambda m: m.__name__,
)


def test_every_production_model_is_listed_here() -> None:
    assert set(PRODUCTION) == set(EXPECTED)


@pytest.mark.parametrize("model", PRODUCTION, ids=lambda m: m.__name__)
def test_model_keys_indexes_and_ttl_match_its_spec(model: type[Model]) -> None:
    spec = bound_spec(model)
    assert spec is EXPECTED[model]
    assert schema_mismatches(model) == []
    # The same facts, spelled out, so a bug in schema_mismatches cannot hide a drift.
    attributes = model.get_attributes().values()
    assert [a.attr_name for a in attributes if a.is_hash_key] == [spec.partition_key]
    assert [a.attr_name for a in attributes if a.is_range_key] == (
        [spec.sort_key] if spec.sort_key else []
    )
    spec_indexes = {i.name: (i.partition_key, i.sort_key) for i in spec.indexes}
    for name, index in model._indexes.items():
        keys = index.Meta.attributes.values()
        hash_name = next(a.attr_name for a in keys if a.is_hash_key)
        range_name = next((a.attr_name for a in keys if a.is_range_key), None)
        assert spec_indexes[name] == (hash_name, range_name)
        assert index.Meta.projection.projection_type == "ALL"


def test_models_declare_the_index_keys_for_every_index_they_use() -> None:
    # Models using a GSI must also carry its key attributes, or their items never appear.
    for model in PRODUCTION:
        names = {a.attr_name for a in model.get_attributes().values()}
        for index in model._indexes.values():
            for key in index.Meta.attributes.values():
                assert key.attr_name in names, (model.__name__, key.attr_name)


def test_schema_mismatches_reports_a_drift() -> None:
    from pynamodb.attributes import UnicodeAttribute

    from functions.core.models import TableModel, table_meta

    class Drifted(TableModel):
        Meta = table_meta(CAMPAIGNS)
        id = UnicodeAttribute(hash_key=True)

    problems = schema_mismatches(Drifted)
    assert any("partition key is 'id'" in p for p in problems)
    assert any("sort key is None" in p for p in problems)


def test_table_name_comes_from_the_spec_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW_DEFAULT_TABLES_ENV, raising=False)
    monkeypatch.setenv("CAMPAIGNS_TABLE", "stack-CampaignsTable-1A2B")
    assert campaigns.Campaign.Meta.table_name == "stack-CampaignsTable-1A2B"
    # Read on every access, not cached: a changed variable is seen at once.
    monkeypatch.setenv("CAMPAIGNS_TABLE", "other")
    assert campaigns.Code.Meta.table_name == "other"


def test_the_variable_wins_over_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_DEFAULT_TABLES_ENV, "1")
    monkeypatch.setenv("WALLET_TABLE", "deployed-wallet")
    assert wallet.Balance.Meta.table_name == "deployed-wallet"


@pytest.mark.parametrize("spec", ALL_TABLES, ids=lambda s: s.logical_id)
def test_default_name_only_when_allowed(monkeypatch: pytest.MonkeyPatch, spec: TableSpec) -> None:
    model = next(m for m, s in EXPECTED.items() if s is spec)
    monkeypatch.delenv(spec.env_var, raising=False)
    monkeypatch.setenv(ALLOW_DEFAULT_TABLES_ENV, "1")
    assert model.Meta.table_name == spec.default_name
    for refused in ("0", "true", ""):
        monkeypatch.setenv(ALLOW_DEFAULT_TABLES_ENV, refused)
        with pytest.raises(TableNotConfigured, match=spec.env_var):
            _ = model.Meta.table_name


def test_missing_variable_fails_loudly_through_pynamodb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLAIMS_TABLE", raising=False)
    monkeypatch.delenv(ALLOW_DEFAULT_TABLES_ENV, raising=False)
    reset_connections()
    # Through PynamoDB's own code path (hasattr(Meta, "table_name") included): our
    # message, naming the variable, not PynamoDB's generic "must have a table_name".
    with pytest.raises(TableNotConfigured) as raised:
        claims.get_claim("clm_1")
    message = str(raised.value)
    assert "CLAIMS_TABLE" in message
    assert "ClaimsTable" in message
    assert ALLOW_DEFAULT_TABLES_ENV in message
    assert raised.value.variable == "CLAIMS_TABLE"
    assert isinstance(raised.value, SettingsError)
    assert not isinstance(raised.value, AttributeError)


def test_importing_the_models_reads_no_environment() -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_TABLE")}
    env.pop(ALLOW_DEFAULT_TABLES_ENV, None)
    env["PYTHONPATH"] = str(ROOT)
    code = (
        "import functions.campaigns.models, functions.offers.models, functions.claims.models, "
        "functions.wallet.models, functions.notifications.models, functions.analytics.models"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_region_prefers_aws_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-northeast-1")
    assert resolve_region() == "us-west-2"
    assert campaigns.Campaign.Meta.region == "us-west-2"
    monkeypatch.delenv("AWS_REGION")
    assert resolve_region() == "ap-northeast-1"
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert resolve_region() is None


def test_endpoint_is_left_to_botocore(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    assert campaigns.Campaign.Meta.host is None
    reset_connections()
    try:
        # Building the client opens no socket (the fake credentials spare botocore a
        # metadata lookup); botocore resolved AWS_ENDPOINT_URL itself.
        client = campaigns.Campaign._get_connection().connection.client
        assert client.meta.endpoint_url == "http://127.0.0.1:4566"
        assert client.meta.region_name == "ap-northeast-1"
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9999")
        reset_connections()
        client = campaigns.Campaign._get_connection().connection.client
        assert client.meta.endpoint_url == "http://127.0.0.1:9999"
    finally:
        reset_connections()


def test_models_use_the_table_named_by_the_variable(
    tables: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    boto3.client("dynamodb").create_table(**create_table_request(CUSTOMERS, "blue-customers"))
    monkeypatch.setenv("CUSTOMERS_TABLE", "blue-customers")
    profile = notifications.CustomerProfile(customer_id="c1", locale="en", updated_at=utc_now())
    profile.save()
    items = boto3.client("dynamodb").scan(TableName="blue-customers")["Items"]
    assert [item["pk"]["S"] for item in items] == ["CUSTOMER#c1"]
    monkeypatch.delenv("CUSTOMERS_TABLE")
    # Back on the default table, which does not have it.
    assert notifications.get_profile("c1") is None


def test_create_request_follows_the_spec() -> None:
    request = create_table_request(CLAIMS, "t")
    assert request["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert [i["IndexName"] for i in request["GlobalSecondaryIndexes"]] == ["gsi1", "gsi2"]
    assert request["BillingMode"] == "PAY_PER_REQUEST"
    assert {d["AttributeName"] for d in request["AttributeDefinitions"]} == {
        "pk",
        "sk",
        "gsi1pk",
        "gsi1sk",
        "gsi2pk",
        "gsi2sk",
    }


def test_created_tables_have_ttl(tables: list[str]) -> None:
    client = boto3.client("dynamodb")
    for spec in ALL_TABLES:
        ttl = client.describe_time_to_live(TableName=spec.default_name)["TimeToLiveDescription"]
        if spec.ttl_attribute:
            assert ttl["AttributeName"] == spec.ttl_attribute
            assert ttl["TimeToLiveStatus"] == "ENABLED"
        else:
            assert ttl["TimeToLiveStatus"] == "DISABLED"
    assert sorted(tables) == sorted(s.default_name for s in ALL_TABLES)
