"""The scheduled reconciler: completes trainings and generations whose webhook never came (I8),
publishes events a failed `PutEvents` left behind (I5), and counts version drift (R9)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from lorapin.generation import Generations
from lorapin.observability import logger, metrics, tracer
from lorapin.reconciler import Reconciler
from lorapin.runtime import get_runtime
from lorapin.training_completion import TrainingCompletion

runtime = get_runtime()  # settings validated at cold start


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(correlation_id=event.get("id") or context.aws_request_id)
    generations = Generations(runtime.repository, lambda: runtime.replicate, lambda: runtime.media,
                              runtime.prediction_webhook_url)
    reconciler = Reconciler(runtime.repository, TrainingCompletion(runtime.repository, runtime.publisher),
                            generations, lambda: runtime.replicate)
    report = reconciler.run()
    logger.info("reconciler run", extra=asdict(report))
    return asdict(report)
