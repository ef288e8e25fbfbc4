"""The one path every Replicate webhook takes before its handler: verify → parse → hint.

1. verify: the Standard Webhooks signature over the raw body, within ±5 minutes (401 otherwise,
   and nothing is read or written: I6);
2. parse: the body must be a Replicate object of the route's kind (400 `MALFORMED_BODY`);
3. hint: our own id from the webhook URL's query string, only if it looks like one of ours (the
   query string is not signed, so it is a lookup hint and nothing more).

What comes out is a `Delivery`, which the function hands to its idempotent handler keyed on
`webhook_id` (I4).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pydantic import ValidationError

from lorapin.domain.clock import is_our_id
from lorapin.domain.errors import InvalidSignature, MalformedBody
from lorapin.domain.replicate_objects import ReplicateObject, ReplicatePrediction, ReplicateTraining
from lorapin.http.webhook_signature import InvalidWebhookSignature, raw_body_of, verify_webhook
from lorapin.observability import count, logger


@dataclass(frozen=True)
class WebhookRoute:
    kind: str  # "training" | "prediction": also the idempotency key's namespace
    body_model: type[ReplicateObject]
    hint_parameter: str  # the query parameter our webhook URL carries
    hint_prefix: str  # the prefix of our ids of that kind (`lorapin.domain.clock.new_id`)


TRAINING = WebhookRoute("training", ReplicateTraining, "training_id", "trn")
PREDICTION = WebhookRoute("prediction", ReplicatePrediction, "generation_id", "gen")


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: what the idempotent handler receives (a plain dict, as Powertools stores it)."""

    webhook_id: str
    hint: str | None
    body: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Delivery:
        return cls(webhook_id=str(data["webhook_id"]), hint=data.get("hint"), body=str(data["body"]))


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
        route.body_model.model_validate_json(raw)
    except ValidationError as exc:
        raise MalformedBody(f"The body is not a Replicate {route.kind} object.") from exc
    hint = (query or {}).get(route.hint_parameter)
    return Delivery(webhook_id, hint if hint and is_our_id(hint, route.hint_prefix) else None, raw)
