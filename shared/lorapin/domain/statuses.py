"""The states of a training, a generation and a model (docs/REQUIREMENTS.md, "HTTP API").

`StrEnum`s: each member is its string, so it is stored, compared and serialised as one.
"""

from __future__ import annotations

from enum import StrEnum


class TrainingStatus(StrEnum):
    STARTING = "starting"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @classmethod
    def in_flight(cls) -> tuple[TrainingStatus, ...]:
        return (cls.STARTING, cls.PROCESSING)

    @classmethod
    def failures(cls) -> tuple[TrainingStatus, ...]:
        """Terminal states that never change the current version (I3)."""
        return (cls.FAILED, cls.CANCELED)

    @property
    def is_terminal(self) -> bool:
        return self not in TrainingStatus.in_flight()


class GenerationStatus(StrEnum):
    WAITING_FOR_MODEL = "waiting_for_model"
    STARTING = "starting"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @classmethod
    def in_flight(cls) -> tuple[GenerationStatus, ...]:
        """A prediction exists (or is being created) and has not finished."""
        return (cls.STARTING, cls.PROCESSING)

    @classmethod
    def terminal(cls) -> tuple[GenerationStatus, ...]:
        return (cls.SUCCEEDED, cls.FAILED, cls.CANCELED)


class ModelStatus(StrEnum):
    TRAINING = "training"  # no version yet; the first training runs
    READY = "ready"  # a current version exists
    FAILED = "failed"  # no version, and the trainings so far failed


class ActivationReason(StrEnum):
    TRAINING = "training"
    ROLLBACK = "rollback"
