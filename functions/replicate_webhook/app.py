"""Replicate's webhooks: verify → decide → guarded write → event.

`POST /webhooks/replicate/training` and `/prediction`. No authorizer: the Standard Webhooks
signature over the raw body is the authentication (`lorapin.http.webhooks.receive`). Handling is
idempotent by decision (I4): a redelivery is decided `duplicate` against the stored state and every
write is guarded; every error becomes a response in `lorapin.http.resolver`.

An activating delivery makes three AWS requests: one TransactGetItems (training and model), one
TransactWriteItems (the guarded activation with its outbox) and one PutEvents.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from lorapin.domain.replicate_objects import ReplicatePrediction, ReplicateTraining
from lorapin.http.resolver import JsonResponse, build_resolver, json_response
from lorapin.http.webhooks import PREDICTION, TRAINING, Delivery, WebhookRoute, receive
from lorapin.observability import count, logger, metrics, tracer
from lorapin.runtime import get_runtime

runtime = get_runtime()  # settings validated at cold start
app = build_resolver(validation=False)  # webhook bodies are Replicate's, parsed by our tolerant models


def handle_training(delivery: Delivery) -> dict[str, Any]:
    assert isinstance(delivery.body, ReplicateTraining)
    result = runtime.completion().apply(delivery.body, training_id_hint=delivery.hint, user_hint=delivery.user_hint,
                                        await_receipt=True)  # the generation function clears the outbox
    count(f"Training{result.outcome.value.title().replace('_', '')}")
    logger.info("training webhook handled", extra={"outcome": result.outcome.value, "user_id": result.user_id,
                                                   "training_id": result.training_id,
                                                   "reason": result.decision.reason})
    return {"outcome": result.outcome.value}


def handle_prediction(delivery: Delivery) -> dict[str, Any]:
    assert isinstance(delivery.body, ReplicatePrediction)
    outcome = runtime.generations().complete_prediction(delivery.body, delivery.hint)
    logger.info("prediction webhook handled", extra={"outcome": outcome.value, "prediction_id": delivery.body.id})
    return {"outcome": outcome.value}


HANDLERS = {TRAINING.kind: handle_training, PREDICTION.kind: handle_prediction}


def deliver(route: WebhookRoute) -> JsonResponse:
    """verify → parse → handle: the same path for both kinds."""
    event = app.current_event
    delivery = receive(route, body=event.body, is_base64_encoded=bool(event.is_base64_encoded),
                       headers=dict(event.headers or {}), query=event.query_string_parameters,
                       signing_secret=runtime.secrets.webhook_signing_secret)
    return json_response(200, HANDLERS[route.kind](delivery))


@app.post("/webhooks/replicate/training")
def training_webhook() -> JsonResponse:
    return deliver(TRAINING)


@app.post("/webhooks/replicate/prediction")
def prediction_webhook() -> JsonResponse:
    return deliver(PREDICTION)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)  # responses hold presigned URLs
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
