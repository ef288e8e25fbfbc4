"""Replicate's webhooks: verify → decide → guarded write → event.

`POST /webhooks/replicate/training` and `/prediction`. No authorizer: the Standard Webhooks
signature over the raw body is the authentication. Idempotent on `webhook-id` (I4).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from lorapin.api import JsonResponse, build_resolver, error_response, json_response
from lorapin.clock import is_our_id
from lorapin.completion import Outcome
from lorapin.errors import BadRequest, Conflict, Unauthorized, UpstreamUnavailable
from lorapin.events import EventPublishFailed
from lorapin.generation import Generations, PredictionNotYetRecorded
from lorapin.observability import count, logger, metrics, tracer
from lorapin.replicate_objects import ReplicatePrediction, ReplicateTraining
from lorapin.runtime import get_runtime
from lorapin.training_completion import RejectedCompletion, TrainingCompletion, TrainingNotYetRecorded
from lorapin.webhook_signature import InvalidWebhookSignature, raw_body_of, verify_webhook

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


def _verified(kind: str) -> tuple[str, str]:
    """The raw body and webhook-id of a delivery whose signature checks out (else 401)."""
    event = app.current_event
    try:
        raw = raw_body_of(event.body, bool(event.is_base64_encoded))
        webhook_id = verify_webhook(raw, event.headers or {}, runtime.secrets.webhook_signing_secret)
    except InvalidWebhookSignature as exc:
        count("RejectedSignatures")
        logger.warning("webhook signature rejected", extra={"kind": kind, "reason": str(exc)})
        raise Unauthorized("The webhook signature is missing, invalid or stale.", code="INVALID_SIGNATURE") from exc
    logger.append_keys(webhook_id=webhook_id, correlation_id=webhook_id)
    return raw, webhook_id


def _id_hint(name: str, prefix: str) -> str | None:
    """The id our webhook URL carries, if it looks like one of ours. The query string is not signed:
    it only speeds up the lookup, and anything else is ignored rather than sent to DynamoDB."""
    value = app.current_event.get_query_string_value(name)
    return value if value and is_our_id(value, prefix) else None


@app.post("/webhooks/replicate/training")
def training_webhook() -> JsonResponse:
    raw, webhook_id = _verified("training")
    try:
        ReplicateTraining.model_validate_json(raw)
    except ValidationError as exc:
        raise BadRequest("The body is not a Replicate training object.", code="MALFORMED_BODY") from exc
    hint = _id_hint("training_id", "trn")
    result = _handle_training(delivery={"webhook_id": webhook_id, "training_id": hint, "body": raw})
    return json_response(200, result)


@idempotent_function(data_keyword_argument="delivery", persistence_store=persistence, config=idempotency_config,
                     key_prefix="replicate-webhook#training")  # stable across deploys and module paths
def _handle_training(delivery: dict[str, Any]) -> dict[str, Any]:
    training = ReplicateTraining.model_validate_json(delivery["body"])
    try:
        result = TrainingCompletion(runtime.repository, runtime.publisher).apply(
            training, training_id_hint=delivery["training_id"])
    except RejectedCompletion as exc:
        count("RejectedVersions")
        logger.error("training output rejected", extra={"replicate_training_id": training.id, "reason": str(exc)})
        raise BadRequest(str(exc), code="INVALID_OUTPUT_VERSION") from exc
    except TrainingNotYetRecorded as exc:
        raise UpstreamUnavailable("The training is still being recorded; deliver again.",
                                  code="NOT_YET_RECORDED", retry_after_seconds=2) from exc
    except EventPublishFailed as exc:
        logger.error("event not published after the write; asking for a redelivery", extra={"error": str(exc)})
        raise UpstreamUnavailable("The event could not be published; deliver again.",
                                  code="EVENT_NOT_PUBLISHED") from exc
    count(f"Training{result.outcome.value.title().replace('_', '')}")
    logger.info("training webhook handled", extra={"outcome": result.outcome.value, "user_id": result.user_id,
                                                   "training_id": result.training_id,
                                                   "reason": result.decision.reason})
    return {"outcome": result.outcome.value}


@app.post("/webhooks/replicate/prediction")
def prediction_webhook() -> JsonResponse:
    raw, webhook_id = _verified("prediction")
    try:
        ReplicatePrediction.model_validate_json(raw)
    except ValidationError as exc:
        raise BadRequest("The body is not a Replicate prediction object.", code="MALFORMED_BODY") from exc
    hint = _id_hint("generation_id", "gen")
    result = _handle_prediction(delivery={"webhook_id": webhook_id, "generation_id": hint, "body": raw})
    return json_response(200, result)


@idempotent_function(data_keyword_argument="delivery", persistence_store=persistence, config=idempotency_config,
                     key_prefix="replicate-webhook#prediction")
def _handle_prediction(delivery: dict[str, Any]) -> dict[str, Any]:
    prediction = ReplicatePrediction.model_validate_json(delivery["body"])
    generations = Generations(runtime.repository, lambda: runtime.replicate, lambda: runtime.media,
                              runtime.prediction_webhook_url)
    try:
        outcome = generations.complete_prediction(prediction, delivery["generation_id"])
    except PredictionNotYetRecorded as exc:
        raise UpstreamUnavailable("The generation is still being recorded; deliver again.",
                                  code="NOT_YET_RECORDED", retry_after_seconds=2) from exc
    logger.info("prediction webhook handled", extra={"outcome": outcome.value, "prediction_id": prediction.id})
    return {"outcome": outcome.value}


@app.exception_handler(IdempotencyAlreadyInProgressError)
def _in_progress(_: IdempotencyAlreadyInProgressError) -> JsonResponse:
    return error_response(Conflict("This delivery is being handled; deliver again later.",
                                   code="DELIVERY_IN_PROGRESS"))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    idempotency_config.register_lambda_context(context)
    return app.resolve(event, context)
