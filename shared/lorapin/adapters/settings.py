"""Configuration read from the environment once, at cold start, and validated.

A misconfigured function fails at once, naming every variable that is missing or wrong, not on the
first request. Secrets are not here: they come from Secrets Manager (`lorapin.adapters.secrets`).

Plain dataclass fields, each naming its variable, its default and how its text is read, rather
than a pydantic model: pydantic's model machinery costs ~46 ms of a python3.12 cold start, and the
photo inspector, the function that scales out with every burst of uploads, uses no other model
(README, Performance). The readers raise ValueError; `Settings.from_env` gathers them all.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from functools import lru_cache
from typing import Any

from lorapin.domain.downloads import (
    DEFAULT_ALLOWED_SOURCES,
    DEFAULT_MAX_BYTES,
    DEFAULT_TIMEOUT_SECONDS,
    DownloadPolicy,
)
from lorapin.domain.versions import ModelName, is_version_id

Reader = Callable[[str], Any]


def text(min_length: int = 0) -> Reader:
    def read(value: str) -> str:
        if len(value) < min_length:
            raise ValueError(f"must be at least {min_length} characters long")
        return value
    return read


def whole_number(*, ge: int | None = None, le: int | None = None) -> Reader:
    def read(value: str) -> int:
        whole, _, zeros = value.strip().partition(".")  # "16.0" too, as a CloudFormation Number may be written
        try:
            if zeros.strip("0") or not whole.lstrip("+-").isascii():
                raise ValueError(value)
            number = int(whole)
        except ValueError:
            raise ValueError(f"must be a whole number, not {value!r}") from None
        if ge is not None and number < ge:
            raise ValueError(f"must be at least {ge}")
        if le is not None and number > le:
            raise ValueError(f"must be at most {le}")
        return number
    return read


def positive_number(*, le: float | None = None) -> Reader:
    def read(value: str) -> float:
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError(f"must be a number, not {value!r}") from None
        if not number > 0:  # NaN too
            raise ValueError("must be greater than 0")
        if le is not None and number > le:
            raise ValueError(f"must be at most {le:g}")
        return number
    return read


def model_name(value: str) -> str:
    ModelName.parse(value)  # InvalidVersionRef is a ValueError
    return value


def version_id(value: str) -> str:
    if not is_version_id(value):
        raise ValueError("must be a 64-character version id")
    return value


def trainer_overrides(value: str) -> dict[str, Any]:
    """Checked at cold start against the trainer's inputs, not at the first training."""
    from lorapin.domain.training_params import InvalidTrainingParams, check_trainer_inputs

    try:
        overrides = json.loads(value or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"must be a JSON object ({exc.msg})") from None
    if not isinstance(overrides, dict):
        raise ValueError("must be a JSON object")
    try:
        check_trainer_inputs(overrides)
    except InvalidTrainingParams as exc:
        raise ValueError(exc.message) from exc
    return overrides


def clock_spec(value: str) -> str:
    from lorapin.domain.clock import Clock

    Clock.parse(value)
    return value


def download_sources(value: str) -> str:
    DownloadPolicy.from_allow_list(value)  # a list that cannot be understood fails at cold start
    return value


def without_trailing_slash(value: str) -> str:
    return value.rstrip("/")


ANY_TEXT: Reader = text()


def env(name: str, read: Reader = ANY_TEXT, *, default: Any = MISSING, default_factory: Any = MISSING) -> Any:
    """A setting read from the variable `name`; without a default, the variable is required."""
    return field(default=default, default_factory=default_factory, metadata={"env": name, "read": read})


@dataclass(frozen=True, kw_only=True)
class Settings:
    models_table: str = env("MODELS_TABLE_NAME", text(min_length=3))
    trainings_table: str = env("TRAININGS_TABLE_NAME", text(min_length=3))
    versions_table: str = env("VERSIONS_TABLE_NAME", text(min_length=3))
    generations_table: str = env("GENERATIONS_TABLE_NAME", text(min_length=3))
    state_table: str = env("STATE_TABLE_NAME", text(min_length=3))
    photos_table: str = env("PHOTOS_TABLE_NAME", text(min_length=3))
    photo_sets_table: str = env("PHOTO_SETS_TABLE_NAME", text(min_length=3))
    # The functions the training API invokes: the photo inspector (photos not inspected yet) and the
    # training submitter (the zip and the Replicate call, after the 202). Empty where not invoked.
    photo_inspector_function: str = env("PHOTO_INSPECTOR_FUNCTION", default="")
    training_submit_function: str = env("TRAINING_SUBMIT_FUNCTION", default="")
    in_flight_shards: int = env("IN_FLIGHT_SHARDS", whole_number(ge=1, le=256), default=16)
    replicate_timeout_seconds: float = env("REPLICATE_TIMEOUT_SECONDS", positive_number(le=60), default=10.0)
    reconcile_time_budget_seconds: float = env("RECONCILE_TIME_BUDGET_SECONDS", positive_number(), default=90.0)
    reconcile_call_budget: int = env("RECONCILE_CALL_BUDGET", whole_number(ge=1), default=300)
    generations_per_minute: int = env("GENERATIONS_PER_MINUTE", whole_number(ge=1), default=20)
    generations_in_flight: int = env("GENERATIONS_IN_FLIGHT", whole_number(ge=1), default=50)
    reconcile_drift_checks: int = env("RECONCILE_DRIFT_CHECKS", whole_number(ge=0), default=100)
    clock: str = env("LORAPIN_CLOCK", clock_spec, default="system")
    event_bus: str = env("EVENT_BUS_NAME", text(min_length=1))
    media_bucket: str = env("MEDIA_BUCKET_NAME", text(min_length=3))
    replicate_secret_arn: str = env("REPLICATE_SECRET_ARN", text(min_length=1))
    replicate_base_url: str = env("REPLICATE_BASE_URL", default="https://api.replicate.com")
    replicate_owner: str = env("REPLICATE_OWNER", text(min_length=1))
    trainer_model: str = env("TRAINER_MODEL", model_name, default="ostris/flux-dev-lora-trainer")
    trainer_version: str = env("TRAINER_VERSION", version_id)
    public_api_url: str = env("PUBLIC_API_URL", without_trailing_slash, default="")
    api_url_parameter: str = env("API_URL_PARAMETER", default="")
    training_params_overrides: dict[str, Any] = env("TRAINING_PARAMS_OVERRIDES", trainer_overrides,
                                                    default_factory=dict)
    aws_endpoint_url: str | None = env("AWS_ENDPOINT_URL", default=None)
    aws_region: str = env("AWS_REGION", default="us-east-1")
    # Where prediction outputs may be downloaded from (lorapin.domain.downloads), and how much.
    download_allowed_hosts: str = env("DOWNLOAD_ALLOWED_HOSTS", download_sources, default=DEFAULT_ALLOWED_SOURCES)
    download_max_bytes: int = env("DOWNLOAD_MAX_BYTES", whole_number(ge=1), default=DEFAULT_MAX_BYTES)
    download_timeout_seconds: float = env("DOWNLOAD_TIMEOUT_SECONDS", positive_number(),
                                          default=DEFAULT_TIMEOUT_SECONDS)

    def download_policy(self) -> DownloadPolicy:
        return DownloadPolicy.from_allow_list(self.download_allowed_hosts, max_bytes=self.download_max_bytes,
                                              timeout_seconds=self.download_timeout_seconds)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """The settings in `environ` (the process's environment by default); RuntimeError naming
        every variable that is missing or cannot be read."""
        env_vars = dict(os.environ if environ is None else environ)
        env_vars.setdefault("AWS_REGION", env_vars.get("AWS_DEFAULT_REGION", "us-east-1"))
        values: dict[str, Any] = {}
        problems: list[str] = []
        for setting in fields(cls):
            name, read = setting.metadata["env"], setting.metadata["read"]
            if name in env_vars:
                try:
                    values[setting.name] = read(env_vars[name])
                except ValueError as exc:
                    problems.append(f"{name}: {exc}")
            elif setting.default is MISSING and setting.default_factory is MISSING:
                problems.append(f"{name}: required, not set")
        if problems:
            raise RuntimeError(f"lorapin is misconfigured: {'; '.join(problems)}")
        return cls(**values)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cold start). Tests call `get_settings.cache_clear()`."""
    return Settings.from_env()
