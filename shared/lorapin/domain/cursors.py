"""Opaque page cursors for the list endpoints (REQUIREMENTS §4): DynamoDB's LastEvaluatedKey,
serialised and base64url-encoded, accepted back only if it is well formed and names the caller.

Every list is a query on the caller's own partition, so a cursor can only ever continue the
caller's own list; a cursor naming another user (or not one we made) is a 400, never a read.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from lorapin.domain.errors import InvalidCursor

DEFAULT_PAGE = 20
MAX_PAGE = 100
_ATTRIBUTE_TYPES = frozenset({"S", "N"})  # our keys are strings and numbers
_MAX_CURSOR = 2048


def encode_cursor(last_key: dict[str, Any] | None) -> str | None:
    if not last_key:
        return None
    raw = json.dumps(last_key, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, *, user_id: str, key_names: frozenset[str]) -> dict[str, Any] | None:
    """The key to continue from, or None for the first page. `key_names`: the attributes the
    list's index keys on (DynamoDB refuses any other shape)."""
    if cursor is None:
        return None
    try:
        if len(cursor) > _MAX_CURSOR:
            raise ValueError("too long")
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor() from exc
    if not isinstance(key, dict) or set(key) != key_names or not all(_is_key_value(v) for v in key.values()):
        raise InvalidCursor()
    if key.get("user_id") != {"S": user_id}:
        raise InvalidCursor()
    return key


def _is_key_value(value: Any) -> bool:
    return (isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _ATTRIBUTE_TYPES
            and isinstance(next(iter(value.values())), str))
