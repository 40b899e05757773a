"""`rebates wallet audit CUSTOMER_ID`: the wallet's audit against the target's table.

A deployed stack is stood in for by moto's CloudFormation, which creates the Wallet table
under its logical id like the real stack; the local cloud's naming is checked on moto's
DynamoDB (tests/integration/test_wallet.py runs the command against a real local cloud).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cli.main import main
from cli.target import STACK_NAME, Target, TargetUnavailable
from cli.wallet import environment, print_report, run_audit, table_name
from functions.core.tables import CAMPAIGNS, WALLET
from functions.wallet.dal import AuditReport

REGION = "ap-northeast-1"

# The stack's Wallet table as CloudFormation knows it: its logical id is the spec's.
TEMPLATE = {
    "Resources": {
        WALLET.logical_id: {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [
                    {"AttributeName": name, "AttributeType": "S"}
                    for name in ("pk", "sk", "gsi1pk", "gsi1sk")
                ],
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                "GlobalSecondaryIndexes": [
                    {
                        "IndexName": "gsi1",
                        "KeySchema": [
                            {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                            {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                        ],
                        "Projection": {"ProjectionType": "ALL"},
                    }
                ],
            },
        },
        "Queue": {"Type": "AWS::SQS::Queue"},
    },
    "Outputs": {
        "ApiUrl": {"Value": "https://abc123.execute-api.ap-northeast-1.amazonaws.com/prod"}
    },
}


@pytest.fixture
def account(bare_aws_env: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Credentials for an account (moto's) holding the deployed stack."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for spec in (WALLET, CAMPAIGNS):
        monkeypatch.delenv(spec.env_var, raising=False)
    with mock_aws():
        boto3.client("cloudformation", region_name=REGION).create_stack(
            StackName=STACK_NAME, TemplateBody=json.dumps(TEMPLATE)
        )
        yield


def deployed_wallet_table() -> str:
    resources = boto3.client("cloudformation", region_name=REGION).list_stack_resources(
        StackName=STACK_NAME
    )["StackResourceSummaries"]
    (table,) = [r for r in resources if r["LogicalResourceId"] == WALLET.logical_id]
    return str(table["PhysicalResourceId"])


def local(outputs: dict[str, str] | None = None) -> Target:
    values = outputs or {"AwsEndpoint": "http://127.0.0.1:4566", "ApiUrl": "http://127.0.0.1:3000"}
    return Target(
        kind="local",
        outputs=values,
        region=REGION,
        description="local cloud at http://127.0.0.1:4566",
        make_client=lambda service: boto3.client(service, region_name=REGION),
        fetch_api_key=lambda: "key",
    )


def test_the_deployed_stack_s_wallet_is_audited_and_agrees(
    account: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--target", "aws", "wallet", "audit", "cust-1"]) == 0
    captured = capsys.readouterr()
    assert "'cust-1': entries, lots and balances agree" in captured.out
    assert "AWS stack Rebates" in captured.err  # the target is announced


def test_a_wallet_that_disagrees_exits_1_with_each_difference(
    account: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.core.models import reset_connections
    from functions.wallet.models import Balance

    # A balance no entry accounts for: what a bug (or a hand edit) would leave behind.
    monkeypatch.setenv(WALLET.env_var, deployed_wallet_table())
    reset_connections()
    Balance(customer_id="cust-1", currency="JPY", available=500, version=1).save()
    monkeypatch.delenv(WALLET.env_var)

    assert main(["wallet", "audit", "cust-1", "--target", "aws"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("wallet 'cust-1': ") and "difference" in out[0]
    assert len(out) >= 2 and all(line.startswith("  ") for line in out[1:])
    assert WALLET.env_var not in os.environ  # the binding is undone


def test_the_table_is_found_by_its_logical_id(account: None) -> None:
    from cli.target import aws_target

    assert table_name(aws_target(), WALLET) == deployed_wallet_table()
    with pytest.raises(TargetUnavailable, match="0 CampaignsTable tables"):
        table_name(aws_target(), CAMPAIGNS)


def test_locally_the_table_is_found_by_the_name_the_local_cloud_gives_it(
    bare_aws_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        for name in ("Rebates-WalletTable-7QK2M9XDA1B2", "Rebates-WalletTableOld-X", "other"):
            dynamodb.create_table(
                TableName=name,
                BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            )
        assert table_name(local(), WALLET) == "Rebates-WalletTable-7QK2M9XDA1B2"
        with pytest.raises(TargetUnavailable, match="0 CampaignsTable tables"):
            table_name(local(), CAMPAIGNS)


def test_locally_the_models_are_pointed_at_moto_s_endpoint() -> None:
    assert environment(local(), "Rebates-WalletTable-1") == {
        WALLET.env_var: "Rebates-WalletTable-1",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    }
    deployed = Target(
        kind="aws",
        outputs={},
        region="eu-west-1",
        description="AWS",
        make_client=lambda service: None,
        fetch_api_key=lambda: "",
    )
    # In AWS the credentials are the shell's own: only the table and region are set.
    assert environment(deployed, "Rebates-WalletTable-2") == {
        WALLET.env_var: "Rebates-WalletTable-2",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }


def test_the_audit_runs_with_the_target_bound_and_unbinds_after(
    account: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli.target import aws_target

    seen: list[str | None] = []

    def audit(customer_id: str) -> AuditReport:
        seen.append(os.environ.get(WALLET.env_var))
        return AuditReport(customer_id=customer_id, ok=True, differences=())

    out = io.StringIO()
    assert run_audit("cust 1", aws_target(), out=out, audit=audit) == 0
    assert seen == [deployed_wallet_table()]
    assert WALLET.env_var not in os.environ
    assert out.getvalue() == "wallet 'cust 1': entries, lots and balances agree\n"


def test_the_report_prints_one_line_per_difference() -> None:
    out = io.StringIO()
    report = AuditReport(
        customer_id="cust-1",
        ok=False,
        differences=("JPY available: balance 500, entries 0", "JPY available: lots 0"),
    )
    assert print_report(report, out) == 1
    assert out.getvalue().splitlines() == [
        "wallet 'cust-1': 2 differences",
        "  JPY available: balance 500, entries 0",
        "  JPY available: lots 0",
    ]


def test_nothing_to_talk_to_is_an_error_not_a_verdict(
    bare_aws_env: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("cli.target.LOCAL_OUTPUTS", bare_aws_env / "missing.json")
    assert main(["wallet", "audit", "cust-1", "--target", "local"]) == 1
    assert "error: " in capsys.readouterr().err
