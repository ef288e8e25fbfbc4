"""Configuration read from the environment once, at cold start, and validated.

A misconfigured function fails at once with the name of the missing variable, not on the first
request. Secrets are not here: they come from Secrets Manager (`lorapin.adapters.secrets`).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lorapin.domain.downloads import (
    DEFAULT_ALLOWED_SOURCES,
    DEFAULT_MAX_BYTES,
    DEFAULT_TIMEOUT_SECONDS,
    DownloadPolicy,
)
from lorapin.domain.versions import ModelName, is_version_id


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    models_table: str = Field(alias="MODELS_TABLE_NAME", min_length=3)
    trainings_table: str = Field(alias="TRAININGS_TABLE_NAME", min_length=3)
    versions_table: str = Field(alias="VERSIONS_TABLE_NAME", min_length=3)
    generations_table: str = Field(alias="GENERATIONS_TABLE_NAME", min_length=3)
    state_table: str = Field(alias="STATE_TABLE_NAME", min_length=3)
    photos_table: str = Field(alias="PHOTOS_TABLE_NAME", min_length=3)
    photo_sets_table: str = Field(alias="PHOTO_SETS_TABLE_NAME", min_length=3)
    # The functions the training API invokes: the photo inspector (photos not inspected yet) and the
    # training submitter (the zip and the Replicate call, after the 202). Empty where not invoked.
    photo_inspector_function: str = Field(alias="PHOTO_INSPECTOR_FUNCTION", default="")
    training_submit_function: str = Field(alias="TRAINING_SUBMIT_FUNCTION", default="")
    in_flight_shards: int = Field(alias="IN_FLIGHT_SHARDS", default=16, ge=1, le=256)
    replicate_timeout_seconds: float = Field(alias="REPLICATE_TIMEOUT_SECONDS", default=10.0, gt=0, le=60)
    reconcile_time_budget_seconds: float = Field(alias="RECONCILE_TIME_BUDGET_SECONDS", default=90.0, gt=0)
    reconcile_call_budget: int = Field(alias="RECONCILE_CALL_BUDGET", default=300, ge=1)
    generations_per_minute: int = Field(alias="GENERATIONS_PER_MINUTE", default=20, ge=1)
    generations_in_flight: int = Field(alias="GENERATIONS_IN_FLIGHT", default=50, ge=1)
    reconcile_drift_checks: int = Field(alias="RECONCILE_DRIFT_CHECKS", default=100, ge=0)
    clock: str = Field(alias="LORAPIN_CLOCK", default="system")
    event_bus: str = Field(alias="EVENT_BUS_NAME", min_length=1)
    media_bucket: str = Field(alias="MEDIA_BUCKET_NAME", min_length=3)
    replicate_secret_arn: str = Field(alias="REPLICATE_SECRET_ARN", min_length=1)
    replicate_base_url: str = Field(alias="REPLICATE_BASE_URL", default="https://api.replicate.com")
    replicate_owner: str = Field(alias="REPLICATE_OWNER", min_length=1)
    trainer_model: str = Field(alias="TRAINER_MODEL", default="ostris/flux-dev-lora-trainer")
    trainer_version: str = Field(alias="TRAINER_VERSION")
    public_api_url: str = Field(alias="PUBLIC_API_URL", default="")
    api_url_parameter: str = Field(alias="API_URL_PARAMETER", default="")
    training_params_overrides: dict[str, Any] = Field(alias="TRAINING_PARAMS_OVERRIDES", default_factory=dict)
    aws_endpoint_url: str | None = Field(alias="AWS_ENDPOINT_URL", default=None)
    aws_region: str = Field(alias="AWS_REGION", default="us-east-1")
    # Where prediction outputs may be downloaded from (lorapin.domain.downloads), and how much.
    download_allowed_hosts: str = Field(alias="DOWNLOAD_ALLOWED_HOSTS", default=DEFAULT_ALLOWED_SOURCES)
    download_max_bytes: int = Field(alias="DOWNLOAD_MAX_BYTES", default=DEFAULT_MAX_BYTES, gt=0)
    download_timeout_seconds: float = Field(alias="DOWNLOAD_TIMEOUT_SECONDS", default=DEFAULT_TIMEOUT_SECONDS, gt=0)

    @field_validator("trainer_model")
    @classmethod
    def _trainer_model(cls, value: str) -> str:
        ModelName.parse(value)
        return value

    @field_validator("trainer_version")
    @classmethod
    def _trainer_version(cls, value: str) -> str:
        if not is_version_id(value):
            raise ValueError("TRAINER_VERSION must be a 64-character version id")
        return value

    @field_validator("training_params_overrides", mode="before")
    @classmethod
    def _overrides(cls, value: Any) -> Any:
        """Checked at cold start against the trainer's inputs, not at the first training."""
        from lorapin.domain.training_params import InvalidTrainingParams, check_trainer_inputs

        if isinstance(value, str):
            value = json.loads(value or "{}")
        if not isinstance(value, dict):
            raise ValueError("TRAINING_PARAMS_OVERRIDES must be a JSON object")
        try:
            check_trainer_inputs(value)
        except InvalidTrainingParams as exc:
            raise ValueError(exc.message) from exc
        return value

    @field_validator("clock")
    @classmethod
    def _clock(cls, value: str) -> str:
        from lorapin.domain.clock import Clock

        Clock.parse(value)
        return value

    @field_validator("public_api_url")
    @classmethod
    def _public_api_url(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("download_allowed_hosts")
    @classmethod
    def _download_allowed_hosts(cls, value: str) -> str:
        DownloadPolicy.from_allow_list(value)  # a list that cannot be understood fails at cold start
        return value

    def download_policy(self) -> DownloadPolicy:
        return DownloadPolicy.from_allow_list(self.download_allowed_hosts, max_bytes=self.download_max_bytes,
                                              timeout_seconds=self.download_timeout_seconds)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        env.setdefault("AWS_REGION", env.get("AWS_DEFAULT_REGION", "us-east-1"))
        present = {key: value for key, value in env.items() if key in _ALIASES}
        try:
            return cls.model_validate(present)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise RuntimeError(f"lorapin is misconfigured: {problems}") from exc


_ALIASES = {field.alias for field in Settings.model_fields.values() if field.alias}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cold start). Tests call `get_settings.cache_clear()`."""
    return Settings.from_env()
