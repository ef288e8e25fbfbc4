"""Generations (`lorapin.http.api.generations`: create, list, get), and the consumer of the bus events
that end a wait for a model: `ModelVersionActivated` releases what waited, `TrainingFailed` fails
it when no version will come."""

from __future__ import annotations

from lorapin.cold_start import collecting_later

with collecting_later():  # the init, without the cyclic GC scanning it over and over
    from typing import Any

    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from lorapin.adapters.outbox import acknowledge_activation
    from lorapin.domain.events import MODEL_VERSION_ACTIVATED, TRAINING_FAILED
    from lorapin.http.api import generations
    from lorapin.http.resolver import build_resolver
    from lorapin.observability import count, logger, metrics, tracer
    from lorapin.runtime import get_runtime

    runtime = get_runtime()  # settings validated at cold start
    runtime.prepare("dynamodb", "secrets", "s3", "replicate")  # the requests' clients, made now
    import lorapin.services.generation  # noqa: F401  (what the requests run, imported now)
    app = build_resolver()
    app.include_router(generations.routes(lambda: runtime))


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
