"""Re-sign a webhook sample event with a signing secret and the current time.

A signed delivery goes stale after 5 minutes, and verification is never relaxed by configuration,
so `sam local invoke` (and the tests) use a freshly signed copy:

    python -m infra.resign_event events/training_succeeded.json --secret whsec_... > /tmp/event.json
    sam local invoke ReplicateWebhookFunction -e /tmp/event.json
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

from lorapin.http.webhook_signature import sign_webhook


def resign(event: dict[str, Any], secret: str, *, now: int | None = None) -> dict[str, Any]:
    """A copy of an API Gateway webhook event whose `webhook-*` headers sign its body now."""
    body = event.get("body") or ""
    raw = base64.b64decode(body).decode() if event.get("isBase64Encoded") else body
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    webhook_id = headers.get("webhook-id") or f"msg_{time.time_ns()}"
    headers.update(sign_webhook(raw, secret, webhook_id=webhook_id, timestamp=int(time.time()) if now is None else now))
    return {**event, "headers": headers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("event", type=Path, help="an API Gateway HTTP API event of a webhook delivery")
    parser.add_argument("--secret", required=True, help="the webhook signing secret (whsec_...)")
    parser.add_argument("--webhook-id", help="use this webhook-id instead of the event's")
    args = parser.parse_args(argv)
    event = json.loads(args.event.read_text(encoding="utf-8"))
    if args.webhook_id:
        event.setdefault("headers", {})["webhook-id"] = args.webhook_id
    json.dump(resign(event, args.secret), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
