"""Every error a caller can see, with its machine-readable code and HTTP status, in one module.

Services raise these; `lorapin.http.resolver` turns any of them into the one error shape
`{"error": {"code": "UPPER_SNAKE", "message": "...", "details": [...]}}` (docs/REQUIREMENTS.md,
"HTTP API"), and translates the few foreign exceptions (AWS faults, request validation) into them.
The codes are listed in docs/CONTRACTS.md.
"""

from __future__ import annotations

from typing import Any, ClassVar


class LorapinError(Exception):
    """Base of every error a caller can see. Subclasses fix the status and the code."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "BAD_REQUEST"
    default_retry_after: ClassVar[int | None] = None
    default_message: ClassVar[str] = "The request cannot be served."

    def __init__(self, message: str | None = None, *, details: list[Any] | None = None,
                 retry_after_seconds: int | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)
        self.details = details or []
        self.retry_after_seconds = retry_after_seconds if retry_after_seconds is not None else self.default_retry_after

    def to_body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)} if self.retry_after_seconds is not None else {}


# --- 400 ------------------------------------------------------------------------------------------
class BadRequest(LorapinError):
    status, code = 400, "BAD_REQUEST"


class MalformedBody(BadRequest):
    code = "MALFORMED_BODY"
    default_message = "The body is not UTF-8 encoded JSON."


# --- 401 / 403 ------------------------------------------------------------------------------------
class Unauthenticated(LorapinError):
    status, code = 401, "UNAUTHENTICATED"
    default_message = "No authenticated user."


class InvalidSignature(LorapinError):
    status, code = 401, "INVALID_SIGNATURE"
    default_message = "The webhook signature is missing, invalid or stale."


class ForbiddenImageKey(LorapinError):
    status, code = 403, "FORBIDDEN_IMAGE_KEY"
    default_message = "Photos must be ones you uploaded through POST /uploads."


# --- 404 ------------------------------------------------------------------------------------------
class NotFound(LorapinError):
    status, code = 404, "NOT_FOUND"


class NoModel(NotFound):
    code = "NO_MODEL"
    default_message = "You have no model yet: start a training with POST /trainings."


class TrainingNotFound(NotFound):
    code = "TRAINING_NOT_FOUND"
    default_message = "No such training."


class GenerationNotFound(NotFound):
    code = "GENERATION_NOT_FOUND"
    default_message = "No such generation."


class UnknownVersion(NotFound):
    code = "UNKNOWN_VERSION"
    default_message = "That version is not one of your model's versions."


class RouteNotFound(NotFound):
    code = "ROUTE_NOT_FOUND"
    default_message = "No such route."


# --- 409 ------------------------------------------------------------------------------------------
class Conflict(LorapinError):
    status, code = 409, "CONFLICT"


class RateLimited(LorapinError):
    status, code = 429, "RATE_LIMITED"
    default_message = "Too many generations: wait and try again."


class InvalidCursor(LorapinError):
    status, code = 400, "INVALID_CURSOR"
    default_message = "That cursor is not one this list handed out; start again from the first page."


class TrainingFinished(Conflict):
    code = "TRAINING_FINISHED"
    default_message = "That training has already finished; there is nothing to cancel."


class TrainingBeingSubmitted(Conflict):
    code = "TRAINING_BEING_SUBMITTED"
    default_message = "That training is being handed to Replicate right now; cancel it again in a moment."
    default_retry_after = 5


class TrainingInProgress(Conflict):
    """I2: the user already has a training in flight."""

    code = "TRAINING_IN_PROGRESS"
    default_message = "A training is already running; wait for it to finish."


class NoModelToGenerateWith(Conflict):
    code = "NO_MODEL"


class ModelChanged(Conflict):
    code = "MODEL_CHANGED"
    default_message = "Your model changed while rolling back (a training finished?); look at it and retry."


class PhotosPending(Conflict):
    """Photos named by a training are still being inspected (their upload just finished, or its
    notification is late): `details` name them; retry after `Retry-After`."""

    code = "PHOTOS_PENDING"
    default_message = "Some photos are still being checked; retry in a few seconds."
    default_retry_after = 3


# --- 415 / 422 ------------------------------------------------------------------------------------
class UnsupportedMediaType(LorapinError):
    status, code = 415, "UNSUPPORTED_MEDIA_TYPE"
    default_message = "Send the body as JSON (content-type: application/json)."


class Unprocessable(LorapinError):
    status, code = 422, "UNPROCESSABLE"


class InvalidRequest(Unprocessable):
    """The body or parameters do not match the route's schema; `details` name each field."""

    code = "INVALID_REQUEST"

    @classmethod
    def from_fields(cls, details: list[dict[str, Any]]) -> InvalidRequest:
        summary = "; ".join(f"{d['field'] or 'body'}: {d['message']}" for d in details[:5])
        return cls(f"The request is not valid: {summary}", details=details)


class ImageValidationFailed(Unprocessable):
    code = "IMAGE_VALIDATION"


class TriggerWordLocked(Unprocessable):
    code = "TRIGGER_WORD_LOCKED"


class ModeRequired(Unprocessable):
    """A retrain of a model whose photo set lorapin does not know (imported by `lorapin backfill`):
    merging would silently train on the new photos alone, so the caller must choose."""

    code = "MODE_REQUIRED"
    default_message = (
        "lorapin does not know which photos trained your current version (it was imported), so it cannot "
        "merge your new photos with them. Send mode \"replace\" with every photo to train on, or mode "
        "\"merge\" to train on the new photos alone (they become the set later retrains merge with).")


class PhotoNotInSet(NotFound):
    code = "PHOTO_NOT_IN_SET"


class DownloadRefused(Unprocessable):
    """A URL lorapin was handed (a prediction's output) is not one it may fetch: not an allowed
    source, a redirect out of them, or a body over the size cap. Nothing was fetched from it."""

    code = "DOWNLOAD_REFUSED"


# --- 500 ------------------------------------------------------------------------------------------
class InvalidTrainingParams(LorapinError):
    """A deployment configuration error, not the caller's."""

    status, code = 500, "INVALID_TRAINING_PARAMS"


class ReplicateSecretInvalid(LorapinError):
    """The stored Replicate secret cannot work (a deployment error, not the caller's). `problems`
    name what is wrong, for the operator's log; no value is ever part of them or of the message."""

    status, code = 500, "REPLICATE_SECRET_INVALID"
    default_message = "The service's Replicate credentials are misconfigured; the operator has been told."

    def __init__(self, problems: list[str]) -> None:
        super().__init__()
        self.problems = problems


# --- 503: try again later -------------------------------------------------------------------------
class Unavailable(LorapinError):
    status, code = 503, "UNAVAILABLE"
    default_retry_after = 5


class UpstreamUnavailable(Unavailable):
    """Replicate failed in a way the caller can retry later."""

    code = "UPSTREAM_UNAVAILABLE"


class UpstreamRejected(Unavailable):
    """Replicate refused the call; nothing half-done is left."""

    code = "UPSTREAM_REJECTED"


class DependencyUnavailable(Unavailable):
    """DynamoDB, S3 or EventBridge failed (throttling, an outage)."""

    code = "DEPENDENCY_UNAVAILABLE"
    default_message = "A storage dependency is unavailable; retry shortly."
    default_retry_after = 2


class EventPublishFailed(Unavailable):
    """The bus did not take an event: the state change is saved, its event must be retried (I5).

    `reason` says why, for the logs; the caller sees the message."""

    code = "EVENT_NOT_PUBLISHED"
    default_message = "The change is saved but its event is not sent yet; retry the call."

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class NotYetRecorded(Unavailable):
    """A webhook for a training or prediction whose Replicate id is not stored yet: deliver again."""

    code = "NOT_YET_RECORDED"
    default_message = "The training or prediction is still being recorded; deliver again."
    default_retry_after = 2


# --- not a caller's error -------------------------------------------------------------------------
class InvalidVersionRef(ValueError):
    """A string that is not a usable Replicate version reference (R2)."""
