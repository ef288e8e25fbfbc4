"""Time and identifiers, in one place so that records sort and compare the same everywhere."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(tz=UTC)


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a `Z`: sorts lexicographically in time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def now_iso() -> str:
    return iso(utc_now())


def new_id(prefix: str) -> str:
    """`trn_…`, `gen_…`: a time-ordered, unguessable id."""
    return f"{prefix}_{utc_now().strftime('%Y%m%d%H%M%S')}{secrets.token_hex(8)}"


def is_our_id(value: str, prefix: str) -> bool:
    """Whether `value` has the shape `new_id(prefix)` gives."""
    return re.fullmatch(rf"{re.escape(prefix)}_\d{{14}}[0-9a-f]{{16}}", value) is not None
