"""The photo inspector: the one function that carries Pillow (REQUIREMENTS §6).

Two ways in: S3's "Object Created" event for an upload, through EventBridge (the usual way: every
photo is inspected as it arrives), and a direct call from the training API for photos whose event
has not been handled yet (`{"inspect": {"user_id", "keys", "budget_seconds"}}`).
"""

from __future__ import annotations

from lorapin.cold_start import collecting_later

with collecting_later():  # the init, without the cyclic GC scanning it over and over
    from typing import Any

    from aws_lambda_powertools.utilities.typing import LambdaContext

    from lorapin.observability import logger, metrics, tracer
    from lorapin.runtime import get_runtime
    from lorapin.services.photo_inspection import ObjectCreated

    runtime = get_runtime()  # settings validated at cold start
    runtime.prepare("dynamodb", "s3")  # an inspection's clients, made now
    inspections = runtime.photo_inspections()
    import lorapin.domain.photo_inspection  # noqa: F401  (Pillow, which every inspection uses, imported now)
    MARGIN_SECONDS = 2.0  # left of the function's own timeout when a call's budget is spent


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "inspect" in event:
        request = event["inspect"]
        budget = min(float(request.get("budget_seconds", 8.0)),
                     context.get_remaining_time_in_millis() / 1000 - MARGIN_SECONDS)
        done = inspections.inspect_keys(str(request["user_id"]), [str(k) for k in request["keys"]],
                                        budget_seconds=budget)
        return {"inspected": done}
    arrived = ObjectCreated.from_event(event)
    logger.append_keys(photo_key=arrived.key)
    item = inspections.on_arrival(arrived.key, etag=arrived.etag)
    return {"photo_key": arrived.key, "inspected": item is not None, "usable": bool(item and item.usable)}
