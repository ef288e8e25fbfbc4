"""Domain events on the EventBridge bus (SPEC §5) and their publisher.

`PutEvents` can succeed as a call yet reject entries (`FailedEntryCount`): that is a failure too,
raised as `EventPublishFailed`, so the webhook answers 5xx and the delivery is retried (I5).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from lorapin.observability import logger

EVENT_SOURCE = "lorapin"
MODEL_VERSION_ACTIVATED = "ModelVersionActivated"
TRAINING_FAILED = "TrainingFailed"


class EventPublishFailed(Exception):
    """The bus did not take the event: the caller must make sure it is retried."""


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


DomainEvent = ModelVersionActivated | TrainingFailed


class EventsClient(Protocol):
    def put_events(self, *, Entries: list[dict[str, Any]]) -> dict[str, Any]: ...


def to_outbox(event: DomainEvent) -> dict[str, Any]:
    """The form an event is stored in, beside the state change it reports, until published.

    It keeps the correlation id of the request that caused it (a webhook-id, an API request id),
    so the consumer's logs join the producer's even when the reconciler publishes it later."""
    detail = asdict(event)
    correlation_id = logger.get_correlation_id()
    if correlation_id:
        detail["correlation_id"] = correlation_id
    return {"detail_type": event.detail_type, "detail": detail}


class EventPublisher:
    def __init__(self, client: EventsClient, bus_name: str) -> None:
        self._client = client
        self._bus_name = bus_name

    def publish(self, event: DomainEvent) -> None:
        self.publish_outbox(to_outbox(event))

    def publish_outbox(self, stored: dict[str, Any]) -> None:
        entry = {
            "Source": EVENT_SOURCE,
            "DetailType": stored["detail_type"],
            "Detail": json.dumps(stored["detail"], separators=(",", ":")),
            "EventBusName": self._bus_name,
        }
        try:
            response = self._client.put_events(Entries=[entry])
        except Exception as exc:  # botocore errors, throttling, network: all mean "not published"
            raise EventPublishFailed(f"PutEvents failed: {exc}") from exc
        if response.get("FailedEntryCount", 0):
            failed = [e for e in response.get("Entries", []) if e.get("ErrorCode")]
            raise EventPublishFailed(f"PutEvents rejected the event: {failed}")
