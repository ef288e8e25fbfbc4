"""Replicate's API token and webhook signing secret, from Secrets Manager through Powertools
Parameters (cached, so a warm function does not call Secrets Manager on every request).

Both values live in one secret and come through one cache entry, so a rotation reaches the token
and the signing secret together, `SECRET_MAX_AGE_SECONDS` after it is stored. Each value read is
checked once (`lorapin.domain.credentials`): a secret that cannot work is logged in one line that
names what is wrong, never the value, and every use raises `ReplicateSecretInvalid`.
"""

from __future__ import annotations

import threading

from lorapin.domain.credentials import ReplicateSecrets, parse_replicate_secret
from lorapin.domain.errors import ReplicateSecretInvalid
from lorapin.observability import logger

__all__ = ["SECRET_MAX_AGE_SECONDS", "ReplicateSecrets", "load_replicate_secrets"]

SECRET_MAX_AGE_SECONDS = 300
NO_VALUE_YET = "the secret has no value yet, or does not exist: store the JSON (README, Deploying)"

_checked: dict[str, tuple[str, ReplicateSecrets | ReplicateSecretInvalid]] = {}  # arn → (raw, outcome)
_lock = threading.Lock()


def load_replicate_secrets(secret_arn: str) -> ReplicateSecrets:
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters import GetParameterError

    try:
        raw = str(parameters.get_secret(secret_arn, max_age=SECRET_MAX_AGE_SECONDS))
    except GetParameterError as exc:  # Powertools wraps the SDK's error (as the exception's context)
        if _error_code(exc.__cause__ or exc.__context__) != "ResourceNotFoundException":  # a fresh stack's secret
            raise
        raw = ""
    with _lock:
        seen = _checked.get(secret_arn)
        if seen is None or seen[0] != raw:
            seen = (raw, _check(secret_arn, raw))
            _checked[secret_arn] = seen
    outcome = seen[1]
    if isinstance(outcome, ReplicateSecretInvalid):
        raise ReplicateSecretInvalid(outcome.problems)  # a fresh one: a re-raised one keeps growing its traceback
    return outcome


def _error_code(error: BaseException | None) -> str | None:
    response = getattr(error, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None


def _check(secret_arn: str, raw: str) -> ReplicateSecrets | ReplicateSecretInvalid:
    try:
        if not raw:
            raise ReplicateSecretInvalid([NO_VALUE_YET])
        return parse_replicate_secret(raw)
    except ReplicateSecretInvalid as exc:
        logger.error("the Replicate secret is not usable; fix it in Secrets Manager",
                     extra={"secret_arn": secret_arn, "problems": exc.problems})
        return exc
