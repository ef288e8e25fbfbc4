"""Applying a finished training (the webhook's and the reconciler's shared path): decide, write
under a guard, publish; a lost guard means re-read and decide again, a bounded number of times."""

from __future__ import annotations

from typing import Any

import pytest

from lorapin.adapters.guards import GuardRejected
from lorapin.adapters.repository import Repository
from lorapin.adapters.tables import TrainingItem
from lorapin.domain.completion import Outcome
from lorapin.domain.errors import EventPublishFailed, NotYetRecorded
from lorapin.domain.replicate_objects import ReplicateTraining
from lorapin.domain.versions import VersionRef
from lorapin.services import training_completion
from lorapin.services.training_completion import StateKeptChanging, TrainingCompletion
from tests.unit.conftest import Services


class RaceBeforeActivation(Repository):
    """The repository, but before each of its first `races` activations another writer gets in:
    `race()` runs first, then the activation's guard is checked against what it left."""

    def __init__(self, inner: Repository, race: Any, races: int = 1) -> None:
        self.__dict__.update(inner.__dict__)
        self._race = race
        self.races = races
        self.attempts = 0

    def apply_activation(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.attempts += 1
        if self.races > 0:
            self.races -= 1
            self._race()
        return super().apply_activation(*args, **kwargs)


def test_a_success_activates_its_version_and_publishes_one_event(services: Services) -> None:
    training = services.start_training()
    finished = services.replicate.finish_training(str(training.replicate_training_id))
    result = services.runtime.completion().apply(finished, training_id_hint=training.training_id)
    assert result.outcome is Outcome.ACTIVATED
    model = services.repository.get_model(services.user)
    assert model is not None and model.current_version is not None
    assert model.current_version.ref == finished.output["version"]
    assert model.in_flight_training_id is None  # the slot is freed in the same write
    [event] = services.bus.events("ModelVersionActivated")
    assert (event["version_ref"], event["seq"], event["training_id"]) == (finished.output["version"], 1,
                                                                          training.training_id)


def test_a_lost_guard_is_decided_again_on_what_the_winner_left(services: Services) -> None:
    # Given a finished training whose webhook and the reconciler apply it at the same moment:
    # the other one writes between our read and our write
    training = services.start_training()
    finished = services.replicate.finish_training(str(training.replicate_training_id))

    def the_other_writer() -> None:
        services.runtime.completion().apply(finished, training_id_hint=training.training_id)

    racing = RaceBeforeActivation(services.repository, the_other_writer)
    result = TrainingCompletion(racing, services.runtime.publisher).apply(finished,
                                                                          training_id_hint=training.training_id)
    # Then our write loses its guard, we read again and decide again: it is a duplicate now
    assert racing.attempts == 1  # the second decision wrote nothing to activate
    assert result.outcome is Outcome.DUPLICATE
    model = services.repository.get_model(services.user)
    assert model is not None and model.current_version is not None
    assert model.current_version.ref == finished.output["version"]
    assert len(services.bus.events("ModelVersionActivated")) == 1  # one activation, one event


def test_a_rollback_between_the_read_and_the_write_is_the_version_the_event_says_was_replaced(
        services: Services) -> None:
    # Given a second training finishing while the user rolls back to the first version, between
    # the completion's read and its write
    first = services.train()
    second = services.train()
    training = services.start_training()
    finished = services.replicate.finish_training(str(training.replicate_training_id))

    def rollback() -> None:
        services.runtime.history().rollback(services.user, first)

    racing = RaceBeforeActivation(services.repository, rollback)
    result = TrainingCompletion(racing, services.runtime.publisher).apply(finished,
                                                                          training_id_hint=training.training_id)
    # Then the activation is written once the state is read again, and names what it replaced
    assert result.outcome is Outcome.ACTIVATED and racing.attempts == 2
    activated = services.bus.events("ModelVersionActivated")[-1]
    assert activated["training_id"] == training.training_id
    assert activated["previous_version_id"] == first != second


def test_a_guard_lost_on_every_attempt_gives_up_after_the_bound(services: Services,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    training = services.start_training()
    finished = services.replicate.finish_training(str(training.replicate_training_id))
    attempts = []

    def always_lose(*_: Any, **__: Any) -> dict[str, Any]:
        attempts.append(1)
        raise GuardRejected("someone else moved the state")

    monkeypatch.setattr(services.repository, "apply_activation", always_lose)
    with pytest.raises(StateKeptChanging):
        services.runtime.completion().apply(finished, training_id_hint=training.training_id)
    assert len(attempts) == training_completion.MAX_ATTEMPTS
    assert services.bus.entries == []


def test_an_unusable_output_version_ends_the_training_failed_and_frees_the_user(services: Services) -> None:
    # Given a training that Replicate reports succeeded with the trainer's own version (R2)
    training = services.start_training()
    trainer_version = VersionRef.of(training.trainer_model, training.trainer_version).ref
    finished = services.replicate.finish_training(str(training.replicate_training_id),
                                                  output={"version": trainer_version})
    # When it is applied
    result = services.runtime.completion().apply(finished, training_id_hint=training.training_id)
    # Then the delivery is answered `rejected` (200: Replicate need not redeliver) ...
    assert result.outcome is Outcome.REJECTED
    # ... the training ends failed with its code, no version is stored or made current ...
    stored = TrainingItem.get(training.training_id, consistent_read=True)
    assert (stored.status, stored.error_code) == ("failed", "INVALID_OUTPUT_VERSION")
    assert stored.version_id is None and stored.due_shard is None
    assert services.repository.versions_of(services.user) == []
    model = services.repository.get_model(services.user)
    assert model is not None and model.current_version is None
    # ... the user can train again, and whoever waited is told
    assert model.in_flight_training_id is None
    assert [e["training_id"] for e in services.bus.events("TrainingFailed")] == [training.training_id]
    # and the same delivery again changes nothing
    assert services.runtime.completion().apply(finished).outcome is Outcome.DUPLICATE
    assert len(services.bus.entries) == 1


def test_a_delivery_before_the_replicate_id_is_stored_asks_for_a_redelivery(services: Services) -> None:
    training = services.start_training()
    TrainingItem(training.training_id).update(actions=[TrainingItem.replicate_training_id.remove()])
    early = ReplicateTraining.parse({"id": training.replicate_training_id, "status": "succeeded"})
    with pytest.raises(NotYetRecorded) as refused:
        services.runtime.completion().apply(early, training_id_hint=training.training_id)
    assert refused.value.status == 503 and refused.value.retry_after_seconds


def test_a_duplicate_delivery_finishes_the_publication_an_earlier_one_could_not(services: Services) -> None:
    training = services.start_training()
    finished = services.replicate.finish_training(str(training.replicate_training_id))
    services.bus.reject_next()
    with pytest.raises(EventPublishFailed):  # the state is committed; the event is not out
        services.runtime.completion().apply(finished, training_id_hint=training.training_id)
    assert services.bus.entries == []
    # Replicate redelivers: the decision says "duplicate", and the pending event goes out once the
    # first delivery's lease is handed back (it was, when its publish failed)
    again = services.runtime.completion().apply(finished, training_id_hint=training.training_id)
    assert again.outcome is Outcome.DUPLICATE
    assert len(services.bus.events("ModelVersionActivated")) == 1
    assert services.runtime.completion().apply(finished).outcome is Outcome.DUPLICATE
    assert len(services.bus.events("ModelVersionActivated")) == 1


def test_a_failure_keeps_the_version_frees_the_slot_and_announces_it(services: Services) -> None:
    version = services.train()
    training = services.start_training()
    failed = services.replicate.finish_training(str(training.replicate_training_id), "failed")
    result = services.runtime.completion().apply(failed, training_id_hint=training.training_id)
    assert result.outcome is Outcome.RECORDED
    model = services.repository.get_model(services.user)
    assert model is not None and model.current_version is not None
    assert model.current_version.id == version and model.in_flight_training_id is None
    [event] = services.bus.events("TrainingFailed")
    assert (event["training_id"], event["status"], event["current_version_id"]) == (training.training_id,
                                                                                    "failed", version)
