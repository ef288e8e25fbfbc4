"""What a caller may ask of a generation (`POST /generations`), validated by the API's resolver.

Apart from `lorapin.services.generation`: the webhook function completes predictions through that
module, and this model would load pydantic into it (~46 ms of a cold start; README, Performance).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lorapin.services.generation import MAX_SEED

AspectRatio = Literal["1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21"]


class GenerationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=2000)
    num_outputs: int = Field(default=1, ge=1, le=4)
    aspect_ratio: AspectRatio = "1:1"
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED,
                             description="The same seed and prompt on two versions compare them like for like; "
                                         "a random one when absent")
    version_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$",
                                   description="Generate with this version of your own model (any earlier one, to "
                                               "compare); the current version when absent")
