"""Webhook deliveries as Replicate sends them: Standard Webhooks headers over the raw body, re-signed
on every attempt, retried on non-2xx. Forged variants are built here too."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests

from infra.bench.seeding import SeededTraining
from lorapin.http.webhook_signature import sign_webhook

FOREIGN_SECRET = "whsec_" + base64.b64encode(b"not-the-secret-replicate-uses!!").decode()
RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)  # Replicate retries non-2xx deliveries with backoff
FORGERIES = ("foreign_secret", "tampered_body", "stale_timestamp", "unsigned")


@dataclass
class Delivery:
    """One delivery of a webhook (and its retries); `kind` is primary, duplicate, late or forged:<how>."""

    kind: str
    url: str
    body: str  # the body as sent
    webhook_id: str
    training: SeededTraining | None = None
    secret: str | None = None  # None: no signature headers at all
    signed_body: str | None = None  # a body other than `body` was signed (tampering)
    age_seconds: int = 0  # how old the signature's timestamp is
    statuses: list[int | None] = field(default_factory=list)
    answer: dict[str, Any] | None = None

    @property
    def forged(self) -> bool:
        return self.kind.startswith("forged")

    @property
    def final_status(self) -> int | None:
        return self.statuses[-1] if self.statuses else None

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", "user-agent": "Replicate-Webhook/bench"}
        if self.secret is not None:
            headers |= sign_webhook(self.signed_body or self.body, self.secret, webhook_id=self.webhook_id,
                                    timestamp=int(time.time()) - self.age_seconds)
        return headers


def new_webhook_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def genuine(kind: str, training: SeededTraining, secret: str, webhook_id: str | None = None) -> Delivery:
    return Delivery(kind, training.webhook_url, training.body, webhook_id or new_webhook_id(), training, secret)


def forged(how: str, training: SeededTraining, secret: str) -> Delivery:
    """A delivery that must be answered 401 and change nothing. Each claims that `training`
    succeeded with a version that was never made, so an accepted forgery shows as a wrong version."""
    replicate_object = json.loads(training.body)
    replicate_object.update(status="succeeded", error=None,
                            output={"version": f"{training.destination}:{uuid.uuid4().hex * 2}"})
    body = json.dumps(replicate_object)
    delivery = Delivery(f"forged:{how}", training.webhook_url, body, new_webhook_id(), training, secret)
    if how == "foreign_secret":
        delivery.secret = FOREIGN_SECRET
    elif how == "tampered_body":
        delivery.signed_body = training.body  # a genuine signature, over what Replicate really sent
    elif how == "stale_timestamp":
        delivery.age_seconds = 3600  # outside the ±5 minute window
    elif how == "unsigned":
        delivery.secret = None
    else:
        raise ValueError(f"unknown forgery {how!r}")
    return delivery


def send(session: requests.Session, delivery: Delivery, *, retry: bool = True) -> float:
    """POST the delivery (again, on non-2xx, like Replicate; never for forgeries); seconds it took."""
    started = time.perf_counter()
    delays = (0.0, *RETRY_DELAYS) if retry and not delivery.forged else (0.0,)
    for delay in delays:
        time.sleep(delay)
        try:
            response = session.post(delivery.url, data=delivery.body.encode(), headers=delivery.headers(),
                                    timeout=30)
        except requests.RequestException:
            delivery.statuses.append(None)
            continue
        delivery.statuses.append(response.status_code)
        try:
            delivery.answer = response.json()
        except ValueError:
            delivery.answer = None
        if 200 <= response.status_code < 300:
            break
    return time.perf_counter() - started
