"""moto's server with DynamoDB requests handled one at a time, S3's checks of form uploads, and a
log of who called what.

moto serves requests on concurrent threads, and its DynamoDB backend checks a condition and then
writes in separate Python steps; a `TransactWriteItems` that fails restores deep copies of whole
tables taken when it began, erasing writes other requests committed meanwhile. Real DynamoDB makes
each conditional write and each transaction atomic. Serialising DynamoDB requests restores that, so
the local stack, the tests and the bench exercise lorapin's guards rather than moto's races (other
services run as usual: SQS long polls must not hold a lock).
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from infra.local.partition_log import PartitionLog
from infra.local.s3_post_policy import enforce_post_policy

LOCAL_SECRET_KEY = "testing"  # what every local client signs with (infra.local.aws_stack.LOCAL_CREDENTIALS)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
APP_ID = re.compile(r"\bapp/(\S+)")  # botocore puts AWS_SDK_UA_APP_ID in the user agent


class CallLog:
    """AWS requests by (caller's SDK app id, operation)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()

    def record(self, environ: dict[str, Any]) -> None:
        found = APP_ID.search(str(environ.get("HTTP_USER_AGENT", "")))
        operation = str(environ.get("HTTP_X_AMZ_TARGET") or f"{environ.get('REQUEST_METHOD')} (REST)")
        with self._lock:
            self.counts[(found.group(1) if found else "-", operation.rsplit(".", 1)[-1])] += 1

    def of(self, caller: str) -> Counter[str]:
        """Operations so far by one caller."""
        with self._lock:
            return Counter({op: n for (who, op), n in self.counts.items() if who == caller})


def serialise_dynamodb(app: WsgiApp, log: CallLog, partitions: PartitionLog | None = None) -> WsgiApp:
    """A WSGI wrapper that runs DynamoDB requests (X-Amz-Target DynamoDB_*) under one lock, to the end;
    with `partitions`, it also counts what each request writes and reads, per partition key value."""
    lock = threading.Lock()

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        log.record(environ)
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if not target.startswith("DynamoDB_"):
            return app(environ, start_response)
        with lock:
            if partitions is None:
                return list(app(environ, start_response))  # the whole body is produced inside the lock
            operation, request, backend = _parse(environ, target)
            touched = partitions.before(operation, request, backend)
            body = list(app(environ, start_response))
            partitions.after(operation, request, touched)
            return body

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


class AtomicMotoServer(ThreadedMotoServer):
    """`ThreadedMotoServer` whose DynamoDB behaves atomically under concurrent requests."""

    def __init__(self, ip_address: str = "127.0.0.1", port: int = 0, *, count_partitions: bool = False) -> None:
        super().__init__(ip_address=ip_address, port=port, verbose=False)
        self.calls = CallLog()
        self.partitions = PartitionLog() if count_partitions else None

    def _server_entry(self) -> None:
        app = enforce_post_policy(
            serialise_dynamodb(DomainDispatcherApplication(create_backend_app), self.calls, self.partitions),
            LOCAL_SECRET_KEY)
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()
