"""`rebates wallet audit CUSTOMER_ID`: do a customer's entries, lots and balances agree?

The audit is the wallet's own (`WalletStore.audit`, the check the tests run after every
step), run here against the target's Wallet table: the local cloud's or the deployed
stack's (`cli.target`). It prints the verdict, one line per difference, and exits 1
when there is any.

The table is found by its logical id, `functions.core.tables.WALLET.logical_id`, which
the stack fixes (`infra.constructs.resources.table_from_spec`): among the stack's
resources in AWS, and by the name the local cloud gives it (`<Stack>-<LogicalId>-<suffix>`)
locally, where there is no CloudFormation to ask.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from cli.target import STACK_NAME, Target, TargetUnavailable
from functions.core.tables import WALLET, TableSpec

if TYPE_CHECKING:
    from functions.wallet.dal import AuditReport

_TABLE_TYPE = "AWS::DynamoDB::Table"


def table_name(target: Target, spec: TableSpec, stack_name: str = STACK_NAME) -> str:
    """The physical name of `spec`'s table in `target`; `TargetUnavailable` if none."""
    if target.kind == "aws":
        names = _stack_tables(target.client("cloudformation"), stack_name, spec.logical_id)
    else:
        prefix = f"{stack_name}-{spec.logical_id}-"
        names = [
            name for name in _table_names(target.client("dynamodb")) if name.startswith(prefix)
        ]
    if len(names) != 1:
        raise TargetUnavailable(
            f"the {target.description} has {len(names)} {spec.logical_id} tables, expected one"
        )
    return names[0]


def _stack_tables(cloudformation: Any, stack_name: str, logical_id: str) -> list[str]:
    names = []
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        names += [
            str(resource["PhysicalResourceId"])
            for resource in page["StackResourceSummaries"]
            if resource["ResourceType"] == _TABLE_TYPE
            and resource["LogicalResourceId"] == logical_id
            and resource.get("PhysicalResourceId")
        ]
    return names


def _table_names(dynamodb: Any) -> Iterator[str]:
    for page in dynamodb.get_paginator("list_tables").paginate():
        yield from page["TableNames"]


def environment(target: Target, wallet_table: str) -> dict[str, str]:
    """What the wallet's models read to reach `target`'s table: its name, the region and,
    for the local cloud, moto's endpoint and its fixed fake credentials."""
    variables = {WALLET.env_var: wallet_table, "AWS_DEFAULT_REGION": target.region}
    if target.kind == "local":
        variables.update(
            {
                "AWS_ENDPOINT_URL": target.output("AwsEndpoint"),
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",  # moto's fixed fake credentials
                # botocore 1.44's account-based endpoints, which moto does not route.
                "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            }
        )
    return variables


@contextmanager
def bound_to(variables: Mapping[str, str]) -> Iterator[None]:
    """The process environment with `variables`, and fresh AWS connections, for the block."""
    from functions.core.aws import reset_sessions
    from functions.core.models import reset_connections

    previous = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    reset_sessions()
    reset_connections()
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_sessions()
        reset_connections()


def _wallet_audit(customer_id: str) -> AuditReport:
    from functions.wallet.dal import WalletStore

    return WalletStore().audit(customer_id)


def print_report(report: AuditReport, out: TextIO) -> int:
    if report.ok:
        print(f"wallet {report.customer_id!r}: entries, lots and balances agree", file=out)
        return 0
    count = len(report.differences)
    print(
        f"wallet {report.customer_id!r}: {count} difference{'' if count == 1 else 's'}",
        file=out,
    )
    for difference in report.differences:
        print(f"  {difference}", file=out)
    return 1


def run_audit(
    customer_id: str,
    target: Target,
    *,
    out: TextIO | None = None,
    audit: Callable[[str], AuditReport] = _wallet_audit,
) -> int:
    """Audit `customer_id`'s wallet in `target`: 0 when it agrees, 1 with the differences."""
    variables = environment(target, table_name(target, WALLET))
    with bound_to(variables):
        report = audit(customer_id)
    return print_report(report, out or sys.stdout)
