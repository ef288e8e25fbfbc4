"""Writes and reads per partition key value, as DynamoDB would count them (`make bench`'s capacity).

The atomic moto server runs every DynamoDB request under one lock in this process; for a write,
this looks at the item before and after it in moto's own backend and counts, for the table and each
of its global secondary indexes, which partition key value took a write and how many write units:
the base table on every attempt (a failed condition is billed too), an index when the item is in it
before or after and it changed (a key that moved writes both partitions). Queries and gets count
reads by the partition they name. Times are on the stack's clock (accelerated in `make bench`).
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from lorapin.domain.clock import utc_now

WRITE_OPERATIONS = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem")
READ_OPERATIONS = ("GetItem", "Query", "TransactGetItems", "BatchGetItem")
_EQUALS = re.compile(r"(#\w+|\w+)\s*=\s*(:\w+)")


@dataclass
class PartitionLog:
    """Counts per (table, index or "", partition key value): writes, write units and reads."""

    writes: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    write_units: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    reads: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    started_at: float = field(default_factory=lambda: utc_now().timestamp())
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- the server's hooks ---------------------------------------------------------------------
    def before(self, operation: str, request: dict[str, Any], backend: Any) -> list[tuple[Any, dict[str, Any], Any]]:
        """The items a write is about to touch, as they are now."""
        if operation not in WRITE_OPERATIONS:
            return []
        touched = []
        for table_name, key, transactional in _write_targets(operation, request):
            table = _table(backend, table_name)
            if table is not None:
                touched.append((table, key, (_item(table, key), transactional)))
        return touched

    def after(self, operation: str, request: dict[str, Any], touched: list[tuple[Any, dict[str, Any], Any]]) -> None:
        with self._lock:
            for table, key, (old, transactional) in touched:
                self._count_write(table, key, old, _item(table, key), transactional)
            if operation in READ_OPERATIONS:
                for table_name, index, value in _read_targets(operation, request):
                    self.reads[(table_name, index, value)] += 1

    def _count_write(self, table: Any, key: dict[str, Any], old: dict[str, Any] | None,
                     new: dict[str, Any] | None, transactional: bool) -> None:
        factor = 2 if transactional else 1  # a transactional write costs two units per 1 KB
        units = factor * max(1, math.ceil(max(_size(old), _size(new)) / 1024))
        base = (table.name, "", _text(key.get(table.hash_key_attr)))
        self.writes[base] += 1
        self.write_units[base] += units
        if old == new:
            return  # a condition failed, or nothing changed: no index is written
        for index in getattr(table, "global_indexes", []) or []:
            hash_attr = next(k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH")
            keys = [k["AttributeName"] for k in index.schema]
            partitions = {_text(item[hash_attr]) for item in (old, new)
                          if item is not None and all(k in item for k in keys)}
            for value in partitions:
                self.writes[(table.name, index.name, value)] += 1
                self.write_units[(table.name, index.name, value)] += units

    # --- what it found ---------------------------------------------------------------------------
    def to_json(self, *, finished_at: float | None = None) -> dict[str, Any]:
        seconds = (finished_at or utc_now().timestamp()) - self.started_at

        def rows(counter: Counter[tuple[str, str, str]]) -> list[list[Any]]:
            return [[table, index, value, n] for (table, index, value), n in counter.most_common()]

        with self._lock:
            return {"seconds": seconds, "writes": rows(self.writes), "write_units": rows(self.write_units),
                    "reads": rows(self.reads)}


def _write_targets(operation: str, request: dict[str, Any]) -> list[tuple[str, dict[str, Any], bool]]:
    if operation in ("PutItem",):
        return [(request["TableName"], request["Item"], False)]
    if operation in ("UpdateItem", "DeleteItem"):
        return [(request["TableName"], request["Key"], False)]
    if operation == "TransactWriteItems":
        targets = []
        for entry in request.get("TransactItems", []):
            for kind, body in entry.items():
                if kind == "ConditionCheck":
                    continue
                targets.append((body["TableName"], body.get("Item") or body.get("Key") or {}, True))
        return targets
    if operation == "BatchWriteItem":
        return [(table, (r.get("PutRequest") or {}).get("Item") or (r.get("DeleteRequest") or {}).get("Key", {}), False)
                for table, requests in request.get("RequestItems", {}).items() for r in requests]
    return []


def _read_targets(operation: str, request: dict[str, Any]) -> list[tuple[str, str, str]]:
    if operation == "GetItem":
        return [(request["TableName"], "", _text(next(iter(request["Key"].values()))))]
    if operation == "Query":  # the partition is the one equality of its key condition
        values = request.get("ExpressionAttributeValues", {})
        found = _EQUALS.search(request.get("KeyConditionExpression", ""))
        if found:
            return [(request["TableName"], request.get("IndexName", ""), _text(values.get(found.group(2))))]
    return []


def _table(backend: Any, name: str) -> Any:
    try:
        return backend.get_table(name)
    except Exception:
        return None


def _item(table: Any, key: dict[str, Any]) -> dict[str, Any] | None:
    from moto.dynamodb.models.dynamo_type import DynamoType

    hash_key = DynamoType(key[table.hash_key_attr]) if table.hash_key_attr in key else None
    range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr and table.range_key_attr in key else None
    if hash_key is None:
        return None
    try:
        item = table.get_item(hash_key, range_key)
    except Exception:
        return None
    return None if item is None else dict(item.to_json()["Attributes"])


def _size(item: dict[str, Any] | None) -> int:
    return len(json.dumps(item)) if item else 0


def _text(value: Any) -> str:
    """A partition key value as text: `{"S": "t7"}` → `t7`."""
    if isinstance(value, dict) and len(value) == 1:
        return str(next(iter(value.values())))
    return str(value)
