"""`POST /trainings/{id}/cancel`: a training started by mistake is stopped, the slot freed, the
version kept (I3)."""

from __future__ import annotations

import pytest

from lorapin.adapters.repository import TrainingStarts
from lorapin.adapters.tables import TrainingItem
from lorapin.domain.errors import TrainingBeingSubmitted, TrainingFinished, TrainingNotFound
from tests.unit.conftest import Services
from tests.unit.test_training_start import start, upload

pytestmark = pytest.mark.unit


def cancel(services: Services, training_id: str, user: str | None = None) -> TrainingItem:
    return services.runtime.training_cancel().cancel(user or services.user, training_id)


def test_a_running_training_is_canceled_on_replicate_and_frees_the_slot(services: Services) -> None:
    kept = services.train()
    training = services.start_training()
    ended = cancel(services, training.training_id)
    assert ended.status == "canceled"
    assert services.replicate.calls.count("cancel_training") == 1
    model = services.repository.get_model(services.user)
    assert model is not None and model.in_flight_training_id is None  # the user can train again
    assert model.current_version is not None and model.current_version.id == kept  # I3
    [failed] = services.bus.events("TrainingFailed")
    assert (failed["training_id"], failed["status"]) == (training.training_id, "canceled")


def test_a_training_not_yet_handed_to_replicate_is_canceled_here_and_never_sent(services: Services) -> None:
    services.functions.hold_starts = True  # the submitter has not run yet
    started = start(services, upload(services), acknowledge_warnings=True)
    ended = cancel(services, started.training.training_id)
    assert ended.status == "canceled" and "cancel_training" not in services.replicate.calls
    assert services.functions.run_held() == ["not_starting"]  # the held submission finds it canceled
    assert services.replicate.trainings == {}
    model = services.repository.get_model(services.user)
    assert model is not None and model.in_flight_training_id is None


def test_a_training_being_submitted_right_now_asks_to_try_again(services: Services) -> None:
    services.functions.hold_starts = True
    started = start(services, upload(services), acknowledge_warnings=True)
    training_id = started.training.training_id
    stored = services.repository.get_training(training_id)
    assert stored is not None and TrainingStarts.lease_submission(stored) == 1  # a submitter holds it this moment
    with pytest.raises(TrainingBeingSubmitted) as busy:
        cancel(services, training_id)
    assert busy.value.status == 409 and busy.value.headers() == {"Retry-After": "5"}
    stored = services.repository.get_training(training_id)
    assert stored is not None and stored.status == "starting"


def test_a_finished_training_answers_409_and_another_users_404(services: Services) -> None:
    services.train()
    [done] = services.repository.trainings_of(services.user)
    with pytest.raises(TrainingFinished) as finished:
        cancel(services, done.training_id)
    assert finished.value.status == 409
    running = services.start_training()
    with pytest.raises(TrainingNotFound):
        cancel(services, running.training_id, user=f"{services.user}-other")
    stored = services.repository.get_training(running.training_id)
    assert stored is not None and stored.status == "starting"  # untouched
