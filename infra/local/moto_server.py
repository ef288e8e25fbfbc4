"""moto's server with DynamoDB requests handled one at a time, and a log of who called what.

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


def serialise_dynamodb(app: WsgiApp, log: CallLog) -> WsgiApp:
    """A WSGI wrapper that runs DynamoDB requests (X-Amz-Target DynamoDB_*) under one lock, to the end."""
    lock = threading.Lock()

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        log.record(environ)
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_"):
            return app(environ, start_response)
        with lock:
            return list(app(environ, start_response))  # the whole body is produced inside the lock

    return wrapped


class AtomicMotoServer(ThreadedMotoServer):
    """`ThreadedMotoServer` whose DynamoDB behaves atomically under concurrent requests."""

    def __init__(self, ip_address: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(ip_address=ip_address, port=port, verbose=False)
        self.calls = CallLog()

    def _server_entry(self) -> None:
        app = serialise_dynamodb(DomainDispatcherApplication(create_backend_app), self.calls)
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()
