"""moto's server with DynamoDB requests handled one at a time, S3's checks of form uploads, and a
log of who called what.

moto serves requests on concurrent threads, and its DynamoDB backend checks a condition and then
writes in separate Python steps; a `TransactWriteItems` that fails restores deep copies of whole
tables taken when it began, erasing writes other requests committed meanwhile. Real DynamoDB makes
each conditional write and each transaction atomic. Serialising DynamoDB requests restores that, so
the local stack, the tests and the bench exercise lorapin's guards rather than moto's races (other
services run as usual: SQS long polls must not hold a lock). With requests serialised, a canceled
transaction only has to put back the items it touched, which costs what the transaction costs; moto's
copy of each whole table grew with the table (85 ms at 3,000 items), not as DynamoDB does.
"""

from __future__ import annotations

import copy
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from infra.local.aws_stack import LOCAL_CREDENTIALS
from infra.local.partition_log import PartitionLog
from infra.local.s3_post_policy import enforce_post_policy

LOCAL_SECRET_KEY = LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]  # what every local client signs with

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
APP_ID = re.compile(r"\bapp/(\S+)")  # botocore puts AWS_SDK_UA_APP_ID in the user agent


class CallLog:
    """AWS requests by (caller's SDK app id, operation), and the time moto took to answer them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()
        self._seconds: defaultdict[tuple[str, str], float] = defaultdict(float)

    @staticmethod
    def key(environ: dict[str, Any]) -> tuple[str, str]:
        found = APP_ID.search(str(environ.get("HTTP_USER_AGENT", "")))
        operation = str(environ.get("HTTP_X_AMZ_TARGET") or f"{environ.get('REQUEST_METHOD')} (REST)")
        return found.group(1) if found else "-", operation.rsplit(".", 1)[-1]

    def record(self, environ: dict[str, Any]) -> tuple[str, str]:
        key = self.key(environ)
        with self._lock:
            self.counts[key] += 1
        return key

    def answered(self, key: tuple[str, str], seconds: float) -> None:
        """moto took `seconds` to answer a request `record` counted under `key`."""
        with self._lock:
            self._seconds[key] += seconds

    def of(self, caller: str) -> Counter[str]:
        """Operations so far by one caller."""
        with self._lock:
            return Counter({op: n for (who, op), n in self.counts.items() if who == caller})

    def seconds_of(self, caller: str) -> dict[str, float]:
        """Seconds moto has spent answering one caller's requests so far, by operation: from the
        request's arrival in its WSGI application to the answer made (a DynamoDB request's wait for
        the lock not included), so not the HTTP exchange, nor the caller's own work. Wall time, on a
        thread that shares the interpreter with the server's others (and, in the bench, with the
        local stack's): it includes waits for the GIL."""
        with self._lock:
            return {op: seconds for (who, op), seconds in self._seconds.items() if who == caller}


def serialise_dynamodb(app: WsgiApp, log: CallLog, partitions: PartitionLog | None = None) -> WsgiApp:
    """A WSGI wrapper that runs DynamoDB requests (X-Amz-Target DynamoDB_*) under one lock, to the end;
    with `partitions`, it also counts what each request writes and reads, per partition key value.
    Every request is counted and timed in `log`."""
    lock = threading.Lock()

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        key = log.record(environ)
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        started = time.perf_counter()
        try:
            if not target.startswith("DynamoDB_"):
                return app(environ, start_response)  # (moto makes the whole response before it returns)
            with lock:
                started = time.perf_counter()  # (the wait for the lock is not moto's handling)
                if partitions is None:
                    return list(app(environ, start_response))  # the whole body is produced inside the lock
                operation, request, backend = _parse(environ, target)
                touched = partitions.before(operation, request, backend)
                body = list(app(environ, start_response))
                partitions.after(operation, request, touched)
                return body
        finally:
            log.answered(key, time.perf_counter() - started)

    return wrapped


def _parse(environ: dict[str, Any], target: str) -> tuple[str, dict[str, Any], Any]:
    """The operation, its request (the body is read and put back for moto) and moto's backend."""
    import io
    import json

    from moto.dynamodb.models import dynamodb_backends

    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(raw)
    try:
        request = json.loads(raw or b"{}")
    except ValueError:
        request = {}
    region = str(environ.get("HTTP_AUTHORIZATION", "")).split("/")[2:3] or ["us-east-1"]
    return target.split(".", 1)[-1], request, dynamodb_backends["123456789012"][region[0]]


def _deepcopy_but_tables(value: Any, memo: dict[int, Any] | None = None) -> Any:
    from moto.dynamodb.models.table import Table

    return value if isinstance(value, Table) else copy.deepcopy(value, memo)


def _transact_write_items_by_item(moto_transact: Callable[[Any, list[dict[str, Any]]], None], backend: Any,
                                  transact_items: list[dict[str, Any]]) -> None:
    """moto's `transact_write_items`, its rollback made of the touched items' copies (taken here)
    instead of whole tables' (which moto's code, seeing `copy` without table copies, keeps as is)."""
    touched = []
    for entry in transact_items:
        _, operation = next(iter(entry.items()))
        table = backend.tables.get(operation.get("TableName"))
        if table is None:
            continue
        key = operation.get("Key") or {name: value for name, value in (operation.get("Item") or {}).items()
                                       if name in (table.hash_key_attr, table.range_key_attr)}
        try:
            hash_value, range_value = backend.get_keys_value(table, key)
            touched.append((table, hash_value, range_value, copy.deepcopy(table.get_item(hash_value, range_value))))
        except Exception:
            continue
    try:
        moto_transact(backend, transact_items)
    except Exception:
        for table, hash_value, range_value, item in reversed(touched):
            items = table.items[hash_value] if range_value is not None else table.items
            slot = range_value if range_value is not None else hash_value
            if item is None:
                items.pop(slot, None)
            else:
                items[slot] = item
        raise


def _restore_touched_items_only() -> None:
    """Installed with the server: canceled transactions restore the items they touched."""
    from moto.dynamodb import models

    moto_transact = models.DynamoDBBackend.transact_write_items
    if getattr(moto_transact, "restores_touched_items", False):
        return

    def transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
        _transact_write_items_by_item(moto_transact, backend, transact_items)

    transact_write_items.restores_touched_items = True  # type: ignore[attr-defined]
    setattr(models, "copy", SimpleNamespace(deepcopy=_deepcopy_but_tables))  # noqa: B010 - moto's module global
    setattr(models.DynamoDBBackend, "transact_write_items", transact_write_items)  # noqa: B010


class AtomicMotoServer(ThreadedMotoServer):
    """`ThreadedMotoServer` whose DynamoDB behaves atomically under concurrent requests."""

    def __init__(self, ip_address: str = "127.0.0.1", port: int = 0, *, count_partitions: bool = False) -> None:
        super().__init__(ip_address=ip_address, port=port, verbose=False)
        _restore_touched_items_only()
        self.calls = CallLog()
        self.partitions = PartitionLog() if count_partitions else None

    def _server_entry(self) -> None:
        app = enforce_post_policy(
            serialise_dynamodb(DomainDispatcherApplication(create_backend_app), self.calls, self.partitions),
            LOCAL_SECRET_KEY)
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()
