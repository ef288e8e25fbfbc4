"""Standard Webhooks signature checks over the raw body (Replicate's webhooks).

`standardwebhooks.Webhook.verify` compares in constant time, accepts any of several space-separated
signatures (key rotation) and enforces a ±5 minute timestamp window. It raises a handful of
exception types on malformed headers, so everything is folded into one `InvalidWebhookSignature`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from standardwebhooks import Webhook

REQUIRED_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


class InvalidWebhookSignature(Exception):
    """The delivery is not provably from Replicate: answer 401 and write nothing."""


def raw_body_of(body: str | None, is_base64_encoded: bool) -> str:
    """The body exactly as sent: API Gateway base64-encodes some bodies."""
    if body is None:
        return ""
    if is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidWebhookSignature("body is not valid base64 UTF-8") from exc
    return body


def verify_webhook(raw_body: str, headers: Mapping[str, str], signing_secret: str) -> str:
    """Check the signature and timestamp; return the `webhook-id` of the verified delivery."""
    lowered = {key.lower(): value for key, value in headers.items()}
    missing = [name for name in REQUIRED_HEADERS if not lowered.get(name)]
    if missing:
        raise InvalidWebhookSignature(f"missing header(s): {', '.join(missing)}")
    try:
        Webhook(signing_secret).verify(raw_body, {name: lowered[name] for name in REQUIRED_HEADERS},
                                       json_parse=False)
    except Exception as exc:  # the library raises several types for malformed input
        raise InvalidWebhookSignature(str(exc) or type(exc).__name__) from exc
    return lowered["webhook-id"]


def sign_webhook(raw_body: str, signing_secret: str, *, webhook_id: str, timestamp: int) -> dict[str, str]:
    """Headers Replicate would send for this body: for tests, the emulator and `events/` re-signing."""
    from datetime import UTC, datetime

    signature = Webhook(signing_secret).sign(webhook_id, datetime.fromtimestamp(timestamp, tz=UTC), raw_body)
    return {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}
