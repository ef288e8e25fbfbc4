"""Generations: `POST /generations`, `GET /generations/{id}`, and the consumer of the bus events
that end a wait for a model: `ModelVersionActivated` releases what waited, `TrainingFailed` fails
it when no version will come."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from lorapin.adapters.outbox import acknowledge_activation
from lorapin.domain.cursors import DEFAULT_PAGE
from lorapin.domain.events import MODEL_VERSION_ACTIVATED, TRAINING_FAILED
from lorapin.http.resolver import JsonResponse, PageCursor, PageLimit, build_resolver, caller_id, json_response
from lorapin.http.views import generation_view
from lorapin.observability import count, logger, metrics, tracer
from lorapin.runtime import get_runtime
from lorapin.services.generation import GenerationRequest

runtime = get_runtime()  # settings validated at cold start
app = build_resolver()


@app.post("/generations")
def create_generation(request: Annotated[GenerationRequest, Body()]) -> JsonResponse:
    user_id = caller_id(app)
    generation = runtime.generations().request(user_id, request)
    count("GenerationsRequested")
    logger.info("generation requested", extra={"generation_id": generation.generation_id,
                                               "status": generation.status,
                                               "model_version_ref": generation.model_version_ref})
    return json_response(202, {"generation": generation_view(generation, runtime.media.presigned_get)})


@app.get("/generations")
def list_generations(limit: PageLimit = DEFAULT_PAGE, cursor: PageCursor = None) -> JsonResponse:
    """The caller's generations, newest first; each says which version made it and with what seed."""
    listed = runtime.listings().generations(caller_id(app), limit, cursor)
    return json_response(200, {"generations": [generation_view(g, runtime.media.presigned_get) for g in listed.items],
                               "next_cursor": listed.next_cursor})


@app.get("/generations/<generation_id>")
def get_generation(generation_id: str) -> JsonResponse:
    generation = runtime.generations().get(caller_id(app), generation_id)
    return json_response(200, {"generation": generation_view(generation, runtime.media.presigned_get)})


def release_waiting(event: dict[str, Any]) -> dict[str, Any]:
    """EventBridge: a version became current; start what waited for it, then acknowledge the event
    to its training's outbox (the webhook leaves that clear to us). Duplicates are no-ops."""
    detail = event.get("detail") or {}
    logger.set_correlation_id(detail.get("correlation_id") or event.get("id"))
    released = runtime.generations().release_waiting(str(detail["user_id"]), str(detail["version_id"]))
    if detail.get("training_id"):
        acknowledge_activation(str(detail["training_id"]), str(detail["version_id"]))
    logger.info("waiting generations released", extra={"user_id": detail.get("user_id"),
                                                       "version_id": detail.get("version_id"),
                                                       "released": released})
    count("GenerationsReleased", released)
    return {"released": released}


def fail_waiting(event: dict[str, Any]) -> dict[str, Any]:
    """EventBridge: a training failed; if the user is left with no version and none coming, what
    waited for the first one is failed (it would wait for ever). Duplicates are no-ops."""
    detail = event.get("detail") or {}
    logger.set_correlation_id(detail.get("correlation_id") or event.get("id"))
    failed = runtime.generations().fail_waiting(str(detail["user_id"]))
    logger.info("waiting generations failed", extra={"user_id": detail.get("user_id"), "failed": failed})
    return {"failed": failed}


BUS_EVENTS = {MODEL_VERSION_ACTIVATED: release_waiting, TRAINING_FAILED: fail_waiting}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)  # responses hold presigned URLs
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    consume = BUS_EVENTS.get(str(event.get("detail-type")))
    if consume is not None:
        return consume(event)
    return app.resolve(event, context)
