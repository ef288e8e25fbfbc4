"""The outbox (I5): an event stored with its state change is published once, by whoever holds its
lease; a failed publish hands the lease back; nothing is lost and nothing is sent twice."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from lorapin.adapters import outbox
from lorapin.adapters.outbox import Outbox
from lorapin.adapters.tables import ModelItem, TrainingItem
from lorapin.domain.clock import iso, utc_now
from lorapin.domain.errors import EventPublishFailed
from tests.unit.conftest import Services


def a_stored_event(services: Services) -> tuple[TrainingItem, dict[str, Any]]:
    """A training whose success was written with its event in the outbox, leased to the writer."""
    training = services.start_training()
    event: dict[str, Any] = {"detail_type": "ModelVersionActivated", "detail": {"user_id": training.user_id, "seq": 1}}
    training.update(actions=outbox.store_actions(event, TrainingItem, "t0"))
    return TrainingItem.get(training.training_id, consistent_read=True), event


def expire_lease(item: TrainingItem | ModelItem) -> None:
    item.update(actions=[type(item).publish_lease_until.set(iso(utc_now() - timedelta(seconds=1)))])


def test_the_writer_publishes_its_leased_event_once_and_the_outbox_is_emptied(services: Services) -> None:
    training, event = a_stored_event(services)
    Outbox(services.runtime.publisher).publish_leased(training, event)
    assert services.bus.events("ModelVersionActivated") == [event["detail"]]
    stored = TrainingItem.get(training.training_id, consistent_read=True)
    assert stored.pending_event is None and stored.publish_lease_until is None
    assert stored.due_shard is None and stored.due_at is None  # nothing left for the reconciler
    assert Outbox(services.runtime.publisher).publish_pending(stored) is False
    assert len(services.bus.entries) == 1


def test_a_leased_event_is_not_published_by_anyone_else_until_the_lease_lapses(services: Services) -> None:
    training, event = a_stored_event(services)
    box = Outbox(services.runtime.publisher)
    # While its writer holds the lease (it may be publishing right now), a racing duplicate or the
    # reconciler publishes nothing
    assert box.publish_pending(TrainingItem.get(training.training_id)) is False
    assert services.bus.entries == []
    # A writer that crashed never comes back: once its lease lapses, the event is claimed and sent
    expire_lease(training)
    assert box.publish_pending(TrainingItem.get(training.training_id)) is True
    assert services.bus.events() == [event["detail"]]


def test_a_failed_publish_keeps_the_event_and_hands_the_lease_back_at_once(services: Services) -> None:
    training, event = a_stored_event(services)
    box = Outbox(services.runtime.publisher)
    services.bus.reject_next()
    with pytest.raises(EventPublishFailed):
        box.publish_leased(training, event)
    stored = TrainingItem.get(training.training_id, consistent_read=True)
    assert stored.pending_event == event  # not lost
    assert stored.publish_lease_until is None  # the next try need not wait a minute
    assert box.publish_pending(stored) is True
    assert services.bus.events() == [event["detail"]]


def test_clearing_keeps_a_newer_event_that_replaced_the_published_one(services: Services) -> None:
    training, first = a_stored_event(services)
    newer = {"detail_type": "TrainingFailed", "detail": {"user_id": training.user_id}}
    training.update(actions=outbox.store_actions(newer, TrainingItem, "t0"))
    outbox.clear(training, first)
    assert TrainingItem.get(training.training_id, consistent_read=True).pending_event == newer


def test_a_models_outbox_works_the_same_way(services: Services) -> None:
    services.start_training()
    model = ModelItem.get(services.user, consistent_read=True)
    event = {"detail_type": "ModelVersionActivated", "detail": {"user_id": services.user, "reason": "rollback"}}
    model.update(actions=outbox.store_actions(event, ModelItem, "m0"))
    box = Outbox(services.runtime.publisher)
    assert box.publish_pending(ModelItem.get(services.user)) is False  # leased to its writer
    expire_lease(model)
    assert box.publish_pending(ModelItem.get(services.user)) is True
    assert ModelItem.get(services.user, consistent_read=True).pending_event is None
    assert services.bus.events() == [event["detail"]]
