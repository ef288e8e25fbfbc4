"""Domain exceptions. Each carries the machine-readable code and HTTP status the API answers with.

Handlers map them to responses in one place (`lorapin.http`), so every error has the same shape:
`{"error": {"code": "UPPER_SNAKE", "message": "...", "details": [...]}}`.
"""

from __future__ import annotations

from typing import Any


class LorapinError(Exception):
    """Base of every error a caller can see. Subclasses fix the status and the default code."""

    status = 400
    code = "BAD_REQUEST"

    def __init__(self, message: str, *, code: str | None = None, details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or []

    def to_body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(LorapinError):
    status = 400
    code = "BAD_REQUEST"


class Unauthorized(LorapinError):
    status = 401
    code = "UNAUTHORIZED"


class Forbidden(LorapinError):
    status = 403
    code = "FORBIDDEN"


class NotFound(LorapinError):
    status = 404
    code = "NOT_FOUND"


class Conflict(LorapinError):
    status = 409
    code = "CONFLICT"


class Unprocessable(LorapinError):
    status = 422
    code = "UNPROCESSABLE"


class UpstreamUnavailable(LorapinError):
    """Replicate (or another dependency) failed in a way the caller can retry later."""

    status = 503
    code = "UPSTREAM_UNAVAILABLE"

    def __init__(self, message: str, *, retry_after_seconds: int = 5, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after_seconds = retry_after_seconds


class InvalidVersionRef(ValueError):
    """A string that is not a usable Replicate version reference (R2)."""
