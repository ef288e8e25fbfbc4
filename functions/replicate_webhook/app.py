"""Replicate's webhooks: verify → decide → guarded write → event.

`POST /webhooks/replicate/training` and `/prediction`. No authorizer: the Standard Webhooks
signature over the raw body is the authentication (`lorapin.http.webhooks.receive`). Each kind's
handler is idempotent on `webhook-id` (I4); every error becomes a response in `lorapin.http.resolver`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from lorapin.domain.completion import Outcome
from lorapin.domain.replicate_objects import ReplicatePrediction, ReplicateTraining
from lorapin.http.resolver import JsonResponse, build_resolver, json_response
from lorapin.http.webhooks import PREDICTION, TRAINING, Delivery, WebhookRoute, receive
from lorapin.observability import count, logger, metrics, tracer
from lorapin.runtime import get_runtime

runtime = get_runtime()  # settings validated at cold start
app = build_resolver(validation=False)  # webhook bodies are Replicate's, parsed by our tolerant models


def _replayed(response: Any, idempotent_data: DataRecord) -> Any:
    """A delivery seen before (same webhook-id) answers 2xx again and says so."""
    _ = idempotent_data
    first = response.get("outcome") if isinstance(response, dict) else None
    return {"outcome": Outcome.DUPLICATE.value, "first_outcome": first}


idempotency_config = IdempotencyConfig(event_key_jmespath="webhook_id", expires_after_seconds=7 * 24 * 3600,
                                       response_hook=_replayed)
persistence = DynamoDBPersistenceLayer(table_name=runtime.settings.idempotency_table)


def handle_training(delivery: Delivery) -> dict[str, Any]:
    training = ReplicateTraining.model_validate_json(delivery.body)
    result = runtime.completion().apply(training, training_id_hint=delivery.hint)
    count(f"Training{result.outcome.value.title().replace('_', '')}")
    logger.info("training webhook handled", extra={"outcome": result.outcome.value, "user_id": result.user_id,
                                                   "training_id": result.training_id,
                                                   "reason": result.decision.reason})
    return {"outcome": result.outcome.value}


def handle_prediction(delivery: Delivery) -> dict[str, Any]:
    prediction = ReplicatePrediction.model_validate_json(delivery.body)
    outcome = runtime.generations().complete_prediction(prediction, delivery.hint)
    logger.info("prediction webhook handled", extra={"outcome": outcome.value, "prediction_id": prediction.id})
    return {"outcome": outcome.value}


def _idempotent(route: WebhookRoute, handle: Callable[[Delivery], dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """`handle`, run once per webhook-id of this kind; an exception lets the redelivery run it again.
    The key prefix is fixed so that records stay valid across deploys and module paths."""

    @idempotent_function(data_keyword_argument="delivery", persistence_store=persistence, config=idempotency_config,
                         key_prefix=f"replicate-webhook#{route.kind}")
    def once(delivery: dict[str, Any]) -> dict[str, Any]:
        return handle(Delivery.from_dict(delivery))

    return once


HANDLERS = {TRAINING.kind: _idempotent(TRAINING, handle_training),
            PREDICTION.kind: _idempotent(PREDICTION, handle_prediction)}


def deliver(route: WebhookRoute) -> JsonResponse:
    """verify → parse → idempotent handler: the same path for both kinds."""
    event = app.current_event
    delivery = receive(route, body=event.body, is_base64_encoded=bool(event.is_base64_encoded),
                       headers=dict(event.headers or {}), query=event.query_string_parameters,
                       signing_secret=runtime.secrets.webhook_signing_secret)
    return json_response(200, HANDLERS[route.kind](delivery=delivery.as_dict()))


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
    idempotency_config.register_lambda_context(context)
    return app.resolve(event, context)
