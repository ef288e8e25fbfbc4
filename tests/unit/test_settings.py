"""Settings at cold start: every variable that is missing or unreadable is named in one error,
defaults fill the rest, and the template's own environment reads without a complaint."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lorapin.adapters.settings import Settings
from lorapin.domain.downloads import DEFAULT_ALLOWED_SOURCES, DEFAULT_MAX_BYTES

REQUIRED = {"MODELS_TABLE_NAME": "models", "TRAININGS_TABLE_NAME": "trainings", "VERSIONS_TABLE_NAME": "versions",
            "GENERATIONS_TABLE_NAME": "generations", "STATE_TABLE_NAME": "state", "PHOTOS_TABLE_NAME": "photos",
            "PHOTO_SETS_TABLE_NAME": "photo-sets", "EVENT_BUS_NAME": "bus", "MEDIA_BUCKET_NAME": "media",
            "REPLICATE_SECRET_ARN": "arn:secret", "REPLICATE_OWNER": "acme", "TRAINER_VERSION": "e" * 64}


def test_the_required_variables_alone_make_settings_with_the_defaults() -> None:
    settings = Settings.from_env({**REQUIRED, "AWS_DEFAULT_REGION": "eu-west-1"})
    assert (settings.models_table, settings.event_bus, settings.trainer_version) == ("models", "bus", "e" * 64)
    assert (settings.in_flight_shards, settings.replicate_timeout_seconds, settings.generations_per_minute) == \
        (16, 10.0, 20)
    assert settings.trainer_model == "ostris/flux-dev-lora-trainer" and settings.training_params_overrides == {}
    assert (settings.download_allowed_hosts, settings.download_max_bytes) == (DEFAULT_ALLOWED_SOURCES,
                                                                            DEFAULT_MAX_BYTES)
    assert settings.aws_region == "eu-west-1" and settings.aws_endpoint_url is None  # AWS_DEFAULT_REGION stands in


def test_values_are_read_as_their_types() -> None:
    settings = Settings.from_env({**REQUIRED, "IN_FLIGHT_SHARDS": "32", "REPLICATE_TIMEOUT_SECONDS": "2.5",
                                  "PUBLIC_API_URL": "https://api.example/", "AWS_REGION": "us-west-2",
                                  "LORAPIN_CLOCK": "accelerated:1796000000:60"})
    assert (settings.in_flight_shards, settings.replicate_timeout_seconds) == (32, 2.5)
    assert settings.public_api_url == "https://api.example" and settings.aws_region == "us-west-2"
    assert settings.clock == "accelerated:1796000000:60"


def test_every_missing_and_every_unreadable_variable_is_named_in_one_error() -> None:
    environ = {key: value for key, value in REQUIRED.items() if key not in ("MODELS_TABLE_NAME", "EVENT_BUS_NAME")}
    environ |= {"IN_FLIGHT_SHARDS": "0", "GENERATIONS_PER_MINUTE": "many", "REPLICATE_TIMEOUT_SECONDS": "90",
                "DOWNLOAD_TIMEOUT_SECONDS": "-1", "TRAINER_MODEL": "no-slash", "TRAINER_VERSION": "v1",
                "TRAINING_PARAMS_OVERRIDES": "[1]", "LORAPIN_CLOCK": "fast", "MEDIA_BUCKET_NAME": "m"}
    with pytest.raises(RuntimeError) as failed:
        Settings.from_env(environ)
    message = str(failed.value)
    assert message.startswith("lorapin is misconfigured: ")
    named = {problem.split(":")[0] for problem in message.removeprefix("lorapin is misconfigured: ").split("; ")}
    assert named == {"MODELS_TABLE_NAME", "EVENT_BUS_NAME", "IN_FLIGHT_SHARDS", "GENERATIONS_PER_MINUTE",
                     "REPLICATE_TIMEOUT_SECONDS", "DOWNLOAD_TIMEOUT_SECONDS", "TRAINER_MODEL", "TRAINER_VERSION",
                     "TRAINING_PARAMS_OVERRIDES", "LORAPIN_CLOCK", "MEDIA_BUCKET_NAME"}
    assert "MODELS_TABLE_NAME: required, not set" in message
    assert "IN_FLIGHT_SHARDS: must be at least 1" in message
    assert "GENERATIONS_PER_MINUTE: must be a whole number, not 'many'" in message
    assert "REPLICATE_TIMEOUT_SECONDS: must be at most 60" in message


@pytest.mark.parametrize(("written", "read"), [("16", 16), (" 16 ", 16), ("16.0", 16), ("+16", 16)])
def test_a_whole_number_may_be_written_as_a_cloudformation_number(written: str, read: int) -> None:
    assert Settings.from_env({**REQUIRED, "IN_FLIGHT_SHARDS": written}).in_flight_shards == read


@pytest.mark.parametrize("written", ["16.5", "1e2", "", "sixteen", "\u0661\u0666", "16.0.0"])
def test_what_is_not_a_whole_number_is_refused(written: str) -> None:
    with pytest.raises(RuntimeError, match="IN_FLIGHT_SHARDS: must be a whole number"):
        Settings.from_env({**REQUIRED, "IN_FLIGHT_SHARDS": written})


def test_settings_cannot_change_once_read() -> None:
    settings = Settings.from_env(REQUIRED)
    with pytest.raises(AttributeError):
        settings.models_table = "other"  # type: ignore[misc]


def test_reading_the_settings_imports_no_pydantic() -> None:
    """The photo inspector's init needs no other model: reading settings must not load pydantic's
    machinery (~46 ms of a cold start)."""
    program = ("import sys; from lorapin.adapters.settings import Settings; "
               f"Settings.from_env({REQUIRED!r}); print(sorted(m for m in sys.modules if m.startswith('pydantic')))")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "[]"
