"""API Gateway HTTP API payload 2.0 events, built the way API Gateway builds them: lower-cased
headers, `rawPath`, `pathParameters`, base64 for binary bodies, JWT claims where the authorizer
puts them. Used by the local HTTP server, `invoke`, the tests and `events/`."""

from __future__ import annotations

import base64
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl

TEXT_TYPES = ("application/json", "text/", "application/x-www-form-urlencoded")


def http_api_event(method: str, path: str, *, route_key: str | None = None, body: bytes | str | None = None,
                   headers: dict[str, str] | None = None, query: str = "",
                   path_parameters: dict[str, str] | None = None,
                   claims: dict[str, Any] | None = None, stage: str = "$default") -> dict[str, Any]:
    lowered = {key.lower(): value for key, value in (headers or {}).items()}
    raw = body.encode() if isinstance(body, str) else body
    content_type = lowered.get("content-type", "")
    is_text = raw is None or any(content_type.startswith(t) for t in TEXT_TYPES)
    encoded_body: str | None
    if raw is None:
        encoded_body = None
    elif is_text:
        try:
            encoded_body = raw.decode("utf-8")
        except UnicodeDecodeError:
            encoded_body, is_text = base64.b64encode(raw).decode(), False
    else:
        encoded_body = base64.b64encode(raw).decode()
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key or f"{method.upper()} {path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": lowered,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": lowered.get("host", "localhost"),
            "domainPrefix": "local",
            "http": {"method": method.upper(), "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": lowered.get("user-agent", "")},
            "requestId": secrets.token_hex(8),
            "routeKey": route_key or f"{method.upper()} {path}",
            "stage": stage,
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": not is_text,
    }
    if query:
        event["queryStringParameters"] = dict(parse_qsl(query, keep_blank_values=True))
    if path_parameters:
        event["pathParameters"] = path_parameters
    if encoded_body is not None:
        event["body"] = encoded_body
    if claims is not None:
        event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    return event
