"""The training API (JWT): uploads, trainings, the model and its versions, the photo set, the
account (`lorapin.http.api.training`), and the whole API's OpenAPI document (`/openapi.json`,
`/docs`). It decodes no photo (the photo inspector does, as they arrive)."""

from __future__ import annotations

from lorapin.cold_start import collecting_later

with collecting_later():  # the init, without the cyclic GC scanning it over and over
    from typing import Any

    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from lorapin.http import openapi
    from lorapin.http.api import training
    from lorapin.http.resolver import build_resolver
    from lorapin.observability import logger, metrics, tracer
    from lorapin.runtime import get_runtime

    runtime = get_runtime()  # settings validated at cold start
    # The clients of the common routes, made now; a cancel or an account deletion (Replicate, its
    # secret) makes its own at the first of them.
    runtime.prepare("dynamodb", "s3", "events", "lambda")
    import lorapin.services.listings
    import lorapin.services.model_history
    import lorapin.services.photo_library
    import lorapin.services.training_start  # noqa: F401  (what the common routes run, imported now)
    app = build_resolver()
    app.include_router(training.routes(lambda: runtime))
    app.include_router(openapi.routes())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)  # responses hold presigned URLs
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
