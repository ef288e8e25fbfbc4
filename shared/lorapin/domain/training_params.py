"""Trainer input from the photo count (REQUIREMENTS §6): one pure function, inside the trainer's ranges.

Small sets over-fit quickly, so they get fewer steps and a lower rank; larger, more varied sets
can carry more steps and capacity. The audited app sent `num_repeats`, which the trainer does
not have, and a learning rate five times below the default: both are impossible here because the
output is checked against the trainer's known inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lorapin.domain.errors import LorapinError


@dataclass(frozen=True)
class ParamsTier:
    max_images: int  # this tier applies up to and including this many photos
    steps: int
    lora_rank: int
    learning_rate: float


TIERS: tuple[ParamsTier, ...] = (
    ParamsTier(max_images=9, steps=800, lora_rank=8, learning_rate=4e-4),
    ParamsTier(max_images=19, steps=1000, lora_rank=16, learning_rate=4e-4),
    ParamsTier(max_images=39, steps=1500, lora_rank=16, learning_rate=4e-4),
    ParamsTier(max_images=99, steps=2000, lora_rank=32, learning_rate=3e-4),
    ParamsTier(max_images=200, steps=3000, lora_rank=32, learning_rate=2e-4),
)
FIXED_INPUTS: dict[str, Any] = {"batch_size": 1, "resolution": "512,768,1024", "caption_dropout_rate": 0.05,
                                "autocaption": True, "optimizer": "adamw8bit"}

# The trainer's inputs we may set, with their allowed ranges (REPLICATE_API.md); None = any value.
TRAINER_RANGES: dict[str, tuple[float, float] | None] = {
    "steps": (3, 6000), "lora_rank": (1, 128), "learning_rate": (1e-6, 1e-2), "batch_size": (1, 16),
    "caption_dropout_rate": (0, 1), "resolution": None, "autocaption": None, "autocaption_prefix": None,
    "autocaption_suffix": None, "optimizer": None, "cache_latents_to_disk": None,
    "gradient_checkpointing": None, "layers_to_optimize_regex": None,
}


class InvalidTrainingParams(LorapinError):
    status = 500  # a deployment configuration error, not the caller's
    code = "INVALID_TRAINING_PARAMS"


def training_params_for(image_count: int, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The trainer input for a set of `image_count` photos, with deployment overrides applied."""
    tier = next((t for t in TIERS if image_count <= t.max_images), TIERS[-1])
    params: dict[str, Any] = {**FIXED_INPUTS, "steps": tier.steps, "lora_rank": tier.lora_rank,
                              "learning_rate": tier.learning_rate, **(overrides or {})}
    check_trainer_inputs(params)
    return params


def check_trainer_inputs(params: dict[str, Any]) -> None:
    unknown = sorted(set(params) - set(TRAINER_RANGES))
    if unknown:
        raise InvalidTrainingParams(f"The trainer has no input(s) {', '.join(unknown)}.")
    for name, bounds in TRAINER_RANGES.items():
        if bounds is None or name not in params:
            continue
        value = params[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not bounds[0] <= value <= bounds[1]:
            raise InvalidTrainingParams(f"Trainer input {name}={value!r} is outside {bounds[0]}..{bounds[1]}.")
