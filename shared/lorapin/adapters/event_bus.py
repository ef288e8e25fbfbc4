"""Publishing domain events on the EventBridge bus.

`PutEvents` can succeed as a call yet reject entries (`FailedEntryCount`): that is a failure too,
raised as `EventPublishFailed`, so the caller makes sure the event is retried (I5).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, Protocol

from lorapin.domain.errors import EventPublishFailed
from lorapin.domain.events import EVENT_SOURCE, DomainEvent
from lorapin.observability import logger


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
