"""S3's checks of a browser form upload (presigned POST), which moto's server does not make.

S3 refuses a POST upload whose policy is expired, whose signature is wrong, whose fields break a
condition, or whose file is outside `content-length-range`, and stores nothing
(https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html). The local
stack's moto server runs this in front of S3, so that "a 5 GB photo is refused by S3" is something
the local stack does, not only something the policy says. The signature is checked against the
local stack's credentials (SigV2 `signature`, or SigV4 `x-amz-signature`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from werkzeug.formparser import parse_form_data

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class PolicyRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def enforce_post_policy(app: WsgiApp, secret_key: str) -> WsgiApp:
    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        content_type = str(environ.get("CONTENT_TYPE", ""))
        if environ.get("REQUEST_METHOD") != "POST" or not content_type.startswith("multipart/form-data"):
            return app(environ, start_response)
        try:
            check_upload(environ, secret_key)
        except PolicyRefused as refused:
            body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{refused.code}</Code>"
                    f"<Message>{refused.message}</Message></Error>").encode()
            start_response(f"{refused.status} {refused.code}", [("Content-Type", "application/xml"),
                                                                 ("Content-Length", str(len(body)))])
            return [body]
        return app(environ, start_response)

    return wrapped


def check_upload(environ: dict[str, Any], secret_key: str) -> None:
    """Raise `PolicyRefused` as S3 would; otherwise leave the request as it came (body put back)."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(raw)
    form_environ = {**environ, "wsgi.input": io.BytesIO(raw)}
    _, form, files = parse_form_data(form_environ)
    fields = {key.lower(): value for key, value in form.items()}
    if "policy" not in fields:
        return  # not a policy upload: nothing for S3 to check here
    policy_b64 = fields["policy"]
    _check_signature(fields, policy_b64, secret_key)
    policy = json.loads(base64.b64decode(policy_b64))
    expiration = datetime.fromisoformat(str(policy["expiration"]).replace("Z", "+00:00"))
    if expiration < datetime.now(UTC):
        raise PolicyRefused(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    file = files.get("file")
    size = len(file.read()) if file is not None else 0
    bucket = str(environ.get("PATH_INFO", "/")).strip("/").split("/", 1)[0]
    values = {**fields, "bucket": bucket}
    for condition in policy.get("conditions", []):
        if isinstance(condition, dict):
            for name, expected in condition.items():
                if values.get(name.lower()) != expected:
                    raise PolicyRefused(403, "AccessDenied",
                                        f"Invalid according to Policy: Policy Condition failed: [\"eq\", \"${name}\"]")
        elif condition[0] == "content-length-range":
            low, high = int(condition[1]), int(condition[2])
            if size > high:
                raise PolicyRefused(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
            if size < low:
                raise PolicyRefused(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum size")
        elif not _holds(condition, values):
            raise PolicyRefused(403, "AccessDenied", f"Invalid according to Policy: Policy Condition failed: "
                                                     f"{condition}")


def _holds(condition: list[Any], values: dict[str, str]) -> bool:
    operator, name, expected = condition[0], str(condition[1]).lstrip("$").lower(), str(condition[2])
    if operator == "eq":
        return values.get(name) == expected
    if operator == "starts-with":
        return str(values.get(name, "")).startswith(expected)
    return True


def _check_signature(fields: dict[str, str], policy_b64: str, secret_key: str) -> None:
    if "x-amz-signature" in fields:  # SigV4: key derived from the credential's date, region and service
        _, date, region, service, _ = fields["x-amz-credential"].split("/")
        key = f"AWS4{secret_key}".encode()
        for part in (date, region, service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, policy_b64.encode(), hashlib.sha256).hexdigest()
        given = fields["x-amz-signature"]
    else:  # SigV2
        expected = base64.b64encode(hmac.new(secret_key.encode(), policy_b64.encode(), hashlib.sha1).digest()).decode()
        given = fields.get("signature", "")
    if not hmac.compare_digest(expected, given):
        raise PolicyRefused(403, "SignatureDoesNotMatch",
                            "The request signature we calculated does not match the signature you provided.")
