"""Tolerant models of the objects Replicate sends (webhook bodies) and returns (GET).

The 1.0.7 client's own models reject statuses it does not know (`aborted`), so webhook bodies are
parsed here: unknown fields are ignored, unknown statuses are kept and normalised.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lorapin.domain.statuses import TrainingStatus

IN_PROGRESS_STATUSES = frozenset(TrainingStatus.in_flight())


def normalise_status(status: str) -> TrainingStatus:
    """Map Replicate's status to ours: `aborted` and any unknown terminal status count as `failed`.

    Trainings and predictions share Replicate's statuses, so `GenerationStatus` accepts the result."""
    try:
        return TrainingStatus(status)
    except ValueError:
        return TrainingStatus.FAILED


class ReplicateObject(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1, max_length=200)
    status: str = Field(min_length=1, max_length=50)
    input: dict[str, Any] | None = None
    output: Any = None
    error: Any = None
    created_at: str | None = None
    completed_at: str | None = None

    @property
    def normalised_status(self) -> TrainingStatus:
        return normalise_status(self.status)

    @property
    def is_terminal(self) -> bool:
        return self.status not in IN_PROGRESS_STATUSES

    @property
    def error_message(self) -> str | None:
        if self.error is None:
            return None if self.normalised_status == TrainingStatus.SUCCEEDED else f"training ended as {self.status}"
        return str(self.error)[:1000]


class ReplicateTraining(ReplicateObject):
    """A training: `model`/`version` are the *trainer's*, never the new destination version."""

    model: str | None = None
    version: str | None = None


class ReplicatePrediction(ReplicateObject):
    version: str | None = None

    @property
    def output_urls(self) -> list[str]:
        """Image models answer a list of URLs, sometimes a single URL."""
        if isinstance(self.output, str):
            return [self.output]
        if isinstance(self.output, list):
            return [item for item in self.output if isinstance(item, str)]
        return []
