"""The HTTP side shared by every function: one resolver set-up, errors mapped in one place to
`{"error": {"code", "message", "details"}}`, and the caller taken from the JWT's `sub` claim."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

from lorapin.errors import BadRequest, LorapinError, Unauthorized, UpstreamUnavailable
from lorapin.events import EventPublishFailed
from lorapin.observability import logger

JsonResponse = Response[dict[str, Any]]
_AWS_FAILURES: list[type[Exception]] = [ClientError, BotoCoreError, PynamoDBException]


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JsonResponse:
    """A JSON answer; the resolver serialises the body (validated against the route's annotation)."""
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON,
                    body=json.loads(json.dumps(body, default=str)), headers=headers)


def error_response(error: LorapinError) -> JsonResponse:
    headers = None
    if isinstance(error, UpstreamUnavailable):
        headers = {"Retry-After": str(error.retry_after_seconds)}
    return json_response(error.status, error.to_body(), headers)


def _validation_details(errors: Any) -> list[dict[str, Any]]:
    return [{"field": ".".join(str(part) for part in e.get("loc", ()) if part != "body"),
             "message": str(e.get("msg", "invalid")), "type": str(e.get("type", ""))} for e in errors]


def _json_body(text: str) -> Any:
    """Powertools' body parser, with too-deep nesting reported as invalid JSON instead of a crash."""
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise json.JSONDecodeError("JSON nested too deeply", text, 0) from exc


def build_resolver(*, validation: bool = True) -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=validation, json_body_deserializer=_json_body)

    @app.exception_handler(RequestUnsupportedContentType)
    def _unsupported_media(_: RequestUnsupportedContentType) -> JsonResponse:
        return error_response(_UnsupportedMediaType("Send the body as JSON (content-type: application/json)."))

    @app.exception_handler(UnicodeDecodeError)
    def _not_utf8(_: UnicodeDecodeError) -> JsonResponse:
        return error_response(BadRequest("The body is not UTF-8 encoded JSON.", code="MALFORMED_BODY"))

    @app.exception_handler(LorapinError)
    def _domain_error(error: LorapinError) -> JsonResponse:
        if error.status >= 500:
            logger.warning("dependency failure", extra={"code": error.code, "reason": error.message})
        return error_response(error)

    @app.exception_handler(EventPublishFailed)
    def _not_published(error: EventPublishFailed) -> JsonResponse:
        logger.error("event not published", extra={"error": str(error)})
        return error_response(UpstreamUnavailable("The change is saved but its event is not sent yet; retry the call.",
                                                  code="EVENT_NOT_PUBLISHED"))

    @app.exception_handler(_AWS_FAILURES)
    def _aws_unavailable(error: Exception) -> JsonResponse:
        """DynamoDB throttling, S3 or EventBridge faults: nothing half-done is acknowledged, and
        a 503 makes Replicate redeliver (webhooks) or tells the frontend to retry."""
        logger.exception("AWS dependency failed", extra={"error_type": type(error).__name__})
        return error_response(UpstreamUnavailable("A storage dependency is unavailable; retry shortly.",
                                                  code="DEPENDENCY_UNAVAILABLE", retry_after_seconds=2))

    @app.exception_handler(RequestValidationError)
    def _invalid_request(error: RequestValidationError) -> JsonResponse:
        details = _validation_details(error.errors())
        return error_response(_Invalid(details))

    @app.not_found
    def _no_route(_: Exception) -> JsonResponse:
        return error_response(_RouteNotFound("No such route."))

    return app


class _UnsupportedMediaType(LorapinError):
    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


class _Invalid(LorapinError):
    status = 422
    code = "INVALID_REQUEST"

    def __init__(self, details: list[dict[str, Any]]) -> None:
        super().__init__("The request is not valid: " + "; ".join(f"{d['field'] or 'body'}: {d['message']}"
                                                                  for d in details[:5]), details=details)


class _RouteNotFound(LorapinError):
    status = 404
    code = "ROUTE_NOT_FOUND"


def caller_id(app: APIGatewayHttpResolver) -> str:
    """The user is the token's `sub` (put there by API Gateway's JWT authorizer), never a body field."""
    try:
        claims = app.current_event.request_context.authorizer.jwt_claim or {}
    except (AttributeError, KeyError, TypeError):
        claims = {}
    sub = claims.get("sub") if isinstance(claims, dict) else None
    if not isinstance(sub, str) or not sub:
        raise Unauthorized("No authenticated user.", code="UNAUTHENTICATED")
    return sub
