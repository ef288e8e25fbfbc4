"""The bodies the HTTP API answers with, as models, for its OpenAPI document (`lorapin.http.openapi`).

They describe what `lorapin.http.views` builds and the error shape of `lorapin.domain.errors`;
the contract tests (schemathesis against the local stack) check every real answer against them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Documented(BaseModel):
    """A body as documented. Built only when the document is: the functions answer with plain
    dicts (`lorapin.http.views`), so building these at every cold start would be wasted."""

    model_config = ConfigDict(defer_build=True)


class ErrorDetail(Documented):
    code: str = Field(description="UPPER_SNAKE, machine-readable (docs/CONTRACTS.md lists them)")
    message: str
    details: list[Any]


class ErrorBody(Documented):
    """Every error lorapin answers (REQUIREMENTS §4)."""

    error: ErrorDetail


class GatewayMessage(Documented):
    """What API Gateway itself answers, before any function runs (no JWT, no such route)."""

    message: str


class Finding(Documented):
    code: str
    severity: Literal["error", "warning"]
    message: str
    image_key: str | None = None


class Training(Documented):
    id: str
    replicate_training_id: str | None
    status: str
    seq: int
    mode: str | None
    image_count: int
    trigger_word: str
    destination: str
    params: dict[str, Any]
    version_id: str | None
    error: str | None
    created_at: str
    completed_at: str | None


class TrainingBody(Documented):
    training: Training


class StartedTrainingBody(Documented):
    training: Training
    findings: list[Finding]


class TrainingsPage(Documented):
    trainings: list[Training]
    next_cursor: str | None


class CurrentVersion(Documented):
    id: str
    ref: str
    trigger_word: str
    training_id: str | None
    seq: int
    activated_at: str
    reason: str


class Version(CurrentVersion):
    """One version of the model's history; `activated_at` and `reason` are the current version's when
    `active`, else when it was made and `training`."""

    image_count: int
    active: bool


class Model(Documented):
    destination: str
    trigger_word: str
    status: str
    current_version: CurrentVersion | None
    versions: list[Version]
    versions_next_cursor: str | None


class ModelBody(Documented):
    model: Model


class VersionsPage(Documented):
    versions: list[Version]
    next_cursor: str | None


class Generation(Documented):
    id: str
    status: str
    prompt: str
    model_version_ref: str | None
    seed: int | None
    replicate_prediction_id: str | None
    outputs: list[str]
    error: str | None
    created_at: str
    completed_at: str | None


class GenerationBody(Documented):
    generation: Generation


class GenerationsPage(Documented):
    generations: list[Generation]
    next_cursor: str | None


class Upload(Documented):
    key: str
    url: str
    method: Literal["POST"]
    fields: dict[str, str] = Field(description="send them as the form's fields, then the file as `file`")
    max_bytes: int


class UploadsBody(Documented):
    uploads: list[Upload]


class Photo(Documented):
    key: str
    name: str
    thumbnail_url: str | None
    findings: list[Finding]
    training_id: str | None
    width: int | None
    height: int | None


class PhotosBody(Documented):
    photos: list[Photo]
    training_id: str | None
    known: bool


class Deleted(Documented):
    canceled_on_replicate: int
    replicate_versions: int
    replicate_model: bool
    objects: int
    rows: dict[str, int]


class DeletionBody(Documented):
    deleted: Deleted
    not_deleted: list[dict[str, str]]


class WebhookOutcome(Documented):
    outcome: Literal["activated", "recorded", "ignored_stale", "duplicate", "ignored_unknown", "rejected"]


ERROR_MEANINGS = {
    400: "the request is malformed (not JSON, a bad cursor)",
    401: "no valid JWT (API Gateway's answer) or no caller in it",
    403: "a photo key that is not the caller's",
    404: "absent, or another user's (the same answer, I7)",
    409: "a state conflict (the code says which)",
    413: "the body is over API Gateway's limit",
    415: "the body is not JSON",
    422: "the body or a parameter fails validation, or the photos do (findings in details)",
    429: "over the user's limits; retry after Retry-After",
    503: "a dependency (AWS, Replicate) failed; nothing half-done; retry after Retry-After",
}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "string"}}}


def answers(status: int, model: type[BaseModel] | None, description: str, *errors: int) -> dict[int, Any]:
    """The `responses` of a route for its OpenAPI document: its success, then each error status it
    can answer, in lorapin's error shape (401 is API Gateway's own, added for every JWT route)."""
    documented: dict[int, Any] = {status: {"description": description}}
    if model is not None:
        documented[status]["content"] = {"application/json": {"model": model}}
    for code in errors:
        documented[code] = {"description": ERROR_MEANINGS[code],
                            "content": {"application/json": {"model": ErrorBody}}}
        if code in (409, 429, 503):
            documented[code]["headers"] = RETRY_AFTER
    return documented
