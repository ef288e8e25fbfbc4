"""The scheduled reconciler: completes trainings and generations whose webhook never came (I8),
publishes events a failed `PutEvents` left behind (I5), and counts version drift (R9)."""

from __future__ import annotations

from lorapin.cold_start import collecting_later

with collecting_later():  # the init, without the cyclic GC scanning it over and over
    from dataclasses import asdict
    from typing import Any

    from aws_lambda_powertools.utilities.typing import LambdaContext

    from lorapin.observability import logger, metrics, tracer
    from lorapin.runtime import get_runtime

    runtime = get_runtime()  # settings validated at cold start
    runtime.prepare("dynamodb", "events", "s3", "secrets", "replicate")  # a run's clients, made now
    import lorapin.services.reconciler  # noqa: F401  (what a run runs, imported now)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)  # responses hold presigned URLs
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(correlation_id=event.get("id") or context.aws_request_id)
    report = runtime.reconciler().run()
    logger.info("reconciler run", extra=asdict(report))
    return asdict(report)
