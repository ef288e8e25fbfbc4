"""Replicate's credentials as lorapin stores them: one JSON secret holding the API token and the
webhook signing secret. Parsing is forgiving where people slip (a pasted newline, a stray space)
and strict where a value cannot work (a token that is not Replicate's, a key that is not base64)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from lorapin.domain.errors import ReplicateSecretInvalid

TOKEN_PATTERN = re.compile(r"r8_[A-Za-z0-9]+")
SIGNING_PREFIX = "whsec_"


@dataclass(frozen=True, slots=True)
class ReplicateSecrets:
    api_token: str
    webhook_signing_secret: str

    def __repr__(self) -> str:  # never print a secret, even by accident
        return "ReplicateSecrets(api_token=***, webhook_signing_secret=***)"


def parse_replicate_secret(raw: str) -> ReplicateSecrets:
    """`{"api_token": "r8_...", "webhook_signing_secret": "whsec_..."}`, each value stripped.

    Raises `ReplicateSecretInvalid` naming every problem found (never a value)."""
    try:
        document: Any = json.loads(raw)
    except (TypeError, ValueError):
        document = None
    if not isinstance(document, dict):
        raise ReplicateSecretInvalid(["the secret is not a JSON object"])
    token = _stripped(document.get("api_token"))
    signing = _stripped(document.get("webhook_signing_secret"))
    problems = []
    if not token:
        problems.append("api_token is missing")
    elif not TOKEN_PATTERN.fullmatch(token):
        problems.append("api_token does not look like a Replicate token (r8_...)")
    if not signing:
        problems.append("webhook_signing_secret is missing")
    elif not _decodes(signing.removeprefix(SIGNING_PREFIX)):
        problems.append(f"webhook_signing_secret is not base64 after '{SIGNING_PREFIX}'")
    if problems:
        raise ReplicateSecretInvalid(problems)
    return ReplicateSecrets(api_token=token, webhook_signing_secret=signing)


def _stripped(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _decodes(key: str) -> bool:
    """Standard base64 of at least one byte (padding may be left out, as Standard Webhooks allows)."""
    try:
        return bool(key) and bool(base64.b64decode(key + "=" * (-len(key) % 4), validate=True))
    except (binascii.Error, ValueError):
        return False
