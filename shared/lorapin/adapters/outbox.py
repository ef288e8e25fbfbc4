"""The outbox (I5): an event is stored in the same write as the state change it reports, then
published; until `PutEvents` accepts it, it stays beside that state (`pending_event`).

One publisher at a time: the write that stores an event leases it to its writer
(`publish_lease_until`), anyone else (a racing duplicate, the reconciler) must claim an absent or
expired lease first, and a failed publish hands the lease back so the next try need not wait.
Trainings (webhook outcomes) and models (rollbacks) use the same mechanism.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from lorapin.adapters.event_bus import EventPublisher
from lorapin.adapters.guards import write_if
from lorapin.adapters.tables import ModelItem, TrainingItem
from lorapin.domain.clock import iso, now_iso
from lorapin.domain.errors import EventPublishFailed

LEASE = timedelta(seconds=60)  # longer than any function's timeout: a crashed holder's lease lapses

OutboxItem = ModelItem | TrainingItem


def lease_until(moment: str) -> str:
    return iso(datetime.fromisoformat(moment) + LEASE)


def store_actions(event: dict[str, Any], item_class: type[OutboxItem]) -> list[Any]:
    """Update actions that put `event` in the outbox, leased to the writer."""
    return [item_class.pending_event.set(event), item_class.publish_lease_until.set(lease_until(now_iso()))]


def claim(item: OutboxItem) -> dict[str, Any] | None:
    """Take the lease of `item`'s outbox: its event, or None when there is none or it is leased."""
    cls, now = type(item), now_iso()
    claimed = write_if(lambda: item.update(  # PynamoDB reads the item back (ALL_NEW) into `item`
        actions=[cls.publish_lease_until.set(lease_until(now))],
        condition=cls.pending_event.exists()
        & (cls.publish_lease_until.does_not_exist() | (cls.publish_lease_until < now))))
    if not claimed:
        return None
    event: dict[str, Any] | None = item.pending_event
    return event


def release(item: OutboxItem) -> None:
    """Publishing failed: let the next delivery or the reconciler try at once."""
    cls = type(item)
    write_if(lambda: item.update(actions=[cls.publish_lease_until.remove()], condition=cls.pending_event.exists()))


def clear(item: OutboxItem, event: dict[str, Any]) -> None:
    """The event is published: empty the outbox, unless a newer event has replaced it there."""
    cls = type(item)
    actions: list[Any] = [cls.pending_event.remove(), cls.publish_lease_until.remove()]
    if isinstance(item, TrainingItem):
        actions.append(TrainingItem.active_shard.remove())  # off the reconciler's index
    write_if(lambda: item.update(actions=actions, condition=cls.pending_event == event))


class Outbox:
    def __init__(self, publisher: EventPublisher) -> None:
        self._publisher = publisher

    def publish_leased(self, item: OutboxItem, event: dict[str, Any]) -> None:
        """Publish an event whose lease we hold (we just stored it, or claimed it)."""
        try:
            self._publisher.publish_outbox(event)
        except EventPublishFailed:
            release(item)
            raise
        clear(item, event)

    def publish_pending(self, item: OutboxItem) -> bool:
        """Publish what `item`'s outbox holds, if nobody else is; whether we did."""
        event = claim(item)
        if event is None:
            return False
        self.publish_leased(item, event)
        return True
