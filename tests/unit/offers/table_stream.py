"""What the offers outbox publishes from the Campaigns table's own stream on moto.

The records are those moto's table produced for the writes a test made, passed through
the stream mapping's filters (`STREAM_FILTERS`) as Lambda applies them, then handed to the
outbox; what it publishes is what a consumer on the bus would receive.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.config import Config

from functions.core.events import DetailT, InMemoryPublisher
from functions.core.tables import CAMPAIGNS
from functions.offers.handlers.outbox import Outbox
from functions.offers.outbox import STREAM_FILTERS
from infra.local.stream_filters import matches

_FILTERS = {"Filters": [{"Pattern": json.dumps(pattern)} for pattern in STREAM_FILTERS]}


def stream_records() -> list[dict[str, Any]]:
    """Every record the Campaigns table's stream holds, shaped as Lambda delivers it."""
    table = boto3.client("dynamodb").describe_table(TableName=CAMPAIGNS.default_name)
    stream_arn = table["Table"]["LatestStreamArn"]
    # moto routes DynamoDB Streams calls only without account-based endpoints.
    streams = boto3.client("dynamodbstreams", config=Config(account_id_endpoint_mode="disabled"))
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records += streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
    return [{**record, "eventSourceARN": stream_arn} for record in records]


def published(detail: type[DetailT]) -> list[DetailT]:
    """The events of type `detail` the outbox publishes from the stream, in stream order."""
    delivered = [record for record in stream_records() if matches(_FILTERS, record)]
    events = InMemoryPublisher()
    assert Outbox(events).handle({"Records": delivered}) == {"batchItemFailures": []}
    return events.of_type(detail)
