"""The reconciler (I8, I5, R9) on its own: what a webhook failed to deliver is fetched and applied
through the same completion code; what a failed PutEvents left is published; drift is reported;
one item's failure does not stop the others."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lorapin.adapters.replicate_gateway import ReplicateRejected
from lorapin.domain.errors import EventPublishFailed
from lorapin.services.generation import GenerationRequest
from lorapin.services.reconciler import ReconcilerLimits
from tests.unit.conftest import Services

NOW = ReconcilerLimits(stale_after=timedelta(0))  # everything in flight is old enough to look at


def test_a_training_whose_webhook_never_came_is_applied_like_the_webhook_would(isolated_services: Services) -> None:
    services = isolated_services
    training = services.start_training()
    finished = services.replicate.finish_training(str(training.replicate_training_id))
    report = services.runtime.reconciler(NOW).run()
    assert (report.trainings_checked, report.trainings_completed, report.errors) == (1, 1, [])
    model = services.repository.get_model(services.user)
    assert model is not None and model.current_version is not None
    assert model.current_version.ref == finished.output["version"] and model.in_flight_training_id is None
    assert len(services.bus.events("ModelVersionActivated")) == 1
    # and the next run has nothing left to do
    again = services.runtime.reconciler(NOW).run()
    assert (again.trainings_checked, again.trainings_completed) == (0, 0)
    assert len(services.bus.events("ModelVersionActivated")) == 1


def test_young_or_running_trainings_are_left_alone(isolated_services: Services) -> None:
    services = isolated_services
    training = services.start_training()
    young = services.runtime.reconciler(ReconcilerLimits(stale_after=timedelta(minutes=2))).run()
    assert young.trainings_checked == 0 and services.replicate.calls.count("get_training") == 0
    running = services.runtime.reconciler(NOW).run()
    assert (running.trainings_checked, running.trainings_completed) == (1, 0)
    assert services.repository.get_training(training.training_id).status == "starting"  # type: ignore[union-attr]


def test_a_training_past_its_maximum_age_is_canceled_and_frees_the_user(isolated_services: Services) -> None:
    services = isolated_services
    training = services.start_training()
    report = services.runtime.reconciler(ReconcilerLimits(stale_after=timedelta(0),
                                                          max_training_age=timedelta(0))).run()
    assert (report.trainings_canceled, report.trainings_completed) == (1, 1)
    assert services.replicate.trainings[str(training.replicate_training_id)]["status"] == "canceled"
    assert services.repository.get_training(training.training_id).status == "canceled"  # type: ignore[union-attr]
    model = services.repository.get_model(services.user)
    assert model is not None and model.in_flight_training_id is None
    assert [e["status"] for e in services.bus.events("TrainingFailed")] == ["canceled"]


def test_an_event_a_failed_put_events_left_is_published_once(isolated_services: Services) -> None:
    services = isolated_services
    training = services.start_training()
    finished = services.replicate.finish_training(str(training.replicate_training_id))
    services.bus.reject_next()
    with pytest.raises(EventPublishFailed):  # EVENT_NOT_PUBLISHED: the webhook answers 503
        services.runtime.completion().apply(finished, training_id_hint=training.training_id)
    assert services.bus.entries == []
    report = services.runtime.reconciler(NOW).run()
    assert report.events_published == 1
    assert len(services.bus.events("ModelVersionActivated")) == 1
    assert services.runtime.reconciler(NOW).run().events_published == 0


def test_a_prediction_whose_webhook_never_came_is_completed(isolated_services: Services) -> None:
    services = isolated_services
    services.train()
    generation = services.runtime.generations().request(services.user, GenerationRequest(prompt="a lake"))
    services.replicate.finish_prediction(str(generation.replicate_prediction_id))
    report = services.runtime.reconciler(NOW).run()
    assert (report.generations_checked, report.generations_completed, report.errors) == (1, 1, [])
    done = services.repository.get_generation(generation.generation_id)
    assert done is not None and done.status == "succeeded" and len(done.output_keys or []) == 1


def test_a_generation_waiting_on_a_training_that_failed_fails_too(isolated_services: Services) -> None:
    services = isolated_services
    training = services.start_training()
    waiting = services.runtime.generations().request(services.user, GenerationRequest(prompt="x"))
    failed = services.replicate.finish_training(str(training.replicate_training_id), "failed")
    services.runtime.completion().apply(failed, training_id_hint=training.training_id)
    report = services.runtime.reconciler(NOW).run()
    assert report.generations_failed == 1
    assert services.repository.get_generation(waiting.generation_id).status == "failed"  # type: ignore[union-attr]


def test_drift_is_reported_with_both_ids_but_a_rollback_is_not(isolated_services: Services) -> None:
    services = isolated_services
    first = services.train()
    current = services.train()
    assert services.runtime.reconciler(NOW).run().drift == []
    model = services.repository.get_model(services.user)
    assert model is not None
    services.replicate.models[model.destination].insert(0, "f" * 64)  # pushed outside lorapin
    [drift] = services.runtime.reconciler(NOW).run().drift
    assert (drift["current_version_id"], drift["latest_version_id"]) == (current, "f" * 64)
    services.runtime.history().rollback(services.user, first)
    assert services.runtime.reconciler(NOW).run().drift == []


def test_one_item_failing_does_not_stop_the_others(isolated_services: Services) -> None:
    services = isolated_services
    broken = services.start_training()
    healthy = services.start_training(f"{services.user}-2")
    services.replicate.finish_training(str(healthy.replicate_training_id))
    services.replicate.fail_next("get_training", ReplicateRejected(500, "Internal error"))
    report = services.runtime.reconciler(NOW).run()
    assert report.trainings_checked == 2 and report.trainings_completed == 1
    assert len(report.errors) == 1 and broken.training_id in report.errors[0]
    assert services.repository.get_training(healthy.training_id).status == "succeeded"  # type: ignore[union-attr]
