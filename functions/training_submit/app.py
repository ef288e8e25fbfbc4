"""The training submitter: after POST /trainings answered 202, zips the training's photo set by
streaming (bounded memory, each photo exactly as inspected) and creates the training on Replicate.

Invoked asynchronously by the training API (`{"submit_training": {"user_id", "training_id"}}`);
Lambda retries a failed invocation, and a repeated one finds the work done or leased and does
nothing. Whatever fails frees the user's slot (`TrainingFailed`), or adopts what Replicate created.
"""

from __future__ import annotations

from lorapin.cold_start import collecting_later

with collecting_later():  # the init, without the cyclic GC scanning it over and over
    from typing import Any

    from aws_lambda_powertools.utilities.typing import LambdaContext

    from lorapin.observability import logger, metrics, tracer
    from lorapin.runtime import get_runtime

    runtime = get_runtime()  # settings validated at cold start
    runtime.prepare("dynamodb", "s3", "events", "secrets", "replicate")  # a submission's clients, made now
    import lorapin.services.training_start  # noqa: F401  (what a submission runs, imported now)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = event["submit_training"]
    logger.append_keys(training_id=request["training_id"], user_id=request["user_id"],
                       correlation_id=context.aws_request_id)
    outcome = runtime.trainings().submit(str(request["user_id"]), str(request["training_id"]))
    logger.info("training submission", extra={"outcome": outcome})
    return {"training_id": request["training_id"], "outcome": outcome}
