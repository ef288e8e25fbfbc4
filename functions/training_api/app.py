"""The training API (JWT): `POST /uploads`, `POST /trainings`, `GET /trainings/{id}`, `GET /model`,
`POST /model/rollback`, `GET /photos`, `DELETE /photos/{name}`, and the OpenAPI document at
`GET /openapi.json`. It decodes no photo (the photo inspector does, as they arrive)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from lorapin.domain.cursors import DEFAULT_PAGE
from lorapin.http.resolver import JsonResponse, PageCursor, PageLimit, build_resolver, caller_id, json_response
from lorapin.http.views import model_view, training_view, version_view
from lorapin.observability import count, logger, metrics, tracer
from lorapin.runtime import get_runtime
from lorapin.services.training_start import TrainingRequest
from lorapin.services.uploads import presign_uploads

runtime = get_runtime()  # settings validated at cold start
app = build_resolver()


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=1, le=50)
    content_type: Literal["image/jpeg", "image/png", "image/webp", "image/heic", "image/heif"] = "image/jpeg"


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version_id: str = Field(pattern=r"^[0-9a-f]{64}$")


@app.post("/uploads")
def create_uploads(request: Annotated[UploadRequest, Body()]) -> JsonResponse:
    uploads = presign_uploads(runtime.media, caller_id(app), request.count, request.content_type)
    return json_response(201, {"uploads": uploads})


@app.post("/trainings")
def start_training(request: Annotated[TrainingRequest, Body()]) -> JsonResponse:
    user_id = caller_id(app)
    started = runtime.trainings().start(user_id, request)
    count("TrainingsStarted")
    logger.info("training started", extra={"training_id": started.training.training_id,
                                           "seq": int(started.training.seq), "mode": started.training.mode,
                                           "image_count": int(started.training.image_count)})
    return json_response(202, {"training": training_view(started.training),
                               "findings": [f.to_dict() for f in started.findings]})


@app.get("/trainings/<training_id>")
def get_training(training_id: str) -> JsonResponse:
    training = runtime.history().training(caller_id(app), training_id)
    return json_response(200, {"training": training_view(training)})


@app.post("/trainings/<training_id>/cancel")
def cancel_training(training_id: str) -> JsonResponse:
    training = runtime.training_cancel().cancel(caller_id(app), training_id)
    return json_response(200, {"training": training_view(training)})


@app.get("/trainings")
def list_trainings(limit: PageLimit = DEFAULT_PAGE, cursor: PageCursor = None) -> JsonResponse:
    listed = runtime.listings().trainings(caller_id(app), limit, cursor)
    return json_response(200, {"trainings": [training_view(t) for t in listed.items],
                               "next_cursor": listed.next_cursor})


@app.get("/model")
def get_model() -> JsonResponse:
    """The model with its latest versions (a first page; `versions_next_cursor` continues it)."""
    model, listed = runtime.listings().versions(caller_id(app), DEFAULT_PAGE, None)
    return json_response(200, {"model": model_view(model, listed.items, listed.next_cursor)})


@app.get("/model/versions")
def list_versions(limit: PageLimit = DEFAULT_PAGE, cursor: PageCursor = None) -> JsonResponse:
    model, listed = runtime.listings().versions(caller_id(app), limit, cursor)
    return json_response(200, {"versions": [version_view(v, model.current_version) for v in listed.items],
                               "next_cursor": listed.next_cursor})


@app.get("/photos")
def get_photos() -> JsonResponse:
    return json_response(200, runtime.photo_library().photos(caller_id(app)))


@app.delete("/photos/<name>")
def remove_photo(name: str) -> JsonResponse:
    photos = runtime.photo_library().remove(caller_id(app), name)
    count("PhotosRemoved")
    return json_response(200, photos)


@app.post("/model/rollback")
def rollback(request: Annotated[RollbackRequest, Body()]) -> JsonResponse:
    user_id = caller_id(app)
    runtime.history().rollback(user_id, request.version_id)
    count("Rollbacks")
    model, listed = runtime.listings().versions(user_id, DEFAULT_PAGE, None)
    return json_response(200, {"model": model_view(model, listed.items, listed.next_cursor)})


@app.delete("/account")
def delete_account() -> JsonResponse:
    """Everything lorapin keeps for the caller, and their model on Replicate as far as its API
    allows; what could not be deleted is listed. Idempotent."""
    report = runtime.account_deletion().delete(caller_id(app))
    return json_response(200, report.to_dict())


@app.get("/openapi.json")
def openapi() -> dict[str, Any]:
    return app.get_openapi_schema(title="lorapin", version="1.0.0").model_dump(mode="json", by_alias=True,
                                                                               exclude_none=True)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)  # responses hold presigned URLs
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
