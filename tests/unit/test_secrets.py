"""The Replicate secret as an operator really stores it: pasted with a newline, sometimes wrong,
and rotated while functions are warm.

Values are stripped and checked when loaded; a secret that cannot work is named in one log line
(what is wrong, never the value) and every caller gets `REPLICATE_SECRET_INVALID`. The API token
and the signing secret are one secret, read through one cache: a rotation reaches both at the
same time, without a cold start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.local.functions import LocalContext, load_handler
from infra.local.template import Template
from infra.resign_event import resign
from lorapin.adapters import secrets as secrets_adapter
from lorapin.adapters.secrets import load_replicate_secrets
from lorapin.adapters.settings import Settings
from lorapin.domain.credentials import parse_replicate_secret
from lorapin.domain.errors import ReplicateSecretInvalid
from lorapin.runtime import Runtime
from tests.fixtures import UNIT_SIGNING_SECRET

TOKEN = "r8_0123456789abcdefABCDEF0123456789abcde"
EVENTS = Path(__file__).resolve().parents[2] / "events"
OTHER_SIGNING_SECRET = "whsec_QW5vdGhlclNpZ25pbmdLZXlGb3JUZXN0cw=="


def prediction_sample() -> dict[str, Any]:
    """A signed prediction delivery (for no generation of ours: it answers 200 `ignored_unknown`)."""
    return dict(json.loads((EVENTS / "prediction_succeeded.json").read_text(encoding="utf-8")))


def raw(token: Any = TOKEN, signing: Any = UNIT_SIGNING_SECRET) -> str:
    return json.dumps({"api_token": token, "webhook_signing_secret": signing})


# --- parsing: pure -----------------------------------------------------------------------------------
def test_a_trailing_newline_or_surrounding_spaces_are_forgiven() -> None:
    parsed = parse_replicate_secret(raw(f"{TOKEN}\n", f"  {UNIT_SIGNING_SECRET}\r\n"))
    assert parsed.api_token == TOKEN
    assert parsed.webhook_signing_secret == UNIT_SIGNING_SECRET


@pytest.mark.parametrize(("stored", "problem"), [
    ("not json", "the secret is not a JSON object"),
    (json.dumps(["r8_x"]), "the secret is not a JSON object"),
    (json.dumps({"webhook_signing_secret": UNIT_SIGNING_SECRET}), "api_token is missing"),
    (raw("  "), "api_token is missing"),
    (raw("sk-live-abc"), "api_token does not look like a Replicate token (r8_...)"),
    (raw("r8_abc def"), "api_token does not look like a Replicate token (r8_...)"),
    (raw(signing=None), "webhook_signing_secret is missing"),
    (raw(signing="whsec_not base64!"), "webhook_signing_secret is not base64 after 'whsec_'"),
    (raw(signing="whsec_"), "webhook_signing_secret is not base64 after 'whsec_'"),
])
def test_a_secret_that_cannot_work_says_which_value_is_wrong_and_never_shows_it(stored: str, problem: str) -> None:
    with pytest.raises(ReplicateSecretInvalid) as raised:
        parse_replicate_secret(stored)
    assert problem in raised.value.problems
    assert raised.value.code == "REPLICATE_SECRET_INVALID"
    for value in ("sk-live-abc", "r8_abc def", "not base64!"):
        assert value not in str(raised.value) and value not in " ".join(raised.value.problems)


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(ReplicateSecretInvalid) as raised:
        parse_replicate_secret(raw("token", "whsec_%%%"))
    assert raised.value.problems == ["api_token does not look like a Replicate token (r8_...)",
                                     "webhook_signing_secret is not base64 after 'whsec_'"]


# --- loading from Secrets Manager --------------------------------------------------------------------
def store(aws: Any, value: str) -> str:
    arn = aws.function_env["ReplicateWebhookFunction"]["REPLICATE_SECRET_ARN"]
    aws.client("secretsmanager").put_secret_value(SecretId=arn, SecretString=value)
    return str(arn)


def test_a_malformed_secret_is_logged_once_naming_the_problem_not_the_value(
        in_process_aws: Any, caplog: pytest.LogCaptureFixture) -> None:
    from lorapin.observability import logger

    arn = store(in_process_aws, raw("sk-live-abc"))
    for _ in range(3):  # three requests on a warm function
        with pytest.raises(ReplicateSecretInvalid):
            load_replicate_secrets(arn)
    records = [r for r in caplog.records if "Replicate secret" in r.getMessage()]
    assert len(records) == 1
    line = json.loads(logger.registered_formatter.format(records[0]))  # the line as CloudWatch gets it
    assert line["level"] == "ERROR"
    assert line["problems"] == ["api_token does not look like a Replicate token (r8_...)"]
    assert line["secret_arn"] == arn
    assert "sk-live-abc" not in json.dumps(line)


def test_a_signed_webhook_is_accepted_when_the_stored_secrets_carry_newlines_and_spaces(
        in_process_aws: Any) -> None:
    store(in_process_aws, raw(f"{TOKEN}\n", f"\n {UNIT_SIGNING_SECRET}\n"))
    function = Template().functions()["ReplicateWebhookFunction"]
    handler = load_handler(function, in_process_aws.function_env["ReplicateWebhookFunction"])
    response = handler(resign(prediction_sample(), UNIT_SIGNING_SECRET),
                       LocalContext("ReplicateWebhookFunction"))
    assert response["statusCode"] == 200


def test_a_malformed_signing_secret_answers_500_with_its_code_not_401(in_process_aws: Any) -> None:
    store(in_process_aws, raw(signing="whsec_%%%"))
    function = Template().functions()["ReplicateWebhookFunction"]
    handler = load_handler(function, in_process_aws.function_env["ReplicateWebhookFunction"])
    response = handler(resign(prediction_sample(), UNIT_SIGNING_SECRET),
                       LocalContext("ReplicateWebhookFunction"))
    assert response["statusCode"] == 500
    assert json.loads(response["body"])["error"]["code"] == "REPLICATE_SECRET_INVALID"


# --- rotation ----------------------------------------------------------------------------------------
class RecordingGateway:
    """Stands in for `ReplicateGateway`: remembers the token each instance was built with."""

    built: list[str] = []

    def __init__(self, api_token: str, base_url: str, **options: Any) -> None:
        _ = base_url, options
        self.api_token = api_token
        RecordingGateway.built.append(api_token)


def clock_moves_on(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Powertools' parameter cache, `seconds` later."""
    from datetime import datetime, timedelta

    from aws_lambda_powertools.utilities.parameters import base

    class Later(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.now(tz) + timedelta(seconds=seconds)

    monkeypatch.setattr(base, "datetime", Later)


@pytest.fixture
def runtime(in_process_aws: Any, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    import lorapin.adapters.replicate_gateway as gateway_module

    RecordingGateway.built = []
    monkeypatch.setattr(gateway_module, "ReplicateGateway", RecordingGateway)
    store(in_process_aws, raw(TOKEN, UNIT_SIGNING_SECRET))
    return Runtime(Settings.from_env(in_process_aws.function_env["ReplicateWebhookFunction"]))


def test_within_the_cache_age_a_rotation_is_not_seen_and_the_gateway_is_reused(in_process_aws: Any,
                                                                              runtime: Runtime) -> None:
    first = runtime.replicate
    store(in_process_aws, raw("r8_rotated", OTHER_SIGNING_SECRET))
    assert runtime.replicate is first
    assert runtime.secrets.webhook_signing_secret == UNIT_SIGNING_SECRET  # the pair stays consistent
    assert RecordingGateway.built == [TOKEN]


def test_after_the_cache_age_both_the_token_and_the_signing_secret_are_the_rotated_ones(
        in_process_aws: Any, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    assert runtime.replicate.api_token == TOKEN  # type: ignore[attr-defined]
    store(in_process_aws, raw("r8_rotated", OTHER_SIGNING_SECRET))
    clock_moves_on(monkeypatch, secrets_adapter.SECRET_MAX_AGE_SECONDS + 1)  # the cache age has passed

    assert runtime.replicate.api_token == "r8_rotated"  # type: ignore[attr-defined]
    assert runtime.secrets.webhook_signing_secret == OTHER_SIGNING_SECRET
    assert RecordingGateway.built == [TOKEN, "r8_rotated"]


def test_the_stacks_empty_secret_says_it_has_no_value_yet(in_process_aws: Any) -> None:
    """A fresh stack creates the secret without a value (README, "Deploying", fills it)."""
    arn = in_process_aws.client("secretsmanager").create_secret(Name=f"empty-{id(in_process_aws)}")["ARN"]
    with pytest.raises(ReplicateSecretInvalid) as raised:
        load_replicate_secrets(arn)
    assert raised.value.problems == [
        "the secret has no value yet, or does not exist: store the JSON (README, Deploying)"]
