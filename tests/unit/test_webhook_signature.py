"""Standard Webhooks verification over the raw body."""

from __future__ import annotations

import base64
import json
import time

import pytest

from lorapin.http.webhook_signature import InvalidWebhookSignature, raw_body_of, sign_webhook, verify_webhook

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY = json.dumps({"id": "abc", "status": "succeeded", "output": {"version": "a/b:" + "c" * 64}})


def signed(body: str = BODY, *, at: int | None = None, secret: str = SECRET) -> dict[str, str]:
    return sign_webhook(body, secret, webhook_id="msg_1", timestamp=int(time.time()) if at is None else at)


def test_the_published_test_vector_signs_as_documented() -> None:
    headers = sign_webhook('{"test": 2432232314}', SECRET, webhook_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
                           timestamp=1614265330)
    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_a_valid_delivery_is_accepted_and_its_id_returned() -> None:
    assert verify_webhook(BODY, signed(), SECRET) == "msg_1"


def test_header_names_are_case_insensitive() -> None:
    headers = {key.upper(): value for key, value in signed().items()}
    assert verify_webhook(BODY, headers, SECRET) == "msg_1"


def test_wrong_secret_is_rejected() -> None:
    other = "whsec_" + base64.b64encode(b"another-secret-of-24-byte").decode()
    with pytest.raises(InvalidWebhookSignature):
        verify_webhook(BODY, signed(secret=other), SECRET)


@pytest.mark.parametrize("offset", [-301, -3600, 301, 3600])
def test_stale_and_future_timestamps_are_rejected(offset: int) -> None:
    with pytest.raises(InvalidWebhookSignature, match=r"too (old|new)"):
        verify_webhook(BODY, signed(at=int(time.time()) + offset), SECRET)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_headers_are_rejected(missing: str) -> None:
    headers = signed()
    del headers[missing]
    with pytest.raises(InvalidWebhookSignature, match="missing"):
        verify_webhook(BODY, headers, SECRET)


def test_any_of_several_signatures_may_match() -> None:
    headers = signed()
    headers["webhook-signature"] = f"v1,{base64.b64encode(b'x' * 32).decode()} {headers['webhook-signature']}"
    assert verify_webhook(BODY, headers, SECRET) == "msg_1"


@pytest.mark.parametrize("signature", ["garbage", "v1,###", "v2,abc", "", "v1,"])
def test_malformed_signatures_are_rejected_not_crashing(signature: str) -> None:
    headers = signed()
    headers["webhook-signature"] = signature
    with pytest.raises(InvalidWebhookSignature):
        verify_webhook(BODY, headers, SECRET)


def test_a_reserialised_body_no_longer_verifies() -> None:
    headers = signed()
    reserialised = json.dumps(json.loads(BODY), indent=2)
    with pytest.raises(InvalidWebhookSignature):
        verify_webhook(reserialised, headers, SECRET)


def test_a_base64_body_from_api_gateway_is_verified_after_decoding() -> None:
    encoded = base64.b64encode(BODY.encode()).decode()
    assert verify_webhook(raw_body_of(encoded, True), signed(), SECRET) == "msg_1"
    with pytest.raises(InvalidWebhookSignature):
        verify_webhook(encoded, signed(), SECRET)  # verifying the encoded text itself must fail
    with pytest.raises(InvalidWebhookSignature):
        raw_body_of("%%%not-base64", True)
