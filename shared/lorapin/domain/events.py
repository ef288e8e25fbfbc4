"""The domain events lorapin announces on its bus (docs/REQUIREMENTS.md, "Events").

Plain records: what happened, for whom, and what the model looks like now. Storing and publishing
them is the adapters' business (`lorapin.adapters.event_bus`, `lorapin.adapters.outbox`).
"""

from __future__ import annotations

from dataclasses import dataclass

EVENT_SOURCE = "lorapin"
MODEL_VERSION_ACTIVATED = "ModelVersionActivated"
TRAINING_FAILED = "TrainingFailed"
ACCOUNT_DELETED = "AccountDeleted"


@dataclass(frozen=True, slots=True)
class ModelVersionActivated:
    user_id: str
    destination: str
    version_id: str
    version_ref: str
    trigger_word: str
    training_id: str | None
    seq: int
    previous_version_id: str | None
    reason: str
    activated_at: str

    detail_type = MODEL_VERSION_ACTIVATED


@dataclass(frozen=True, slots=True)
class TrainingFailed:
    user_id: str
    training_id: str
    status: str
    error: str | None
    current_version_id: str | None

    detail_type = TRAINING_FAILED


@dataclass(frozen=True, slots=True)
class AccountDeleted:
    """Everything lorapin kept for the user is gone; `not_deleted` lists what Replicate refused."""

    user_id: str
    destination: str | None
    deleted_at: str
    not_deleted: list[dict[str, str]]

    detail_type = ACCOUNT_DELETED


DomainEvent = ModelVersionActivated | TrainingFailed | AccountDeleted
