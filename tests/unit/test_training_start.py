"""Starting a training cannot be half-done (issue 10, problems 5 and 6): between claiming the
user's slot and storing Replicate's id, every fault either frees the slot or adopts what Replicate
created. Photos are real JPEGs in (in-memory) S3; Replicate is the in-memory fake."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from infra.local.photos_fixture import make_photo
from lorapin.adapters.replicate_gateway import CreateOutcomeUnknown
from lorapin.domain.errors import TrainingInProgress, UpstreamUnavailable
from lorapin.services.training_start import TrainingRequest
from tests.unit.conftest import Services


def upload(services: Services, count: int = 12) -> list[str]:
    keys = []
    for seed in range(count):
        key = f"users/{services.user}/uploads/{uuid.uuid4().hex}.jpg"
        services.runtime.media.put(key, make_photo(seed), "image/jpeg")
        keys.append(key)
    return keys


def start(services: Services, keys: list[str]) -> Any:
    return services.runtime.trainings().start(services.user, TrainingRequest(image_keys=keys))


def test_problem_5_an_s3_fault_while_building_the_zip_frees_the_slot(services: Services,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: a ClientError from S3 was not in the abandon path: the slot stayed held and the
    retry answered 409 TRAINING_IN_PROGRESS for minutes."""
    keys = upload(services)
    media = services.runtime.media
    original = media.put

    def failing_put(key: str, data: bytes, content_type: str) -> None:
        if key.endswith(".zip"):
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}},
                              "PutObject")
        original(key, data, content_type)

    monkeypatch.setattr(media, "put", failing_put)
    with pytest.raises(ClientError):  # the API answers 503 DEPENDENCY_UNAVAILABLE
        start(services, keys)
    model = services.repository.get_model(services.user)
    assert model is not None and model.in_flight_training_id is None  # the user may try again at once
    [abandoned] = services.repository.trainings_of(services.user)
    assert abandoned.status == "failed" and abandoned.due_shard is None  # its event is out: nothing left to do
    assert services.replicate.trainings == {}  # nothing reached Replicate
    assert [e["training_id"] for e in services.bus.events("TrainingFailed")] == [abandoned.training_id]
    monkeypatch.setattr(media, "put", original)
    retried = start(services, keys)
    assert retried.training.status == "starting" and int(retried.training.seq) == 2


def test_problem_6_a_training_create_that_timed_out_is_adopted_and_holds_the_slot(services: Services) -> None:
    """Before: a timeout of trainings.create was treated as "not created": the slot was freed
    while Replicate trained, a second training could start, and drift followed."""
    keys = upload(services)
    services.replicate.create_then_time_out("create_training")
    started = start(services, keys)
    [created] = services.replicate.trainings.values()
    assert started.training.replicate_training_id == created["id"]  # adopted
    assert created["input"]["input_images"].count(started.training.training_id) == 1  # found by our id
    with pytest.raises(TrainingInProgress):  # the slot is held by the training Replicate runs
        start(services, keys)
    assert services.replicate.calls.count("create_training") == 1


def test_a_training_create_that_timed_out_and_created_nothing_frees_the_slot(services: Services) -> None:
    keys = upload(services)
    services.replicate.fail_next("create_training", CreateOutcomeUnknown("Replicate did not answer"))
    with pytest.raises(UpstreamUnavailable):
        start(services, keys)
    model = services.repository.get_model(services.user)
    assert model is not None and model.in_flight_training_id is None
    assert services.replicate.trainings == {}


def test_when_replicate_cannot_tell_the_training_waits_for_the_reconciler_to_find_out(services: Services) -> None:
    keys = upload(services)
    services.replicate.create_then_time_out("create_training")
    services.replicate.fail_next("list_trainings", UpstreamUnavailable("Replicate answered 503"))
    started = start(services, keys)  # 202: the training is recorded, its start unconfirmed
    assert started.training.replicate_training_id is None and started.training.status == "starting"
    model = services.repository.get_model(services.user)
    assert model is not None and model.in_flight_training_id == started.training.training_id
