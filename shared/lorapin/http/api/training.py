"""The training API's routes (JWT): uploads, trainings, the model and its versions, the photo set,
the account. Served by `functions/training_api`."""

from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, ConfigDict, Field

from lorapin.domain.cursors import DEFAULT_PAGE
from lorapin.http import schemas
from lorapin.http.api import ServicesOf
from lorapin.http.paging import PageCursor, PageLimit
from lorapin.http.resolver import JsonResponse, caller_id, json_response
from lorapin.http.schemas import answers
from lorapin.http.views import model_view, training_view, version_view
from lorapin.observability import count, logger
from lorapin.services.training_start import TrainingRequest
from lorapin.services.uploads import presign_uploads

TAG = ["training"]


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=1, le=50)
    content_type: Literal["image/jpeg", "image/png", "image/webp", "image/heic", "image/heif"] = "image/jpeg"


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version_id: str = Field(pattern=r"^[0-9a-f]{64}$")


def routes(runtime: ServicesOf) -> Router:
    """`runtime`: the function's own (the local stack runs several functions in one process)."""
    router = Router()

    @router.post("/uploads", tags=TAG, summary="Presigned form POSTs for photos",
                 responses=answers(201, schemas.UploadsBody, "one presigned form POST per photo", 400, 401, 415, 422,
                                   503))
    def create_uploads(request: Annotated[UploadRequest, Body()]) -> JsonResponse:
        uploads = presign_uploads(runtime().media, caller_id(router), request.count, request.content_type)
        return json_response(201, {"uploads": uploads})

    @router.post("/trainings", tags=TAG, summary="Start a training (first or re-)",
                 responses=answers(202, schemas.StartedTrainingBody, "started; submitted to Replicate next", 400, 401,
                                   403, 409, 415, 422, 503))
    def start_training(request: Annotated[TrainingRequest, Body()]) -> JsonResponse:
        started = runtime().trainings().start(caller_id(router), request)
        count("TrainingsStarted")
        logger.info("training started", extra={"training_id": started.training.training_id,
                                               "seq": int(started.training.seq), "mode": started.training.mode,
                                               "image_count": int(started.training.image_count)})
        return json_response(202, {"training": training_view(started.training),
                                   "findings": [f.to_dict() for f in started.findings]})

    @router.get("/trainings", tags=TAG, summary="The caller's trainings, newest first",
                responses=answers(200, schemas.TrainingsPage, "a page", 400, 401, 422, 503))
    def list_trainings(limit: PageLimit = DEFAULT_PAGE, cursor: PageCursor = None) -> JsonResponse:
        listed = runtime().listings().trainings(caller_id(router), limit, cursor)
        return json_response(200, {"trainings": [training_view(t) for t in listed.items],
                                   "next_cursor": listed.next_cursor})

    @router.get("/trainings/<training_id>", tags=TAG, summary="One training",
                responses=answers(200, schemas.TrainingBody, "the training", 401, 404, 422, 503))
    def get_training(training_id: str) -> JsonResponse:
        training = runtime().history().training(caller_id(router), training_id)
        return json_response(200, {"training": training_view(training)})

    @router.post("/trainings/<training_id>/cancel", tags=TAG, summary="Cancel a training",
                 responses=answers(200, schemas.TrainingBody, "the training as it ended", 401, 404, 409, 422, 503))
    def cancel_training(training_id: str) -> JsonResponse:
        training = runtime().training_cancel().cancel(caller_id(router), training_id)
        return json_response(200, {"training": training_view(training)})

    @router.get("/model", tags=TAG, summary="The model, its current version and latest 20 versions",
                responses=answers(200, schemas.ModelBody, "the model", 401, 404, 503))
    def get_model() -> JsonResponse:
        model, listed = runtime().listings().versions(caller_id(router), DEFAULT_PAGE, None)
        return json_response(200, {"model": model_view(model, listed.items, listed.next_cursor)})

    @router.get("/model/versions", tags=TAG, summary="The model's versions, newest first",
                responses=answers(200, schemas.VersionsPage, "a page", 400, 401, 404, 422, 503))
    def list_versions(limit: PageLimit = DEFAULT_PAGE, cursor: PageCursor = None) -> JsonResponse:
        model, listed = runtime().listings().versions(caller_id(router), limit, cursor)
        return json_response(200, {"versions": [version_view(v, model.current_version) for v in listed.items],
                                   "next_cursor": listed.next_cursor})

    @router.post("/model/rollback", tags=TAG, summary="Make an earlier version current",
                 responses=answers(200, schemas.ModelBody, "the model", 400, 401, 404, 409, 415, 422, 503))
    def rollback(request: Annotated[RollbackRequest, Body()]) -> JsonResponse:
        user_id = caller_id(router)
        current = runtime()
        current.history().rollback(user_id, request.version_id)
        count("Rollbacks")
        model, listed = current.listings().versions(user_id, DEFAULT_PAGE, None)
        return json_response(200, {"model": model_view(model, listed.items, listed.next_cursor)})

    @router.get("/photos", tags=TAG, summary="The photo set the next training starts from",
                responses=answers(200, schemas.PhotosBody, "the set", 401, 404, 503))
    def get_photos() -> JsonResponse:
        return json_response(200, runtime().photo_library().photos(caller_id(router)))

    @router.delete("/photos/<name>", tags=TAG, summary="Leave a photo out of the next merge",
                   responses=answers(200, schemas.PhotosBody, "the set without it", 401, 404, 422, 503))
    def remove_photo(name: str) -> JsonResponse:
        photos = runtime().photo_library().remove(caller_id(router), name)
        count("PhotosRemoved")
        return json_response(200, photos)

    @router.delete("/account", tags=TAG, summary="Delete everything lorapin keeps for the caller",
                   responses=answers(200, schemas.DeletionBody, "what was deleted, and what Replicate refused",
                                     401, 503))
    def delete_account() -> JsonResponse:
        report = runtime().account_deletion().delete(caller_id(router))
        return json_response(200, report.to_dict())

    return router
