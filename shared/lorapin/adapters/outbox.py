"""The outbox (I5): an event is stored in the same write as the state change it reports, then
published; until `PutEvents` accepts it, it stays beside that state (`pending_event`).

One publisher at a time: the write that stores an event leases it to its writer
(`publish_lease_until`), anyone else (a racing duplicate, the reconciler) must claim an absent or
expired lease first, and a failed publish hands the lease back so the next try need not wait.
Trainings (webhook outcomes) and models (rollbacks) use the same mechanism.

Once published, an event is cleared from its outbox. The activating webhook leaves that clear to
the event's own consumer (`acknowledge_activation`, one conditional write in the generation
function) so that its path stays three requests; if no receipt comes before the lease lapses, the
reconciler publishes the event again (consumers tolerate duplicates, I5) and clears it itself.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from lorapin.adapters.event_bus import EventPublisher
from lorapin.adapters.guards import write_if
from lorapin.adapters.tables import ModelItem, TrainingItem
from lorapin.domain.clock import iso, now_iso, processing_time
from lorapin.domain.errors import EventPublishFailed

LEASE = timedelta(seconds=60)  # real time, longer than any function's timeout: a crashed holder's lease lapses

OutboxItem = ModelItem | TrainingItem


def lease_until(moment: str) -> str:
    return iso(datetime.fromisoformat(moment) + processing_time(LEASE))


def store_actions(event: dict[str, Any], item_class: type[OutboxItem], due_shard: str) -> list[Any]:
    """Update actions that put `event` in the outbox, leased to the writer. The item is on the
    reconciler's schedule from the moment the lease lapses, in case its writer never publishes."""
    lease = lease_until(now_iso())
    return [item_class.pending_event.set(event), item_class.publish_lease_until.set(lease),
            item_class.due_shard.set(due_shard), item_class.due_at.set(lease)]


def claim(item: OutboxItem) -> dict[str, Any] | None:
    """Take the lease of `item`'s outbox: its event, or None when there is none or it is leased."""
    cls, now = type(item), now_iso()
    lease = lease_until(now)
    claimed = write_if(lambda: item.update(  # PynamoDB reads the item back (ALL_NEW) into `item`
        actions=[cls.publish_lease_until.set(lease), cls.due_at.set(lease)],
        condition=cls.pending_event.exists()
        & (cls.publish_lease_until.does_not_exist() | (cls.publish_lease_until < now))))
    if not claimed:
        return None
    event: dict[str, Any] | None = item.pending_event
    return event


def release(item: OutboxItem) -> None:
    """Publishing failed: let the next delivery or the reconciler try at once."""
    cls = type(item)
    write_if(lambda: item.update(actions=[cls.publish_lease_until.remove(), cls.due_at.set(now_iso())],
                                 condition=cls.pending_event.exists()))


def clear(item: OutboxItem, event: dict[str, Any]) -> None:
    """The event is published: empty the outbox and take the item off the reconciler's schedule,
    unless a newer event has replaced it there."""
    cls = type(item)
    actions: list[Any] = [cls.pending_event.remove(), cls.publish_lease_until.remove(), cls.due_shard.remove(),
                          cls.due_at.remove()]
    write_if(lambda: item.update(actions=actions, condition=cls.pending_event == event))


class Outbox:
    def __init__(self, publisher: EventPublisher) -> None:
        self._publisher = publisher

    @property
    def publisher(self) -> EventPublisher:
        return self._publisher

    def publish_leased(self, item: OutboxItem, event: dict[str, Any]) -> None:
        """Publish an event whose lease we hold (we just stored it, or claimed it)."""
        try:
            self._publisher.publish_outbox(event)
        except EventPublishFailed:
            release(item)
            raise
        clear(item, event)

    def publish_awaiting_receipt(self, item: OutboxItem, event: dict[str, Any]) -> None:
        """Publish an event whose lease we hold and leave it in the outbox until its consumer
        acknowledges it (or the lease lapses and the reconciler publishes it again)."""
        try:
            self._publisher.publish_outbox(event)
        except EventPublishFailed:
            release(item)
            raise

    def publish_pending(self, item: OutboxItem) -> bool:
        """Publish what `item`'s outbox holds, if nobody else is; whether we did."""
        event = claim(item)
        if event is None:
            return False
        self.publish_leased(item, event)
        return True


def acknowledge_activation(training_id: str, version_id: str) -> bool:
    """The consumer of a training's `ModelVersionActivated` has it: clear that training's outbox if
    it still holds this activation (a later event, or none, is left alone). Whether it cleared."""
    from lorapin.domain.statuses import TrainingStatus

    item = TrainingItem(training_id)
    return write_if(lambda: item.update(
        actions=[TrainingItem.pending_event.remove(), TrainingItem.publish_lease_until.remove(),
                 TrainingItem.due_shard.remove(), TrainingItem.due_at.remove()],
        condition=TrainingItem.pending_event.exists() & (TrainingItem.status == TrainingStatus.SUCCEEDED)
        & (TrainingItem.version_id == version_id)))
