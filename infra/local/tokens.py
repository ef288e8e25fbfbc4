"""Bearer tokens for the local API: HS256 JWTs that the local API checks before it puts their
claims where API Gateway's JWT authorizer would (`requestContext.authorizer.jwt.claims`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

LOCAL_ISSUER = "https://lorapin.local/issuer"
LOCAL_AUDIENCE = "lorapin-local"
DEFAULT_TOKEN_SECRET = "lorapin-local-token-secret"  # local only: the deployed API uses the IdP's keys


class InvalidToken(Exception):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_token(user_id: str, *, secret: str = DEFAULT_TOKEN_SECRET, ttl_seconds: int = 12 * 3600) -> str:
    now = int(time.time())
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps({"sub": user_id, "iss": LOCAL_ISSUER, "aud": LOCAL_AUDIENCE, "iat": now,
                               "exp": now + ttl_seconds}).encode())
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def verify_token(authorization: str | None, *, secret: str = DEFAULT_TOKEN_SECRET) -> dict[str, Any]:
    """Claims of a valid `Bearer` token, or `InvalidToken` (the local API then answers 401)."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise InvalidToken("missing bearer token")
    token = authorization.split(" ", 1)[1].strip()
    try:
        header, payload, signature = token.split(".")
        expected = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(signature)):
            raise InvalidToken("bad signature")
        claims: dict[str, Any] = json.loads(_unb64(payload))
    except (ValueError, json.JSONDecodeError) as exc:
        raise InvalidToken("malformed token") from exc
    if claims.get("iss") != LOCAL_ISSUER or claims.get("aud") != LOCAL_AUDIENCE:
        raise InvalidToken("wrong issuer or audience")
    if int(claims.get("exp", 0)) < time.time():
        raise InvalidToken("expired")
    if not claims.get("sub"):
        raise InvalidToken("no subject")
    return claims
