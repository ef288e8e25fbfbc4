"""Fault injection (issue 5): AWS faults at the botocore boundary, Replicate faults and lost or
racing webhooks from the emulator, and the reconciler that heals what webhooks could not."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import botocore.client
import pytest
from botocore.exceptions import ClientError

from lorapin.adapters.settings import Settings
from lorapin.adapters.tables import GenerationItem
from lorapin.domain.clock import utc_now
from lorapin.runtime import Runtime
from lorapin.services.reconciler import ReconcileReport, ReconcilerLimits
from tests.harness import Harness, seed_training, wait_for

LATER = timedelta(minutes=15)  # a 1000-step training is worth a look from 10 minutes on
WITHOUT_DRIFT = ReconcilerLimits(drift_models=0)


@pytest.fixture
def aws_faults(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """`faults[operation] = n` makes the next n calls of that AWS operation fail, in this process,
    as the service would answer them (after botocore's own retries gave up)."""
    faults: dict[str, int] = {}
    original = getattr(botocore.client.BaseClient, "_make_api_call")  # noqa: B009 (private, untyped)

    def failing(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        if faults.get(operation_name, 0) > 0:
            faults[operation_name] -= 1
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}},
                              operation_name)
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", failing)
    return faults


def training_status(world: Harness, training_id: str) -> str:
    record = world.repository().get_training(training_id)
    assert record is not None
    return str(record.status)


def replicate_training(world: Harness, training_id: str) -> dict[str, Any]:
    record = world.repository().get_training(training_id)
    assert record is not None and record.replicate_training_id
    return dict(world.emulator.trainings[record.replicate_training_id])


def activations(world: Harness) -> list[dict[str, Any]]:
    return world.events("ModelVersionActivated")


def training_deliveries(world: Harness) -> list[dict[str, Any]]:
    return world.webhook_deliveries("training")


def reconcile(world: Harness, *, later: timedelta = LATER) -> ReconcileReport:
    """One scheduled run of the reconciler, wired as its function wires it, as it would run `later`."""
    world.use_function_env("ReconcilerFunction")
    report = Runtime(Settings.from_env()).reconciler(WITHOUT_DRIFT).run(at=utc_now() + later)
    assert report.errors == []
    return report


def lost_webhook_training(world: Harness, user_id: str) -> str:
    """A training that succeeds on Replicate whose webhook never arrives."""
    world.emulator.suppress_webhooks(1)
    training_id = seed_training(world, user_id)
    wait_for(lambda: replicate_training(world, training_id)["status"] == "succeeded", message="Replicate done")
    return training_id


def test_dynamodb_throttling_on_the_guarded_write_answers_503_and_the_redelivery_succeeds(
        harness: Harness, aws_faults: dict[str, int]) -> None:
    harness.emulator.training_seconds = 120  # finished below, once the fault is armed
    training_id = seed_training(harness, "tina")
    aws_faults["TransactWriteItems"] = 1  # the activation's guarded write, not the start's
    harness.emulator.complete_training_now(replicate_training(harness, training_id)["id"])
    attempts = wait_for(lambda: training_deliveries(harness)[1:] and training_deliveries(harness),
                        message="redelivery")
    assert training_status(harness, training_id) == "succeeded"
    assert [a["status"] for a in attempts][:2] == [503, 200]
    assert '"DEPENDENCY_UNAVAILABLE"' in attempts[0]["response"]
    harness.quiet()
    assert len(activations(harness)) == 1


def test_put_events_failing_on_every_delivery_is_published_by_the_reconciler(
        harness: Harness, aws_faults: dict[str, int]) -> None:
    harness.emulator.webhook_retry_delays = (0.1,)
    aws_faults["PutEvents"] = 2  # the delivery and its one retry
    training_id = seed_training(harness, "uma")
    wait_for(lambda: len(training_deliveries(harness)) == 2, message="both deliveries")
    record = harness.repository().get_training(training_id)
    assert record is not None and record.status == "succeeded" and record.pending_event is not None
    assert activations(harness) == []
    report = reconcile(harness)
    assert report.events_published == 1
    events = wait_for(lambda: activations(harness), message="the event, late but not lost")
    assert events[0]["detail"]["training_id"] == training_id
    assert harness.repository().get_training(training_id).pending_event is None  # type: ignore[union-attr]
    assert reconcile(harness).events_published == 0  # published once, not again


def test_a_webhook_never_delivered_is_completed_by_one_reconciler_run(harness: Harness) -> None:
    training_id = lost_webhook_training(harness, "vic")
    assert training_status(harness, training_id) == "starting"
    report = reconcile(harness)
    assert report.trainings_completed == 1
    assert training_status(harness, training_id) == "succeeded"
    model = harness.repository().get_model("vic")
    assert model is not None and model.current_version is not None
    assert model.current_version.ref == replicate_training(harness, training_id)["output"]["version"]
    harness.quiet()
    assert len(activations(harness)) == 1


def test_young_trainings_are_left_to_their_webhook(harness: Harness) -> None:
    training_id = lost_webhook_training(harness, "wes")
    report = reconcile(harness, later=timedelta(0))
    assert report.trainings_checked == 0  # it cannot have finished yet, as far as the schedule knows
    assert training_status(harness, training_id) == "starting"
    # once it could have finished, the next run completes it
    assert reconcile(harness).trainings_completed == 1
    assert training_status(harness, training_id) == "succeeded"


def test_the_reconciler_and_a_late_webhook_racing_activate_once(harness: Harness) -> None:
    training_id = lost_webhook_training(harness, "xan")
    record = harness.repository().get_training(training_id)
    assert record is not None
    answers: list[Any] = []
    barrier = threading.Barrier(2)

    def late_webhook() -> None:
        barrier.wait()
        answers.append(harness.emulator.deliver_again(record.replicate_training_id, same_webhook_id=False))

    def scheduled_run() -> None:
        barrier.wait()
        answers.append(reconcile(harness))

    threads = [threading.Thread(target=late_webhook), threading.Thread(target=scheduled_run)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    delivery = next(a for a in answers if isinstance(a, dict))
    assert delivery["status"] == 200
    assert training_status(harness, training_id) == "succeeded"
    harness.quiet()  # the late webhook answered, and every event published so far delivered
    assert len(activations(harness)) == 1


def test_a_training_past_its_maximum_age_is_canceled_and_frees_the_user(harness: Harness) -> None:
    harness.emulator.training_seconds = 600
    training_id = seed_training(harness, "yara")
    report = reconcile(harness, later=timedelta(hours=6, minutes=5))
    assert report.trainings_canceled == 1
    assert replicate_training(harness, training_id)["status"] == "canceled"
    assert training_status(harness, training_id) == "canceled"
    model = harness.repository().get_model("yara")
    assert model is not None and model.in_flight_training_id is None


def test_a_lost_prediction_webhook_is_completed_by_the_reconciler(harness: Harness) -> None:
    training_id = seed_training(harness, "zed")
    wait_for(lambda: training_status(harness, training_id) == "succeeded", message="training")
    harness.emulator.suppress_webhooks(1)
    created = harness.call("POST", "/generations", user="zed", body={"prompt": "a lake"}).json()["generation"]
    wait_for(lambda: harness.emulator.predictions[created["replicate_prediction_id"]]["status"] == "succeeded",
             message="prediction done")
    report = reconcile(harness)
    assert report.generations_completed == 1
    done = harness.call("GET", f"/generations/{created['id']}", user="zed").json()["generation"]
    assert done["status"] == "succeeded" and len(done["outputs"]) == 1


def test_replicate_429_on_predictions_create_is_retried_then_succeeds(harness: Harness) -> None:
    training_id = seed_training(harness, "ali")
    wait_for(lambda: training_status(harness, training_id) == "succeeded", message="training")
    harness.emulator.fail_next("POST", r"^/v1/predictions$", 429, count=1)
    response = harness.call("POST", "/generations", user="ali", body={"prompt": "x"})
    assert response.status_code == 202, response.text
    assert [c["status"] for c in prediction_posts(harness)] == [429, 201]


def prediction_posts(world: Harness) -> list[dict[str, Any]]:
    return [c for c in world.replicate_calls() if c["method"] == "POST" and c["path"] == "/v1/predictions"]


@pytest.mark.parametrize(("status", "attempts"), [
    pytest.param(429, 4, id="429-refused-then-retried-three-times"),
    pytest.param(500, 1, id="500-never-repeated-it-may-have-created-the-prediction"),
])
def test_replicate_refusing_predictions_create_is_503_with_retry_after_and_no_orphan(
        harness: Harness, status: int, attempts: int) -> None:
    user = f"bo-{status}"
    training_id = seed_training(harness, user)
    wait_for(lambda: training_status(harness, training_id) == "succeeded", message="training")
    harness.emulator.fail_next("POST", r"^/v1/predictions$", status, count=20)
    response = harness.call("POST", "/generations", user=user, body={"prompt": "x"})
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["error"]["code"].startswith("UPSTREAM")
    assert [c["status"] for c in prediction_posts(harness)] == [status] * attempts
    harness.use_function_env("GenerationFunction")
    mine = [g for g in GenerationItem.scan() if g.user_id == user]
    assert [g.status for g in mine] == ["failed"]  # recorded, and not left `starting`


def scheduled_run(world: Harness) -> dict[str, Any]:
    """The reconciler's Lambda, invoked the way its Schedule event invokes it."""
    event = {"id": "sched-1", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}
    result: dict[str, Any] = world.local.pools["ReconcilerFunction"].invoke(event)
    return result


def test_drift_is_reported_with_both_ids_and_counted_but_a_rollback_is_not(
        harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    first = seed_training(harness, "dia")
    wait_for(lambda: training_status(harness, first) == "succeeded", message="first")
    second = seed_training(harness, "dia")
    wait_for(lambda: training_status(harness, second) == "succeeded", message="second")
    model = harness.repository().get_model("dia")
    assert model is not None and model.current_version is not None
    destination = model.destination
    stored = model.current_version.id
    # In sync: nothing to report
    assert scheduled_run(harness)["drift"] == []
    # A version pushed to the destination outside lorapin: drift, with both ids
    foreign = "f" * 64
    harness.emulator._add_version(destination, foreign)
    capsys.readouterr()
    drift = scheduled_run(harness)["drift"]
    assert drift == [{"user_id": "dia", "destination": destination, "current_version_id": stored,
                      "latest_version_id": foreign, "reason": drift[0]["reason"]}]
    out = capsys.readouterr().out
    assert '"VersionDrift":[1.0]' in out.replace(" ", "")
    # A rollback explains the difference
    first_version = harness.repository().get_training(first).version_id  # type: ignore[union-attr]
    rolled = harness.call("POST", "/model/rollback", user="dia", body={"version_id": first_version})
    assert rolled.status_code == 200
    assert scheduled_run(harness)["drift"] == []


def test_a_rollback_whose_event_fails_stands_and_the_reconciler_publishes_it(
        harness: Harness, aws_faults: dict[str, int]) -> None:
    first = seed_training(harness, "rob")
    wait_for(lambda: training_status(harness, first) == "succeeded", message="first")
    second = seed_training(harness, "rob")
    wait_for(lambda: training_status(harness, second) == "succeeded", message="second")
    old = harness.repository().get_training(first).version_id  # type: ignore[union-attr]
    aws_faults["PutEvents"] = 1
    rolled = harness.call("POST", "/model/rollback", user="rob", body={"version_id": old})
    assert rolled.status_code == 200  # the rollback stands
    assert rolled.json()["model"]["current_version"]["id"] == old

    def rollback_events() -> list[dict[str, Any]]:
        return [e for e in activations(harness) if e["detail"]["reason"] == "rollback"]

    harness.quiet()
    assert rollback_events() == []
    assert reconcile(harness).events_published == 1
    assert wait_for(rollback_events, message="the rollback's event")[0]["detail"]["version_id"] == old
    assert reconcile(harness).events_published == 0


def test_a_failed_training_whose_event_cannot_be_published_still_frees_the_user(
        harness: Harness, aws_faults: dict[str, int]) -> None:
    harness.emulator.webhook_retry_delays = (0.1,)
    harness.emulator.set_training_outcome("failed")
    aws_faults["PutEvents"] = 2  # the delivery and its one retry
    training_id = seed_training(harness, "fern")
    wait_for(lambda: len(training_deliveries(harness)) == 2, message="both deliveries")
    model = harness.repository().get_model("fern")
    assert model is not None and model.in_flight_training_id is None  # the user can train again
    assert training_status(harness, training_id) == "failed"
    assert harness.repository().get_training(training_id).pending_event is not None
    assert reconcile(harness).events_published == 1  # TrainingFailed, late but not lost
    assert harness.repository().get_training(training_id).pending_event is None
