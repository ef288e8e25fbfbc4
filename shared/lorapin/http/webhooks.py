"""The one path every Replicate webhook takes before its handler: verify → parse → hint.

1. verify: the Standard Webhooks signature over the raw body, within ±5 minutes (401 otherwise,
   and nothing is read or written: I6);
2. parse: the body must be a Replicate object of the route's kind (400 `MALFORMED_BODY`);
3. hint: our own ids from the webhook URL's query string, only if they look like ours, and what a
   training's URL says to expect (the query string is not signed: lookup hints and conditions of
   the write, nothing more).

What comes out is a `Delivery`: the verified body, parsed once. Handling is idempotent by
decision (I4): a repeated delivery, or the same outcome again, is decided `duplicate` against the
stored state, and every write is guarded, so no per-delivery record is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

from lorapin.domain.clock import is_our_id
from lorapin.domain.completion import ExpectedTraining
from lorapin.domain.errors import InvalidSignature, MalformedBody
from lorapin.domain.replicate_objects import (
    InvalidReplicateObject,
    ReplicateObject,
    ReplicatePrediction,
    ReplicateTraining,
)
from lorapin.http.webhook_signature import InvalidWebhookSignature, raw_body_of, verify_webhook
from lorapin.observability import count, logger


@dataclass(frozen=True)
class WebhookRoute:
    kind: str  # "training" | "prediction"
    body_model: type[ReplicateObject]
    hint_parameter: str  # the query parameter our webhook URL carries
    hint_prefix: str  # the prefix of our ids of that kind (`lorapin.domain.clock.new_id`)


TRAINING = WebhookRoute("training", ReplicateTraining, "training_id", "trn")
PREDICTION = WebhookRoute("prediction", ReplicatePrediction, "generation_id", "gen")
USER_PARAMETER = "user_id"  # a training webhook's URL also names the user (one read for training and model)
MAX_USER_HINT = 256


@dataclass(frozen=True)
class Delivery:
    """A verified delivery, its body parsed once."""

    webhook_id: str
    hint: str | None
    body: ReplicateObject
    user_hint: str | None = None
    expected: ExpectedTraining | None = None  # a training webhook's URL, when it says all of it


def receive(route: WebhookRoute, *, body: str | None, is_base64_encoded: bool, headers: dict[str, str],
            query: dict[str, str] | None, signing_secret: str) -> Delivery:
    try:
        raw = raw_body_of(body, is_base64_encoded)
        webhook_id = verify_webhook(raw, headers, signing_secret)
    except InvalidWebhookSignature as exc:
        count("RejectedSignatures")
        logger.warning("webhook signature rejected", extra={"kind": route.kind, "reason": str(exc)})
        raise InvalidSignature() from exc
    logger.append_keys(webhook_id=webhook_id, correlation_id=webhook_id)
    try:
        parsed = route.body_model.parse_json(raw)
    except InvalidReplicateObject as exc:
        raise MalformedBody(f"The body is not a Replicate {route.kind} object.") from exc
    query = query or {}
    hint, user = query.get(route.hint_parameter), query.get(USER_PARAMETER)
    hint = hint if hint and is_our_id(hint, route.hint_prefix) else None
    user = user if user and len(user) <= MAX_USER_HINT else None
    expected = ExpectedTraining.from_query(hint, user, query) if route is TRAINING else None
    return Delivery(webhook_id, hint, parsed, user, expected)
