"""Replicate's webhooks: verify → decide → guarded write → event. Served by
`functions/replicate_webhook`; no JWT: the Standard Webhooks signature over the raw body is the
authentication (`lorapin.http.webhooks.receive`). Handling is idempotent by decision (I4).

An activating delivery whose URL says what to expect makes two AWS requests: one TransactWriteItems
(the guarded activation with its outbox, conditioned on that expectation) and one PutEvents; when
the expectation does not hold, one TransactGetItems (training and model) decides it again.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Router

from lorapin.domain.replicate_objects import ReplicatePrediction, ReplicateTraining
from lorapin.http.api import Services, ServicesOf, documentation_only
from lorapin.http.resolver import JsonResponse, json_response
from lorapin.http.webhooks import PREDICTION, TRAINING, Delivery, WebhookRoute, receive
from lorapin.observability import count, logger

TAG = ["webhooks"]


def webhook_answers() -> dict[int, Any]:
    """The routes' `responses`, for the OpenAPI document only: the webhook function's resolver does
    not validate (Replicate's bodies are parsed by tolerant models), so it never reads them, and its
    cold start need not load the response models (pydantic, ~46 ms)."""
    from lorapin.http.schemas import WebhookOutcome, answers

    return answers(200, WebhookOutcome, "handled (a duplicate, stale or unknown delivery included)", 400, 401, 409,
                   503)


def handle_training(runtime: Services, delivery: Delivery) -> dict[str, Any]:
    assert isinstance(delivery.body, ReplicateTraining)
    result = runtime.completion().apply(delivery.body, training_id_hint=delivery.hint, user_hint=delivery.user_hint,
                                        expected=delivery.expected,
                                        await_receipt=True)  # the generation function clears the outbox
    count(f"Training{result.outcome.value.title().replace('_', '')}")
    logger.info("training webhook handled", extra={"outcome": result.outcome.value, "user_id": result.user_id,
                                                   "training_id": result.training_id,
                                                   "reason": result.decision.reason})
    return {"outcome": result.outcome.value}


def handle_prediction(runtime: Services, delivery: Delivery) -> dict[str, Any]:
    assert isinstance(delivery.body, ReplicatePrediction)
    outcome = runtime.generations().complete_prediction(delivery.body, delivery.hint)
    logger.info("prediction webhook handled", extra={"outcome": outcome.value, "prediction_id": delivery.body.id})
    return {"outcome": outcome.value}


HANDLERS = {TRAINING.kind: handle_training, PREDICTION.kind: handle_prediction}


def routes(runtime: ServicesOf) -> Router:
    """`runtime`: the function's own (the local stack runs several functions in one process)."""
    router = Router()
    responses = webhook_answers() if runtime is documentation_only else None

    def deliver(route: WebhookRoute) -> JsonResponse:
        """verify → parse → handle: the same path for both kinds."""
        event = router.current_event
        delivery = receive(route, body=event.body, is_base64_encoded=bool(event.is_base64_encoded),
                           headers=dict(event.headers or {}), query=event.query_string_parameters,
                           signing_secret=runtime().secrets.webhook_signing_secret)
        return json_response(200, HANDLERS[route.kind](runtime(), delivery))

    @router.post("/webhooks/replicate/training", tags=TAG, summary="Replicate's training webhook (signed)",
                 responses=responses)
    def training_webhook() -> JsonResponse:
        return deliver(TRAINING)

    @router.post("/webhooks/replicate/prediction", tags=TAG, summary="Replicate's prediction webhook (signed)",
                 responses=responses)
    def prediction_webhook() -> JsonResponse:
        return deliver(PREDICTION)

    return router
