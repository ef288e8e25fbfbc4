"""Guarded writes on DynamoDB (moto in-process, tables from template.yaml)."""

from __future__ import annotations

from typing import Any

import pytest

from lorapin.adapters import outbox
from lorapin.adapters.repository import GuardRejected, Repository, TrainingStarts
from lorapin.adapters.settings import Settings
from lorapin.adapters.tables import ModelItem, PhotoSetItem, TrainingItem
from lorapin.domain.events import ModelVersionActivated
from lorapin.domain.versions import VersionRef

DEST = "acme/lorapin-user"


@pytest.fixture
def repo(in_process_aws: Any) -> Repository:
    assert in_process_aws.names["ModelsTable"]
    return Repository(Settings.from_env())


def start(repo: Repository, user: str = "u1", *, replicate_id: str | None = None) -> TrainingItem:
    model = repo.get_model(user)
    seq = int(model.last_seq) + 1 if model else 1
    training = TrainingItem(f"trn_{user}_{seq}", user_id=user, seq=seq, status="starting", trigger_word="TOK",
                            destination=DEST, trainer_model="o/t", trainer_version="b" * 64,
                            created_at=f"2026-01-01T00:00:0{seq}.000Z")
    new_model = None if model else repo.new_model(user, destination=DEST, trigger_word="TOK", status="training",
                                                  created_at="2026-01-01T00:00:00.000Z")
    TrainingStarts(repo).begin(model, training, new_model=new_model, photo_set=PhotoSetItem(
        user, training.training_id, entries=[], created_at=training.created_at))
    TrainingStarts.attach_replicate_training(training, replicate_id or f"r8_{seq}", "starting")
    stored = repo.get_training(training.training_id)
    assert stored is not None
    return stored


def event_for(training: TrainingItem, version: VersionRef, previous: str | None = None) -> ModelVersionActivated:
    return ModelVersionActivated(user_id=training.user_id, destination=DEST, version_id=version.id,
                                 version_ref=version.ref, trigger_word="TOK", training_id=training.training_id,
                                 seq=int(training.seq), previous_version_id=previous, reason="training",
                                 activated_at=f"2026-01-02T00:00:0{training.seq}.000Z")


def activate(repo: Repository, training: TrainingItem, char: str) -> VersionRef:
    """As the completion does: the event names the version the model's read says it replaces."""
    version = VersionRef.of(DEST, char * 64)
    model = repo.get_model(training.user_id)
    previous = model.current_version.id if model and model.current_version else None
    repo.apply_activation(training, version, event_for(training, version, previous),
                          in_flight=model.in_flight_training_id if model else None)
    return version


def test_activation_moves_the_model_and_records_the_version_and_its_event(repo: Repository) -> None:
    training = start(repo)
    version = activate(repo, training, "a")
    model = repo.get_model("u1")
    assert model is not None
    assert model.current_version is not None
    assert model.current_version.ref == version.ref
    assert int(model.applied_seq) == 1
    assert model.in_flight_training_id is None  # the slot is released in the same write
    stored = repo.get_training(training.training_id)
    assert stored is not None
    assert stored.status == "succeeded"
    assert stored.pending_event is not None
    assert stored.pending_event["detail"]["version_id"] == version.id
    assert [v.version_id for v in repo.versions_of("u1")] == [version.id]


def test_a_second_training_cannot_start_while_one_is_in_flight(repo: Repository) -> None:
    start(repo)
    model = repo.get_model("u1")
    assert model is not None
    second = TrainingItem("trn_other", user_id="u1", seq=2, status="starting", trigger_word="TOK", destination=DEST,
                          trainer_model="o/t", trainer_version="b" * 64, created_at="2026-01-01T00:00:09.000Z")
    with pytest.raises(GuardRejected):
        TrainingStarts(repo).begin(model, second, photo_set=PhotoSetItem(
            second.user_id, second.training_id, entries=[], created_at=second.created_at))
    assert repo.get_training("trn_other") is None


def test_an_older_training_cannot_overwrite_a_newer_activation(repo: Repository) -> None:
    first = start(repo)
    activate(repo, first, "a")
    repo.settle_model_after_training("u1", first.training_id)
    second = start(repo)
    newest = activate(repo, second, "c")
    # A stale copy of the first training (as read before it was applied) tries again.
    first.status = "processing"
    with pytest.raises(GuardRejected):
        activate(repo, first, "e")
    model = repo.get_model("u1")
    assert model is not None
    assert model.current_version is not None
    assert model.current_version.id == newest.id


def test_rollback_pins_an_old_version_without_lowering_the_high_water_mark(repo: Repository) -> None:
    first = start(repo)
    old = activate(repo, first, "a")
    repo.settle_model_after_training("u1", first.training_id)
    second = start(repo)
    activate(repo, second, "c")
    model = repo.get_model("u1")
    assert model is not None
    version = repo.get_version("u1", old.id)
    assert version is not None
    event = {"detail_type": "ModelVersionActivated", "detail": {"version_id": old.id}}
    stale = repo.get_model("u1")
    assert stale is not None
    repo.pin_version(model, version, activated_at="2026-01-03T00:00:00.000Z", event=event)
    pinned = repo.get_model("u1")
    assert pinned is not None
    assert pinned.current_version is not None
    assert pinned.current_version.id == old.id
    assert pinned.current_version.reason == "rollback"
    assert int(pinned.applied_seq) == 2
    assert pinned.pending_event == event  # the outbox, until published
    # a rollback prepared from a stale read of the model is refused, not silently applied
    with pytest.raises(GuardRejected):
        repo.pin_version(stale, version, activated_at="2026-01-04T00:00:00.000Z", event=event)
    assert outbox.claim(ModelItem("u1")) is None  # leased to the rollback that stored it
    outbox.clear(ModelItem("u1"), event)
    cleared = repo.get_model("u1")
    assert cleared is not None and cleared.pending_event is None


def test_settling_frees_the_slot_only_for_the_training_that_holds_it(repo: Repository) -> None:
    training = start(repo)
    repo.settle_model_after_training("u1", "trn_someone_else")
    model = repo.get_model("u1")
    assert model is not None
    assert model.in_flight_training_id == training.training_id
    repo.settle_model_after_training("u1", training.training_id)
    model = repo.get_model("u1")
    assert model is not None
    assert model.in_flight_training_id is None
    assert model.status == "failed"  # no version ever activated and nothing in flight


def test_activation_is_refused_when_the_slot_changed_since_it_was_read(repo: Repository) -> None:
    training = start(repo)
    version = VersionRef.of(DEST, "d" * 64)
    with pytest.raises(GuardRejected):
        repo.apply_activation(training, version, event_for(training, version), in_flight="trn_someone_else")
    model = repo.get_model("u1")
    assert model is not None and model.current_version is None
    assert model.in_flight_training_id == training.training_id


def test_one_caller_at_a_time_holds_the_outbox_lease(repo: Repository) -> None:
    training = start(repo)
    activate(repo, training, "e")  # the activating write leases the outbox to its writer
    item = TrainingItem(training.training_id)
    assert outbox.claim(item) is None  # a racing duplicate leaves it alone
    outbox.release(item)  # the writer could not publish
    claimed = outbox.claim(TrainingItem(training.training_id))
    assert claimed is not None and claimed["detail_type"] == "ModelVersionActivated"
    assert outbox.claim(TrainingItem(training.training_id)) is None
    outbox.clear(TrainingItem(training.training_id), claimed)
    outbox.release(TrainingItem(training.training_id))
    assert outbox.claim(TrainingItem(training.training_id)) is None  # nothing left to publish
    stored = repo.get_training(training.training_id)
    assert stored is not None and stored.pending_event is None and stored.due_shard is None
