"""The local HTTP API: every `HttpApi` route of `template.yaml` mapped to its function's handler,
with API Gateway's payload 2.0 event and JWT authorizer behaviour."""

from __future__ import annotations

import contextlib
import io
import json
import queue
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from infra.local.apigw import http_api_event
from infra.local.functions import Handler, LocalContext
from infra.local.template import Route
from infra.local.tokens import DEFAULT_TOKEN_SECRET, InvalidToken, verify_token

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit


_ONE_INVOCATION_AT_A_TIME = threading.Lock()
"""Lambda runs one invocation per process; here every function shares one process, and Powertools
keeps the current request on a class (`BaseRouter.current_event`) and log keys on a shared logger.
Concurrent invocations would read each other's event, so they take turns (see infra/bench/containers.py
for process containers when real parallelism is measured)."""


class FunctionPool:
    """A few warm "containers" of one function: Lambda runs one request per container at a time."""

    def __init__(self, name: str, load: Callable[[], Handler], size: int = 4, *, quiet: bool = False) -> None:
        self.name = name
        self._quiet = quiet
        self._idle: queue.Queue[Handler] = queue.Queue()
        self._handlers = [load() for _ in range(size)]
        for handler in self._handlers:
            self._idle.put(handler)

    def modules(self) -> list[Any]:
        """The loaded function modules (for fault injection in tests)."""
        import sys

        return [sys.modules[handler.__module__] for handler in self._handlers]

    def invoke(self, event: dict[str, Any]) -> Any:
        handler = self._idle.get()
        try:
            if getattr(handler, "isolated", False):  # a container in a process of its own runs in parallel
                return handler(event, LocalContext(self.name))
            with _ONE_INVOCATION_AT_A_TIME:
                if not self._quiet:
                    return handler(event, LocalContext(self.name))
                with contextlib.redirect_stdout(io.StringIO()):  # metrics (EMF) are printed, logs are not
                    return handler(event, LocalContext(self.name))
        finally:
            self._idle.put(handler)


class LocalHttpApi:
    def __init__(self, routes: list[Route], pools: dict[str, FunctionPool], *, host: str = "127.0.0.1",
                 port: int = 0, token_secret: str = DEFAULT_TOKEN_SECRET) -> None:
        self.routes = routes
        self.pools = pools
        self.token_secret = token_secret
        api = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                api.handle(self)

            do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), _Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), name="local-http-api",
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LocalHttpApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits forever on a server that never started
            self.server.shutdown()
        self.server.server_close()

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method != method:
                continue
            found = route.pattern().match(path)
            if found:
                return route, found.groupdict()
        return None

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        length = int(request.headers.get("content-length") or 0)
        if length > MAX_BODY_BYTES:
            self._send(request, 413, {"message": "Request Entity Too Large"})
            return
        body = request.rfile.read(length) if length else None
        matched = self.match(request.command, parts.path)
        if matched is None:
            self._send(request, 404, {"message": "Not Found"})
            return
        route, path_parameters = matched
        claims = None
        if route.authorized:
            try:
                claims = verify_token(request.headers.get("authorization"), secret=self.token_secret)
            except InvalidToken:
                self._send(request, 401, {"message": "Unauthorized"})
                return
        event = http_api_event(request.command, parts.path, route_key=f"{route.method} {route.path}", body=body,
                               headers=dict(request.headers.items()), query=parts.query,
                               path_parameters=path_parameters or None, claims=claims)
        try:
            response = self.pools[route.function_id].invoke(event)
        except Exception as exc:  # an unhandled error in a function is API Gateway's 500
            self._send(request, 500, {"message": "Internal Server Error", "error": type(exc).__name__})
            return
        self._send_lambda_response(request, response)

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("content-type", "application/json")
        request.send_header("content-length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    @staticmethod
    def _send_lambda_response(request: BaseHTTPRequestHandler, response: Any) -> None:
        import base64

        if not isinstance(response, dict) or "statusCode" not in response:
            response = {"statusCode": 200, "body": json.dumps(response), "headers": {}}
        body = response.get("body") or ""
        data = base64.b64decode(body) if response.get("isBase64Encoded") else str(body).encode()
        request.send_response(int(response["statusCode"]))
        headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
        headers.setdefault("content-type", "application/json")
        for key, value in headers.items():
            request.send_header(key, str(value))
        for cookie in response.get("cookies") or []:
            request.send_header("set-cookie", cookie)
        request.send_header("content-length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
