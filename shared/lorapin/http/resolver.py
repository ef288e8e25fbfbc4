"""The HTTP side shared by every function: one resolver set-up, every error mapped to a response
in one place, and the caller taken from the JWT's `sub` claim.

`lorapin.domain.errors` says what each error means (code, status); this module says how any
error becomes a response: `error_response` for ours, `as_lorapin_error` for the few foreign
exceptions a request can raise (request validation, AWS faults).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

from lorapin.domain.errors import (
    DependencyUnavailable,
    InvalidRequest,
    LorapinError,
    MalformedBody,
    RouteNotFound,
    Unauthenticated,
    UnsupportedMediaType,
)
from lorapin.observability import logger

JsonResponse = Response[dict[str, Any]]
AWS_FAILURES: tuple[type[Exception], ...] = (ClientError, BotoCoreError, PynamoDBException)
FOREIGN_ERRORS: tuple[type[Exception], ...] = (RequestUnsupportedContentType, UnicodeDecodeError,
                                               RequestValidationError, *AWS_FAILURES)


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JsonResponse:
    """A JSON answer; the resolver serialises the body (validated against the route's annotation)."""
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON,
                    body=json.loads(json.dumps(body, default=str)), headers=headers)


def error_response(error: LorapinError) -> JsonResponse:
    """The one shape of every error answer, with `Retry-After` when trying again will help."""
    if error.status >= 500:
        logger.warning("dependency failure", extra={"code": error.code, "reason": str(error)})
    return json_response(error.status, error.to_body(), error.headers() or None)


def as_lorapin_error(error: Exception) -> LorapinError:
    """The caller-visible meaning of an exception raised outside our own code."""
    if isinstance(error, LorapinError):
        return error
    if isinstance(error, RequestUnsupportedContentType):
        return UnsupportedMediaType()
    if isinstance(error, UnicodeDecodeError):
        return MalformedBody()
    if isinstance(error, RequestValidationError):
        return InvalidRequest.from_fields(_validation_details(error.errors()))
    if isinstance(error, AWS_FAILURES):
        # DynamoDB throttling, S3 or EventBridge faults: nothing half-done is acknowledged, and a
        # 503 makes Replicate redeliver (webhooks) or tells the frontend to retry.
        logger.exception("AWS dependency failed", extra={"error_type": type(error).__name__})
        return DependencyUnavailable()
    raise TypeError(f"{type(error).__name__} is not an error the API answers") from error


def _validation_details(errors: Any) -> list[dict[str, Any]]:
    return [{"field": ".".join(str(part) for part in e.get("loc", ()) if part != "body"),
             "message": str(e.get("msg", "invalid")), "type": str(e.get("type", ""))} for e in errors]


def _json_body(text: str) -> Any:
    """Powertools' body parser, with too-deep nesting reported as invalid JSON instead of a crash."""
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise json.JSONDecodeError("JSON nested too deeply", text, 0) from exc


JSON_MEDIA_TYPE = "application/json"


def is_json_content_type(value: str | None) -> bool:
    """Whether a body of this content type is ours to parse: JSON, in UTF-8 (or no type at all)."""
    if not value:
        return True
    media_type, _, parameters = value.partition(";")
    if media_type.strip().lower() != JSON_MEDIA_TYPE:
        return False
    for parameter in filter(None, (p.strip() for p in parameters.split(";"))):
        name, _, charset = parameter.partition("=")
        if name.strip().lower() != "charset" or charset.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


class LorapinResolver(APIGatewayHttpResolver):
    """Powertools' resolver, refusing any body that is not JSON before its validation parses it
    (it would read a form, or fail on a multipart type without a boundary, with a 500)."""

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        if event.get("body") and not is_json_content_type(headers.get("content-type")):
            error = UnsupportedMediaType()
            return {"statusCode": error.status, "headers": {"Content-Type": JSON_MEDIA_TYPE},
                    "body": json.dumps(error.to_body()), "isBase64Encoded": False}
        return super().resolve(event, context)


def build_resolver(*, validation: bool = True) -> APIGatewayHttpResolver:
    app = LorapinResolver(enable_validation=validation, json_body_deserializer=_json_body)

    @app.exception_handler([LorapinError, *FOREIGN_ERRORS])
    def _any_error(error: Exception) -> JsonResponse:
        return error_response(as_lorapin_error(error))

    @app.not_found
    def _no_route(_: Exception) -> JsonResponse:
        return error_response(RouteNotFound())

    return app


def caller_id(app: APIGatewayHttpResolver | Router) -> str:
    """The user is the token's `sub` (put there by API Gateway's JWT authorizer), never a body field."""
    try:
        claims = app.current_event.request_context.authorizer.jwt_claim or {}  # type: ignore[attr-defined]
    except (AttributeError, KeyError, TypeError):
        claims = {}
    sub = claims.get("sub") if isinstance(claims, dict) else None
    if not isinstance(sub, str) or not sub:
        raise Unauthenticated()
    return sub
