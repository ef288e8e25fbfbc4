"""The local stack's DynamoDB: moto's server, made to behave as DynamoDB does where lorapin relies on it.

A canceled `TransactWriteItems` must leave every item as it was, and nothing else. moto restores a
deep copy of each whole table taken when the transaction began: its cost grows with the table (at
3,000 items a transaction took ~85 ms on this machine, against ~1 ms for a PutItem), which made the
day bench's writes slower and its memory churn larger with every item. The atomic server puts back
the items the transaction touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.dynamodb.models import dynamodb_backends

from infra.local.moto_server import AtomicMotoServer


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    server = AtomicMotoServer(port=0)
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client("dynamodb", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_table(TableName="Plain", BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    client.create_table(TableName="Ranged", BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"},
                                              {"AttributeName": "seq", "AttributeType": "N"}],
                        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"},
                                   {"AttributeName": "seq", "KeyType": "RANGE"}])
    yield client
    for name in ("Plain", "Ranged"):
        client.delete_table(TableName=name)
    server.stop()


def _items(client: Any, table: str) -> list[dict[str, Any]]:
    return sorted(client.scan(TableName=table, ConsistentRead=True)["Items"], key=repr)


def test_a_canceled_transaction_puts_back_every_item_it_touched_and_nothing_else(dynamodb: Any) -> None:
    dynamodb.put_item(TableName="Plain", Item={"id": {"S": "kept"}, "n": {"N": "1"}})
    dynamodb.put_item(TableName="Plain", Item={"id": {"S": "updated"}, "n": {"N": "1"}})
    dynamodb.put_item(TableName="Plain", Item={"id": {"S": "deleted"}, "n": {"N": "1"}})
    dynamodb.put_item(TableName="Ranged", Item={"id": {"S": "u"}, "seq": {"N": "1"}, "v": {"S": "old"}})
    before = {"Plain": _items(dynamodb, "Plain"), "Ranged": _items(dynamodb, "Ranged")}
    table_objects = dict(dynamodb_backends["123456789012"]["us-east-1"].tables.items())

    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(TransactItems=[
            {"Put": {"TableName": "Plain", "Item": {"id": {"S": "new"}}}},
            {"Update": {"TableName": "Plain", "Key": {"id": {"S": "updated"}}, "UpdateExpression": "SET n = :n",
                        "ExpressionAttributeValues": {":n": {"N": "2"}}}},
            {"Delete": {"TableName": "Plain", "Key": {"id": {"S": "deleted"}}}},
            {"Put": {"TableName": "Ranged", "Item": {"id": {"S": "u"}, "seq": {"N": "1"}, "v": {"S": "new"}}}},
            {"Put": {"TableName": "Ranged", "Item": {"id": {"S": "u"}, "seq": {"N": "2"}}}},
            {"ConditionCheck": {"TableName": "Plain", "Key": {"id": {"S": "kept"}},
                                "ConditionExpression": "n = :two", "ExpressionAttributeValues": {":two": {"N": "2"}}}},
        ])

    assert {"Plain": _items(dynamodb, "Plain"), "Ranged": _items(dynamodb, "Ranged")} == before
    # the items were put back into the tables themselves: no whole-table copy was taken or restored
    assert dynamodb_backends["123456789012"]["us-east-1"].tables == table_objects
    assert all(dynamodb_backends["123456789012"]["us-east-1"].tables[name] is table
               for name, table in table_objects.items())


def test_a_transaction_that_succeeds_writes_every_item(dynamodb: Any) -> None:
    dynamodb.put_item(TableName="Plain", Item={"id": {"S": "updated"}, "n": {"N": "1"}})
    dynamodb.transact_write_items(TransactItems=[
        {"Put": {"TableName": "Ranged", "Item": {"id": {"S": "u"}, "seq": {"N": "1"}}}},
        {"Update": {"TableName": "Plain", "Key": {"id": {"S": "updated"}}, "UpdateExpression": "SET n = :n",
                    "ConditionExpression": "n = :one",
                    "ExpressionAttributeValues": {":n": {"N": "2"}, ":one": {"N": "1"}}}},
    ])
    assert _items(dynamodb, "Plain") == [{"id": {"S": "updated"}, "n": {"N": "2"}}]
    assert _items(dynamodb, "Ranged") == [{"id": {"S": "u"}, "seq": {"N": "1"}}]


def test_a_transaction_refused_as_invalid_also_leaves_the_items_as_they_were(dynamodb: Any) -> None:
    dynamodb.put_item(TableName="Plain", Item={"id": {"S": "a"}, "n": {"N": "1"}})
    with pytest.raises(dynamodb.exceptions.ClientError):  # two operations on one item
        dynamodb.transact_write_items(TransactItems=[
            {"Update": {"TableName": "Plain", "Key": {"id": {"S": "a"}}, "UpdateExpression": "SET n = :n",
                        "ExpressionAttributeValues": {":n": {"N": "2"}}}},
            {"Delete": {"TableName": "Plain", "Key": {"id": {"S": "a"}}}},
        ])
    assert _items(dynamodb, "Plain") == [{"id": {"S": "a"}, "n": {"N": "1"}}]


def test_the_call_log_times_each_callers_requests_inside_moto_apart_from_the_exchange() -> None:
    """The bench splits a webhook's latency into moto's time and the rest by these figures."""
    import time

    from botocore.config import Config

    server = AtomicMotoServer(port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()

        def client(service: str, caller: str) -> Any:
            return boto3.client(service, endpoint_url=f"http://{host}:{port}",  # type: ignore[call-overload]
                                region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing",
                                config=Config(user_agent_appid=caller))  # type: ignore[call-arg]  # stubs lag

        timed, other = client("dynamodb", "Timed"), client("dynamodb", "Other")
        timed.create_table(TableName="T", BillingMode="PAY_PER_REQUEST",
                           AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                           KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
        started = time.perf_counter()
        timed.put_item(TableName="T", Item={"id": {"S": "a"}})
        client_seconds = time.perf_counter() - started
        other.get_item(TableName="T", Key={"id": {"S": "a"}})
        client("events", "Timed").put_events(Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"}])

        seconds = server.calls.seconds_of("Timed")
        assert set(seconds) == {"CreateTable", "PutItem", "PutEvents"}  # a DynamoDB request and any other
        assert 0 < seconds["PutItem"] < client_seconds  # moto's part of the request, not the whole exchange
        assert seconds["PutEvents"] > 0
        assert set(server.calls.seconds_of("Other")) == {"GetItem"}
        assert server.calls.of("Timed") == {"CreateTable": 1, "PutItem": 1, "PutEvents": 1}
    finally:
        server.stop()
