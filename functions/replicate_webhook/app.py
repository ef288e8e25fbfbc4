"""Replicate's webhooks (`lorapin.http.api.webhooks`): verify → decide → guarded write → event.

No authorizer: the Standard Webhooks signature over the raw body is the authentication. An
activating delivery makes two AWS requests (TransactWriteItems, PutEvents) when its URL's
expectation holds, else a TransactGetItems first.
"""

from __future__ import annotations

from lorapin.cold_start import collecting_later

with collecting_later():  # the init, without the cyclic GC scanning it over and over
    from typing import Any

    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from lorapin.http.api import webhooks
    from lorapin.http.resolver import build_resolver
    from lorapin.observability import logger, metrics, tracer
    from lorapin.runtime import get_runtime

    runtime = get_runtime()  # settings validated at cold start
    runtime.prepare("dynamodb", "events", "secrets", "s3")  # a delivery's clients, made now
    import lorapin.adapters.replicate_gateway  # (its `download`: over botocore's urllib3, no httpx)
    import lorapin.services.generation
    import lorapin.services.training_completion  # noqa: F401  (what a delivery runs, imported now)
    app = build_resolver(validation=False)  # webhook bodies are Replicate's, parsed by our tolerant models
    app.include_router(webhooks.routes(lambda: runtime))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
