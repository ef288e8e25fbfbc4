"""The parameter function: a table by photo count, always inside the trainer's ranges."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lorapin.domain.training_params import (
    TIERS,
    TRAINER_RANGES,
    InvalidTrainingParams,
    training_params_for,
)


@given(st.integers(min_value=1, max_value=200))
def test_every_count_gets_inputs_the_trainer_knows_within_its_ranges(count: int) -> None:
    params = training_params_for(count)
    assert set(params) <= set(TRAINER_RANGES)
    assert "num_repeats" not in params
    for name, bounds in TRAINER_RANGES.items():
        if bounds and name in params:
            assert bounds[0] <= params[name] <= bounds[1]


def test_small_sets_train_shorter_and_with_a_lower_rank_than_large_ones() -> None:
    small, medium, large = training_params_for(5), training_params_for(20), training_params_for(150)
    assert small["steps"] < medium["steps"] < large["steps"]
    assert small["lora_rank"] < large["lora_rank"]


def test_the_tiers_cover_every_count_in_order() -> None:
    limits = [tier.max_images for tier in TIERS]
    assert limits == sorted(limits) and limits[-1] >= 200


def test_deployment_overrides_win_but_are_still_checked() -> None:
    assert training_params_for(20, {"steps": 1234})["steps"] == 1234
    with pytest.raises(InvalidTrainingParams, match="num_repeats"):
        training_params_for(20, {"num_repeats": 20})
    with pytest.raises(InvalidTrainingParams, match="lora_rank"):
        training_params_for(20, {"lora_rank": 512})


def test_bad_overrides_fail_at_cold_start() -> None:
    from lorapin.adapters.settings import Settings

    base = {"MODELS_TABLE_NAME": "models", "TRAININGS_TABLE_NAME": "trainings", "VERSIONS_TABLE_NAME": "versions",
            "GENERATIONS_TABLE_NAME": "generations", "EVENT_BUS_NAME": "b",
            "STATE_TABLE_NAME": "state", "PHOTOS_TABLE_NAME": "photos",
            "PHOTO_SETS_TABLE_NAME": "photo-sets",
            "MEDIA_BUCKET_NAME": "media", "REPLICATE_SECRET_ARN": "arn:secret", "REPLICATE_OWNER": "acme",
            "TRAINER_VERSION": "a" * 64}
    settings = Settings.from_env({**base, "TRAINING_PARAMS_OVERRIDES": '{"steps": 1200}'})
    assert settings.training_params_overrides == {"steps": 1200}
    with pytest.raises(RuntimeError, match=r"TRAINING_PARAMS_OVERRIDES: .*num_repeats"):
        Settings.from_env({**base, "TRAINING_PARAMS_OVERRIDES": '{"num_repeats": 20}'})
