"""Replicate's API token and webhook signing secret, from Secrets Manager through Powertools
Parameters (cached, so a warm function does not call Secrets Manager on every request)."""

from __future__ import annotations

from dataclasses import dataclass

SECRET_MAX_AGE_SECONDS = 300


@dataclass(frozen=True, slots=True)
class ReplicateSecrets:
    api_token: str
    webhook_signing_secret: str

    def __repr__(self) -> str:  # never print a secret, even by accident
        return "ReplicateSecrets(api_token=***, webhook_signing_secret=***)"


def load_replicate_secrets(secret_arn: str) -> ReplicateSecrets:
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(secret_arn, transform="json", max_age=SECRET_MAX_AGE_SECONDS)
    if not isinstance(value, dict):
        raise RuntimeError("the Replicate secret must be a JSON object")
    token, signing = value.get("api_token"), value.get("webhook_signing_secret")
    if not token or not signing:
        raise RuntimeError("the Replicate secret needs 'api_token' and 'webhook_signing_secret'")
    return ReplicateSecrets(api_token=str(token), webhook_signing_secret=str(signing))
