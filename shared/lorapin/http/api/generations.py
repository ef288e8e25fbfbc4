"""The generation routes (JWT). Served by `functions/generation`, which also consumes the bus events
that end a wait for a model."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from lorapin.domain.cursors import DEFAULT_PAGE
from lorapin.http import schemas
from lorapin.http.api import ServicesOf
from lorapin.http.paging import PageCursor, PageLimit
from lorapin.http.resolver import JsonResponse, caller_id, json_response
from lorapin.http.schemas import answers
from lorapin.http.views import generation_view
from lorapin.observability import count, logger
from lorapin.services.generation_request import GenerationRequest

TAG = ["generations"]


def routes(runtime: ServicesOf) -> Router:
    """`runtime`: the function's own (the local stack runs several functions in one process)."""
    router = Router()

    @router.post("/generations", tags=TAG, summary="Generate with the current version (or a named one)",
                 responses=answers(202, schemas.GenerationBody, "asked of Replicate, or waiting for the first version",
                                   400, 401, 404, 409, 415, 422, 429, 503))
    def create_generation(request: Annotated[GenerationRequest, Body()]) -> JsonResponse:
        current = runtime()
        generation = current.generations().request(caller_id(router), request)
        count("GenerationsRequested")
        logger.info("generation requested", extra={"generation_id": generation.generation_id,
                                                   "status": generation.status,
                                                   "model_version_ref": generation.model_version_ref})
        return json_response(202, {"generation": generation_view(generation, current.media.presigned_get)})

    @router.get("/generations", tags=TAG, summary="The caller's generations, newest first",
                responses=answers(200, schemas.GenerationsPage, "a page", 400, 401, 422, 503))
    def list_generations(limit: PageLimit = DEFAULT_PAGE, cursor: PageCursor = None) -> JsonResponse:
        current = runtime()
        listed = current.listings().generations(caller_id(router), limit, cursor)
        return json_response(200, {"generations": [generation_view(g, current.media.presigned_get)
                                                   for g in listed.items],
                                   "next_cursor": listed.next_cursor})

    @router.get("/generations/<generation_id>", tags=TAG, summary="One generation, with its images once done",
                responses=answers(200, schemas.GenerationBody, "the generation", 401, 404, 422, 503))
    def get_generation(generation_id: str) -> JsonResponse:
        current = runtime()
        generation = current.generations().get(caller_id(router), generation_id)
        return json_response(200, {"generation": generation_view(generation, current.media.presigned_get)})

    return router
