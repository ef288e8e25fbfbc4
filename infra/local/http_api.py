"""The local HTTP API: every `HttpApi` route of `template.yaml` mapped to its function's handler,
with API Gateway's payload 2.0 event, JWT authorizer and CORS behaviour."""

from __future__ import annotations

import contextlib
import io
import json
import queue
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from infra.local.apigw import http_api_event
from infra.local.functions import Handler, LocalContext
from infra.local.template import Resolver, Route, Template
from infra.local.tokens import DEFAULT_TOKEN_SECRET, InvalidToken, issue_token, verify_token

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
CONSOLE_DIR = Path(__file__).resolve().parents[1] / "console"
CONSOLE_FILES = {"/": "index.html", "/index.html": "index.html", "/console.js": "console.js",
                 "/console.css": "console.css", "/config.js": "config.js"}
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8"}
LOCAL_TOKEN_PATH = "/_local/token"  # the local stack's sign-in for the console: not part of the API
_LAMBDA_INVOKE = re.compile(r"/2015-03-31/functions/(?P<name>[^/]+)/invocations")


_ONE_INVOCATION_AT_A_TIME = threading.Lock()
"""Lambda runs one invocation per process; here every function shares one process, and Powertools
keeps the current request on a class (`BaseRouter.current_event`) and log keys on a shared logger.
Concurrent invocations would read each other's event, so they take turns (see infra/bench/containers.py
for process containers when real parallelism is measured)."""


@dataclass(frozen=True)
class CorsConfig:
    """The HttpApi's `CorsConfiguration`, applied the way API Gateway's HTTP API applies it
    (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-cors.html): a preflight
    (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered by the API itself,
    204, with the configured headers when the origin is allowed and none otherwise, before any
    route, authorizer or function; an allowed origin's other requests get `Access-Control-Allow-Origin`
    (and the exposed headers) on the function's answer, whose own CORS headers are ignored."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False

    @classmethod
    def from_template(cls, template: Template, resolver: Resolver) -> CorsConfig | None:
        """The configuration of the template's HttpApi, resolved (None: CORS is not configured, or
        configured away by a condition, as with no `CorsAllowedOrigins`)."""
        for api in template.resources_of_type("AWS::Serverless::HttpApi").values():
            configured = resolver.resolve(api.get("Properties", {}).get("CorsConfiguration"))
            if configured is True:  # SAM's shorthand: any origin
                return cls(allow_origins=("*",))
            if isinstance(configured, dict):
                return cls(allow_origins=_strings(configured.get("AllowOrigins")),
                           allow_methods=_strings(configured.get("AllowMethods")),
                           allow_headers=_strings(configured.get("AllowHeaders")),
                           expose_headers=_strings(configured.get("ExposeHeaders")),
                           max_age=int(configured["MaxAge"]) if configured.get("MaxAge") is not None else None,
                           allow_credentials=bool(configured.get("AllowCredentials", False)))
        return None

    def allows(self, origin: str) -> bool:
        return "*" in self.allow_origins or origin in self.allow_origins

    def preflight_headers(self, origin: str) -> dict[str, str]:
        if not self.allows(origin):
            return {}
        headers = self._origin_headers(origin)
        if self.allow_methods:
            headers["access-control-allow-methods"] = ",".join(self.allow_methods)
        if self.allow_headers:
            headers["access-control-allow-headers"] = ",".join(self.allow_headers)
        if self.max_age is not None:
            headers["access-control-max-age"] = str(self.max_age)
        return headers

    def response_headers(self, origin: str) -> dict[str, str]:
        if not self.allows(origin):
            return {}
        headers = self._origin_headers(origin)
        if self.expose_headers:
            headers["access-control-expose-headers"] = ",".join(self.expose_headers)
        return headers

    def _origin_headers(self, origin: str) -> dict[str, str]:
        headers = {"access-control-allow-origin": "*" if "*" in self.allow_origins else origin}
        if self.allow_credentials:
            headers["access-control-allow-credentials"] = "true"
        return headers


def _strings(value: Any) -> tuple[str, ...]:
    """A list parameter as resolved locally (a list, or "" for AWS::NoValue) as a tuple of strings."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(str(item) for item in value or ())


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
        """The loaded function modules (for fault injection in tests); a container running in a
        process of its own has none here."""
        import sys

        return [sys.modules[handler.__module__] for handler in self._handlers
                if not getattr(handler, "isolated", False)]

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
                 port: int = 0, token_secret: str = DEFAULT_TOKEN_SECRET, cors: CorsConfig | None = None) -> None:
        self.routes = routes
        self.pools = pools
        self.token_secret = token_secret
        self.cors = cors  # set from the template once its parameters are known (`LocalStack.running`)
        # Lambda's Invoke API for the functions it runs (physical name → logical id), and how an
        # asynchronous invocation is queued (`EventDispatcher.invoke_async`): set by `LocalStack.running`.
        self.function_names: dict[str, str] = {}
        self.invoke_async: Callable[[str, dict[str, Any]], None] | None = None
        api = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # An answer is written as its head, then its body: with Nagle's algorithm the body waits
            # for the client's delayed ACK of the head on a kept-alive connection (~40 ms on Linux).
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                api.handle(self)

            do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET

            def __getattr__(self, name: str) -> Any:
                if name.startswith("do_"):  # any other method (PROPFIND, TRACE...): no route has it
                    return self.do_GET
                raise AttributeError(name)

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
        origin = request.headers.get("origin")
        preflight = request.command == "OPTIONS" and request.headers.get("access-control-request-method")
        if self.cors and origin and preflight:
            self._send_preflight(request, self.cors.preflight_headers(origin))
            return
        length = int(request.headers.get("content-length") or 0)
        if length > MAX_BODY_BYTES:
            self._send(request, 413, {"message": "Request Entity Too Large"})
            return
        body = request.rfile.read(length) if length else None
        lambda_invoke = _LAMBDA_INVOKE.fullmatch(parts.path) if request.command == "POST" else None
        if lambda_invoke:
            self._invoke_function(request, unquote(lambda_invoke["name"]), body)
            return
        if request.command == "GET" and parts.path in CONSOLE_FILES:  # the reference console, as static files
            file = CONSOLE_DIR / CONSOLE_FILES[parts.path]
            self._send_raw(request, 200, file.read_bytes(), {"content-type": CONTENT_TYPES[file.suffix]})
            return
        if request.command == "POST" and parts.path == LOCAL_TOKEN_PATH:
            self._issue_local_token(request, body)
            return
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
        self._send_lambda_response(request, response, cors=self.cors, origin=origin)

    def _invoke_function(self, request: BaseHTTPRequestHandler, name: str, body: bytes | None) -> None:
        """Lambda's `Invoke` (what boto3 sends to AWS_ENDPOINT_URL_LAMBDA): `RequestResponse` runs the
        function and answers its result (a raised error as `X-Amz-Function-Error`), `Event` queues it."""
        function_id = self.function_names.get(name.rsplit(":", 1)[-1])
        if function_id is None:
            self._send(request, 404, {"Type": "User", "message": f"Function not found: {name}"},
                       headers={"x-amzn-errortype": "ResourceNotFoundException"})
            return
        payload = json.loads(body or b"{}")
        if request.headers.get("x-amz-invocation-type") == "Event":
            assert self.invoke_async is not None
            self.invoke_async(function_id, payload)
            self._send_raw(request, 202, b"", {})
            return
        try:
            result = self.pools[function_id].invoke(payload)
        except Exception as exc:
            error = {"errorMessage": str(exc), "errorType": type(exc).__name__}
            self._send_raw(request, 200, json.dumps(error).encode(), {"x-amz-function-error": "Unhandled"})
            return
        self._send_raw(request, 200, json.dumps(result).encode(), {"x-amz-executed-version": "$LATEST"})

    def _issue_local_token(self, request: BaseHTTPRequestHandler, body: bytes | None) -> None:
        """A JWT for any user name, signed with the local stack's secret (`infra.local.tokens`)."""
        try:
            user = str(json.loads(body or b"{}")["user"]).strip()
        except (ValueError, KeyError, TypeError):
            user = ""
        if not user or len(user) > 128:
            self._send(request, 400, {"message": 'send {"user": "a name"}'})
            return
        self._send(request, 200, {"token": issue_token(user, secret=self.token_secret)})

    @staticmethod
    def _send_raw(request: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict[str, str]) -> None:
        request.send_response(status)
        if "content-type" not in headers:
            request.send_header("content-type", "application/json")
        for key, value in headers.items():
            request.send_header(key, value)
        request.send_header("content-length", str(len(data)))
        request.end_headers()
        if request.command != "HEAD":  # a HEAD answer says how long the body would be, and sends none
            request.wfile.write(data)

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, body: dict[str, Any],
              headers: dict[str, str] | None = None) -> None:
        LocalHttpApi._send_raw(request, status, json.dumps(body).encode(), headers or {})

    @staticmethod
    def _send_preflight(request: BaseHTTPRequestHandler, headers: dict[str, str]) -> None:
        request.send_response(204)
        for key, value in headers.items():
            request.send_header(key, value)
        request.send_header("content-length", "0")
        request.end_headers()

    @staticmethod
    def _send_lambda_response(request: BaseHTTPRequestHandler, response: Any, *, cors: CorsConfig | None = None,
                              origin: str | None = None) -> None:
        import base64

        if not isinstance(response, dict) or "statusCode" not in response:
            response = {"statusCode": 200, "body": json.dumps(response), "headers": {}}
        body = response.get("body") or ""
        data = base64.b64decode(body) if response.get("isBase64Encoded") else str(body).encode()
        request.send_response(int(response["statusCode"]))
        headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
        headers.setdefault("content-type", "application/json")
        if cors is not None:  # API Gateway ignores the integration's own CORS headers, then adds its own
            headers = {k: v for k, v in headers.items() if not k.startswith("access-control-")}
            headers.update(cors.response_headers(origin) if origin else {})
        for key, value in headers.items():
            request.send_header(key, str(value))
        for cookie in response.get("cookies") or []:
            request.send_header("set-cookie", cookie)
        request.send_header("content-length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
