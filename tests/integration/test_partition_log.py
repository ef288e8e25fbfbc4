"""The capacity model's raw data: writes and reads per partition key value, counted by the atomic
moto server the way DynamoDB bills them (docs/CAPACITY.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from infra.local.moto_server import AtomicMotoServer


@pytest.fixture
def counted() -> Iterator[tuple[Any, AtomicMotoServer]]:
    server = AtomicMotoServer(port=0, count_partitions=True)
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client("dynamodb", endpoint_url=f"http://{host}:{port}", region_name="us-east-1")
    client.create_table(
        TableName="Items", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"},
                              {"AttributeName": "shard", "AttributeType": "S"},
                              {"AttributeName": "due", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[{"IndexName": "due", "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "shard", "KeyType": "HASH"},
                                               {"AttributeName": "due", "KeyType": "RANGE"}]}])
    yield client, server
    server.stop()


def test_writes_are_counted_per_partition_of_the_table_and_of_each_index(counted: tuple[Any, AtomicMotoServer]) -> None:
    client, server = counted
    log = server.partitions
    assert log is not None
    client.put_item(TableName="Items", Item={"id": {"S": "a"}, "shard": {"S": "t1"}, "due": {"S": "1"}})
    client.put_item(TableName="Items", Item={"id": {"S": "b"}})  # not in the sparse index
    # the item moves from t1 to t2: both partitions of the index take a write
    client.update_item(TableName="Items", Key={"id": {"S": "a"}}, UpdateExpression="SET #s = :s",
                       ExpressionAttributeNames={"#s": "shard"}, ExpressionAttributeValues={":s": {"S": "t2"}})
    with pytest.raises(client.exceptions.ConditionalCheckFailedException):
        client.put_item(TableName="Items", Item={"id": {"S": "a"}}, ConditionExpression="attribute_not_exists(id)")
    client.query(TableName="Items", IndexName="due", KeyConditionExpression="#s = :s",
                 ExpressionAttributeNames={"#s": "shard"}, ExpressionAttributeValues={":s": {"S": "t2"}})
    assert log.writes == {("Items", "", "a"): 3, ("Items", "", "b"): 1, ("Items", "due", "t1"): 2,
                          ("Items", "due", "t2"): 1}  # a failed condition is billed on the table only
    assert log.reads == {("Items", "due", "t2"): 1}
