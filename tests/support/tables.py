"""Create the Rebates tables from their specs with plain boto3 (on moto in unit tests).

The same `functions.core.tables` specs drive the CDK stack, so what a test creates here
is what gets deployed: keys, GSIs (ALL projection), TTL, on-demand billing, streams.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import boto3
import pytest
from pynamodb.exceptions import PynamoDBException

from functions.core.models import resolve_table_name
from functions.core.tables import ALL_TABLES, TableSpec


def create_table_request(spec: TableSpec, table_name: str) -> dict[str, Any]:
    """The ``CreateTable`` parameters for `spec` (every key attribute is a string)."""
    key_names = [spec.partition_key, spec.sort_key]
    for index in spec.indexes:
        key_names += [index.partition_key, index.sort_key]
    attribute_names = list(dict.fromkeys(name for name in key_names if name is not None))

    def key_schema(partition: str, sort: str | None) -> list[dict[str, str]]:
        schema = [{"AttributeName": partition, "KeyType": "HASH"}]
        if sort is not None:
            schema.append({"AttributeName": sort, "KeyType": "RANGE"})
        return schema

    request: dict[str, Any] = {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"} for name in attribute_names
        ],
        "KeySchema": key_schema(spec.partition_key, spec.sort_key),
    }
    if spec.indexes:
        request["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index.name,
                "KeySchema": key_schema(index.partition_key, index.sort_key),
                "Projection": {"ProjectionType": "ALL"},
            }
            for index in spec.indexes
        ]
    if spec.stream:
        request["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
    return request


def create_tables(specs: Iterable[TableSpec] = ALL_TABLES, client: Any = None) -> list[str]:
    """Create every table in `specs` under the name the models will resolve; return names."""
    dynamodb = client or boto3.client("dynamodb")
    names = []
    for spec in specs:
        name = resolve_table_name(spec)
        dynamodb.create_table(**create_table_request(spec, name))
        dynamodb.get_waiter("table_exists").wait(
            TableName=name, WaiterConfig={"Delay": 0, "MaxAttempts": 5}
        )
        if spec.ttl_attribute:
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
            )
        names.append(name)
    return names


@contextlib.contextmanager
def refused_by_condition() -> Iterator[None]:
    """Expect a single-item write (put, update, delete) to fail on its condition."""
    with pytest.raises(PynamoDBException) as raised:
        yield
    assert raised.value.cause_response_code == "ConditionalCheckFailedException", raised.value
