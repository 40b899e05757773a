"""The TransactWriteItems patch: moto's behaviour exactly, at a cost that ignores table size.

Each scenario runs twice on fresh moto, with moto's own `transact_write_items` and with
the patch, and the two must be indistinguishable: the response or error (with every
cancellation reason), the items, a GSI query and the stream records.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends

from infra.local import patches
from infra.local.patches import dynamodb_transactions, registry
from infra.local.server import DEFAULT_ACCOUNT_ID

REGION = "ap-northeast-1"
TABLE = "patches-offers"
COUNTERS = "patches-counters"
POOL = {"gsi1pk": {"S": "POOL"}}
# One session for every run: a new one loads botocore's endpoint data again (0.5 s).
SESSION = boto3.session.Session(region_name=REGION)


@contextmanager
def transactions(*, patched: bool) -> Iterator[None]:
    """moto's TransactWriteItems, or the patched one, for this block only."""
    moto_own = registry.original(DynamoDBBackend, "transact_write_items")
    with pytest.MonkeyPatch.context() as monkeypatch:
        # Whatever an earlier test installed for the rest of the process is set aside.
        monkeypatch.setattr(registry, "_lasting", [])
        monkeypatch.setattr(DynamoDBBackend, "transact_write_items", moto_own)
        if patched:
            patches.patch_dynamodb_transactions()
        yield


def _create_tables(dynamodb: Any) -> None:
    dynamodb.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"}
            for name in ("pk", "sk", "gsi1pk", "gsi1sk")
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "gsi1",
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    dynamodb.create_table(
        TableName=COUNTERS,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )


def _code(name: str, **attributes: Any) -> dict[str, Any]:
    return {
        "pk": {"S": f"CODE#{name}"},
        "sk": {"S": "META"},
        **POOL,
        "gsi1sk": {"S": name},
        **attributes,
    }


def _key(name: str) -> dict[str, Any]:
    return {"pk": {"S": f"CODE#{name}"}, "sk": {"S": "META"}}


SEED = [
    _code("A", status={"S": "open"}),
    _code("B", uses={"N": "1"}),
    _code("C", status={"S": "open"}),
]


def put(name: str, **attributes: Any) -> dict[str, Any]:
    return {
        "Put": {
            "TableName": TABLE,
            "Item": _code(name, **attributes),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }


def use(name: str) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": TABLE,
            "Key": _key(name),
            "UpdateExpression": "SET uses = uses + :one REMOVE gsi1pk",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }


def add_use(name: str) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": TABLE,
            "Key": _key(name),
            "UpdateExpression": "ADD uses :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }


def delete(name: str) -> dict[str, Any]:
    return {"Delete": {"TableName": TABLE, "Key": _key(name)}}


def require_status(name: str, status: str) -> dict[str, Any]:
    return {
        "ConditionCheck": {
            "TableName": TABLE,
            "Key": _key(name),
            "ConditionExpression": "#status = :status",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":status": {"S": status}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }


def count() -> dict[str, Any]:
    return {
        "Update": {
            "TableName": COUNTERS,
            "Key": {"pk": {"S": "codes"}},
            "UpdateExpression": "ADD issued :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }


def _stream_records() -> list[tuple[Any, ...]]:
    shard = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].get_table(TABLE).stream_shard
    assert shard is not None
    return [
        (
            record.record["eventName"],
            record.record["dynamodb"]["SequenceNumber"],
            record.record["dynamodb"]["Keys"],
            record.record["dynamodb"].get("OldImage"),
            record.record["dynamodb"].get("NewImage"),
        )
        for record in shard.items
    ]


def _run(transact_items: list[dict[str, Any]], *, patched: bool) -> dict[str, Any]:
    """Seed the tables, run the transaction, and return everything observable after it."""
    with transactions(patched=patched), mock_aws():
        dynamodb = SESSION.client("dynamodb")
        _create_tables(dynamodb)
        for item in SEED:
            dynamodb.put_item(TableName=TABLE, Item=item)
        dynamodb.put_item(TableName=COUNTERS, Item={"pk": {"S": "codes"}, "issued": {"N": "3"}})
        stream_before = _stream_records()
        try:
            dynamodb.transact_write_items(TransactItems=transact_items)
            outcome: dict[str, Any] = {"outcome": "committed"}
        except ClientError as error:
            outcome = {
                "outcome": error.response["Error"]["Code"],
                "message": error.response["Error"]["Message"],
                "reasons": error.response.get("CancellationReasons"),
            }
        scanned = dynamodb.scan(TableName=TABLE)["Items"]
        pool = dynamodb.query(
            TableName=TABLE,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :pool",
            ExpressionAttributeValues={":pool": POOL["gsi1pk"]},
        )["Items"]
        return {
            **outcome,
            "items": sorted(scanned, key=lambda item: item["pk"]["S"]),
            "pool": [item["gsi1sk"]["S"] for item in pool],
            "counters": dynamodb.scan(TableName=COUNTERS)["Items"],
            "item_count": dynamodb.describe_table(TableName=TABLE)["Table"]["ItemCount"],
            "stream_before": stream_before,
            "new_stream_records": _stream_records()[len(stream_before) :],
        }


def _as_moto_does(transact_items: list[dict[str, Any]]) -> dict[str, Any]:
    """The patched run, after checking it matches moto's own run in every respect."""
    patched = _run(transact_items, patched=True)
    assert patched == _run(transact_items, patched=False)
    return patched


UNTOUCHED = sorted(SEED, key=lambda item: item["pk"]["S"])


def test_a_failed_condition_undoes_every_earlier_write_and_reports_each_item() -> None:
    seen = _as_moto_does(
        [put("D"), use("B"), delete("C"), count(), require_status("A", "closed"), put("E")]
    )

    assert seen["outcome"] == "TransactionCanceledException"
    assert seen["message"] == (
        "Transaction cancelled, please refer cancellation reasons for specific reasons "
        "[None, None, None, None, ConditionalCheckFailed, None]"
    )
    assert seen["reasons"] == [
        {"Code": "None"},
        {"Code": "None"},
        {"Code": "None"},
        {"Code": "None"},
        {
            "Code": "ConditionalCheckFailed",
            "Message": "The conditional request failed",
            "Item": SEED[0],
        },
        {"Code": "None"},
    ]
    assert seen["items"] == UNTOUCHED
    assert seen["pool"] == ["A", "B", "C"]
    assert seen["counters"] == [{"pk": {"S": "codes"}, "issued": {"N": "3"}}]
    assert seen["new_stream_records"] == []


def test_a_transaction_that_passes_applies_every_write() -> None:
    seen = _as_moto_does([put("D"), use("B"), delete("C"), require_status("A", "open"), count()])

    assert seen["outcome"] == "committed"
    assert seen["items"] == [
        SEED[0],
        {"pk": {"S": "CODE#B"}, "sk": {"S": "META"}, "gsi1sk": {"S": "B"}, "uses": {"N": "2"}},
        _code("D"),
    ]
    assert seen["pool"] == ["A", "D"]  # B left the index, C is gone, D joined
    assert seen["counters"] == [{"pk": {"S": "codes"}, "issued": {"N": "4"}}]
    assert seen["item_count"] == 3
    assert [record[0] for record in seen["new_stream_records"]] == ["INSERT", "MODIFY", "REMOVE"]


def test_an_update_that_created_an_item_is_undone() -> None:
    seen = _as_moto_does([add_use("NEW"), put("A")])  # A exists: its put fails

    assert seen["reasons"][1]["Code"] == "ConditionalCheckFailed"
    assert "Item" not in seen["reasons"][1]  # no ReturnValuesOnConditionCheckFailure
    assert seen["items"] == UNTOUCHED
    assert seen["item_count"] == 3


def test_two_operations_on_one_item_refuse_the_request_and_write_nothing() -> None:
    seen = _as_moto_does([put("D"), use("B"), delete("B")])

    assert seen["outcome"] == "ValidationException"
    assert seen["message"] == "Transaction request cannot include multiple operations on one item"
    assert seen["items"] == UNTOUCHED
    assert seen["new_stream_records"] == []


def test_an_invalid_update_refuses_the_request_and_undoes_earlier_writes() -> None:
    updating_a_key = {
        "Update": {
            "TableName": TABLE,
            "Key": _key("A"),
            "UpdateExpression": "SET sk = :other",
            "ExpressionAttributeValues": {":other": {"S": "OTHER"}},
        }
    }
    seen = _as_moto_does([put("D"), delete("C"), updating_a_key])

    assert seen["outcome"] == "ValidationException"
    assert "part of the key" in seen["message"]
    assert seen["items"] == UNTOUCHED


def test_a_missing_table_cancels_with_its_own_reason() -> None:
    missing = require_status("A", "open")
    missing["ConditionCheck"]["TableName"] = "patches-nowhere"
    seen = _as_moto_does([put("D"), missing])

    assert [reason["Code"] for reason in seen["reasons"]] == ["None", "ResourceNotFoundException"]
    assert seen["items"] == UNTOUCHED


def test_the_patch_is_installed_once_and_kept_for_the_process() -> None:
    before = DynamoDBBackend.transact_write_items
    with transactions(patched=False):
        moto_own = DynamoDBBackend.transact_write_items
        patches.patch_dynamodb_transactions()
        patches.patch_dynamodb_transactions()
        assert DynamoDBBackend.transact_write_items is dynamodb_transactions._transact_write_items
        assert registry._lasting == [(DynamoDBBackend, "transact_write_items", moto_own)]
        assert patches.verify() == []  # checks moto's own while patched
    assert DynamoDBBackend.transact_write_items is before


def test_verify_names_a_changed_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    def rewritten(self: Any, transact_items: list[dict[str, Any]]) -> None:
        return None

    with transactions(patched=False):
        monkeypatch.setattr(DynamoDBBackend, "transact_write_items", rewritten)
        problems = "\n".join(patches.verify())
        assert "DynamoDBBackend.transact_write_items no longer contains" in problems
        with pytest.raises(patches.PatchError, match="transact_write_items"):
            patches.patch_dynamodb_transactions()


# -- cost --------------------------------------------------------------------------------


def _fill(table_name: str, up_to: int) -> None:
    """Store codes straight into moto's table (TransactWriteItems would take longer)."""
    table = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].get_table(table_name)
    for number in range(len(table), up_to):
        table.put_item(_code(f"SEED{number:06d}", uses={"N": "0"}))


def _time_transactions(dynamodb: Any, first: int, number: int) -> float:
    """The median time of `number` transactions of 99 new codes each."""
    timings = []
    for batch in range(first, first + number):
        items = [put(f"NEW{batch:03d}-{index:02d}") for index in range(99)]
        started = time.perf_counter()
        dynamodb.transact_write_items(TransactItems=items)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def test_a_transaction_costs_the_same_in_a_table_a_hundred_times_larger() -> None:
    with transactions(patched=True), mock_aws():
        dynamodb = SESSION.client("dynamodb")
        _create_tables(dynamodb)
        _time_transactions(dynamodb, 900, 1)  # warms moto's parsers up
        _fill(TABLE, 100)
        small = _time_transactions(dynamodb, 0, 5)
        _fill(TABLE, 10_000)
        large = _time_transactions(dynamodb, 100, 20)
        stored = dynamodb.describe_table(TableName=TABLE)["Table"]["ItemCount"]

    assert stored == 10_000 + 20 * 99
    # moto's own would deep-copy the 10,000 items for each of the 99 puts: ~100x slower.
    assert large < 5 * small, f"{large:.3f} s in 10,000 items vs {small:.3f} s in 100"
