"""The reconciler (I8, I5, R9) on its own, on a clock the test moves: what a webhook failed to
deliver is found and applied through the same completion code; what a failed PutEvents left is
published; drift is reported; one item's failure stops nothing; every due item is reached however
many there are; Replicate is asked as little as the schedule allows (issue 10's numbered problems
each have a test here or in test_generations / test_training_start)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from lorapin.adapters.replicate_gateway import ReplicateRejected
from lorapin.adapters.tables import GenerationItem, TrainingItem
from lorapin.domain.clock import iso, utc_now
from lorapin.domain.errors import EventPublishFailed
from lorapin.domain.limits import GenerationLimits
from lorapin.domain.versions import VersionRef
from lorapin.services.generation_request import GenerationRequest
from lorapin.services.reconciler import ReconcileReport, ReconcilerLimits
from tests.fakes import ManualClock
from tests.unit.conftest import Services
from tests.unit.test_training_start import start, upload

PERIOD = timedelta(minutes=5)  # the deployed schedule


WITHOUT_DRIFT = ReconcilerLimits(drift_models=0)  # drift checks have tests of their own


def run(services: Services, limits: ReconcilerLimits = WITHOUT_DRIFT) -> ReconcileReport:
    return services.runtime.reconciler(limits).run()


def test_a_training_whose_webhook_never_came_is_applied_within_a_period(
        clock: ManualClock, isolated_services: Services) -> None:
    services = isolated_services
    training = services.start_training()
    clock.advance(timedelta(minutes=12))  # it may have finished by now (1000 steps: 10 minutes at the earliest)
    finished = services.replicate.finish_training(str(training.replicate_training_id))
    clock.advance(PERIOD)
    report = run(services)
    assert (report.trainings_checked, report.trainings_completed, report.errors) == (1, 1, [])
    model = services.repository.get_model(services.user)
    assert model is not None and model.current_version is not None
    assert model.current_version.ref == finished.output["version"] and model.in_flight_training_id is None
    assert len(services.bus.events("ModelVersionActivated")) == 1
    # and the next run has nothing left to do
    clock.advance(PERIOD)
    again = run(services)
    assert (again.trainings_checked, again.trainings_completed, again.replicate_calls) == (0, 0, 0)
    assert len(services.bus.events("ModelVersionActivated")) == 1


def test_a_training_is_not_asked_about_before_it_could_have_finished(
        clock: ManualClock, isolated_services: Services) -> None:
    services = isolated_services
    training = services.start_training()
    for _ in range(2):  # 0 and 5 minutes in: a 1000-step training cannot be done
        assert run(services).trainings_checked == 0
        clock.advance(PERIOD)
    clock.advance(PERIOD)  # 15 minutes: it is worth a look, and it is still running
    running = run(services)
    assert (running.trainings_checked, running.trainings_completed) == (1, 0)
    assert services.repository.get_training(training.training_id).status == "starting"  # type: ignore[union-attr]


def test_problem_7_a_running_training_costs_one_shared_list_call_per_run_not_a_get_each(
        clock: ManualClock, isolated_services: Services) -> None:
    """Before: every running training older than 2 minutes was fetched alone on every run (a
    25-minute training: 5 GETs). Now due trainings are looked up together, and a webhook that
    arrives takes its training off the schedule."""
    services = isolated_services
    trainings = [services.start_training(f"{services.user}-{n}") for n in range(10)]
    for minute in range(5, 30, 5):
        clock.advance(PERIOD)
        for training in trainings[:minute // 5 * 2]:  # two more finish every 5 minutes, their webhooks arrive
            if services.replicate.trainings[str(training.replicate_training_id)]["status"] == "starting":
                finished = services.replicate.finish_training(str(training.replicate_training_id))
                services.runtime.completion().apply(finished, training_id_hint=training.training_id)
        run(services)
    calls = Counter(services.replicate.calls)
    assert calls["get_training"] == 0
    assert calls["list_trainings"] <= 4  # one per run from the 10th minute on, shared by every due training


def test_a_submitted_training_whose_submit_lease_still_runs_is_looked_up_in_the_shared_list(
        clock: ManualClock, isolated_services: Services) -> None:
    """Before: the submitter's lease (6 minutes of processing time, a day of emulated time at the
    day bench's 240x) kept a training that already had Replicate's id out of the shared list, so
    each was fetched alone at every look: 2.5 GETs a training where one list serves them all."""
    services = isolated_services
    trainings = [services.start_training(f"{services.user}-{n}") for n in range(3)]
    for training in trainings:  # as the submitter leaves them: Replicate's id stored, its lease not lapsed
        training.update(actions=[TrainingItem.submit_lease_until.set(iso(utc_now() + timedelta(days=1)))])
    clock.advance(timedelta(minutes=15))
    run(services)
    calls = Counter(services.replicate.calls)
    assert (calls["get_training"], calls["list_trainings"]) == (0, 1)


def test_problem_1_an_unusable_version_ends_its_training_and_stops_nobody_else(
        clock: ManualClock, isolated_services: Services) -> None:
    """Before: `Reconciler.run()` raised on such a training at every run: no lost webhook of any
    user was recovered again, and its user got 409 TRAINING_IN_PROGRESS for ever."""
    services = isolated_services
    bad = services.start_training()
    good = services.start_training(f"{services.user}-other")
    clock.advance(timedelta(minutes=12))
    trainer = VersionRef.of(bad.trainer_model, bad.trainer_version).ref
    services.replicate.finish_training(str(bad.replicate_training_id), output={"version": trainer})
    services.replicate.finish_training(str(good.replicate_training_id))
    report = run(services)
    assert report.errors == [] and report.trainings_completed == 2
    stored = services.repository.get_training(bad.training_id)
    assert stored is not None and (stored.status, stored.error_code) == ("failed", "INVALID_OUTPUT_VERSION")
    assert services.repository.get_model(services.user).in_flight_training_id is None  # type: ignore[union-attr]
    assert services.repository.get_model(f"{services.user}-other").current_version is not None  # type: ignore[union-attr]
    assert [e["training_id"] for e in services.bus.events("TrainingFailed")] == [bad.training_id]
    clock.advance(PERIOD)
    assert run(services).trainings_checked == 0  # nothing of either is left


def test_a_training_past_its_maximum_age_is_canceled_and_frees_the_user(
        clock: ManualClock, isolated_services: Services) -> None:
    services = isolated_services
    training = services.start_training()
    clock.advance(timedelta(hours=6, minutes=5))
    report = run(services)
    assert (report.trainings_canceled, report.trainings_completed) == (1, 1)
    assert services.replicate.trainings[str(training.replicate_training_id)]["status"] == "canceled"
    assert services.repository.get_training(training.training_id).status == "canceled"  # type: ignore[union-attr]
    model = services.repository.get_model(services.user)
    assert model is not None and model.in_flight_training_id is None
    assert [e["status"] for e in services.bus.events("TrainingFailed")] == ["canceled"]


def test_an_event_a_failed_put_events_left_is_published_once(clock: ManualClock, isolated_services: Services) -> None:
    services = isolated_services
    training = services.start_training()
    finished = services.replicate.finish_training(str(training.replicate_training_id))
    services.bus.reject_next()
    with pytest.raises(EventPublishFailed):  # EVENT_NOT_PUBLISHED: the webhook answers 503
        services.runtime.completion().apply(finished, training_id_hint=training.training_id)
    assert services.bus.entries == []
    clock.advance(timedelta(minutes=2))  # the failed publish handed its lease back: due at once
    report = run(services)
    assert report.events_published == 1 and report.replicate_calls == 0
    assert len(services.bus.events("ModelVersionActivated")) == 1
    clock.advance(PERIOD)
    assert run(services).events_published == 0


def test_a_training_replicate_never_got_is_abandoned_and_its_event_counted_only_once_published(
        clock: ManualClock, isolated_services: Services) -> None:
    services = isolated_services
    services.functions.hold_starts = True  # the submitter never ran: Replicate has no record of it
    started = start(services, upload(services), acknowledge_warnings=True)
    clock.advance(timedelta(minutes=16))  # past the look the start scheduled (15 minutes)
    services.bus.reject_next()
    report = run(services)
    assert (report.trainings_abandoned, report.events_published) == (1, 0)  # PutEvents refused it
    assert services.bus.events("TrainingFailed") == []
    stored = services.repository.get_training(started.training.training_id)
    assert stored is not None and stored.status == "failed"
    clock.advance(PERIOD)  # the outbox's lease has lapsed: the next run publishes what is left
    report = run(services)
    assert (report.trainings_abandoned, report.events_published) == (0, 1)
    assert [e["training_id"] for e in services.bus.events("TrainingFailed")] == [started.training.training_id]


def test_a_prediction_whose_webhook_never_came_is_completed(clock: ManualClock, isolated_services: Services) -> None:
    services = isolated_services
    services.train()
    generation = services.runtime.generations().request(services.user, GenerationRequest(prompt="a lake"))
    services.replicate.finish_prediction(str(generation.replicate_prediction_id))
    assert run(services).generations_checked == 0  # its webhook normally comes within seconds
    clock.advance(timedelta(minutes=3))
    report = run(services)
    assert (report.generations_checked, report.generations_completed, report.errors) == (1, 1, [])
    done = services.repository.get_generation(generation.generation_id)
    assert done is not None and done.status == "succeeded" and len(done.output_keys or []) == 1


def test_problem_2_a_users_backlog_does_not_starve_anyone_else(clock: ManualClock, isolated_services: Services) -> None:
    """Before: active items were read oldest first, 50 a run; one user's 50 generations waiting for a
    first training starved every other user's lost prediction webhook (three runs: 0 completed)."""
    services = isolated_services
    services.start_training()  # the first training runs...
    unlimited = services.runtime.generations(GenerationLimits(per_minute=1000, in_flight=1000))  # (limits came later)
    for _ in range(60):  # ... and 60 generations wait for it
        unlimited.request(services.user, GenerationRequest(prompt="waiting"))
    others = []
    for n in range(30):  # 30 other users' predictions whose webhooks are lost
        user = f"{services.user}-{n}"
        services.train(user)
        generation = services.runtime.generations().request(user, GenerationRequest(prompt="mine"))
        services.replicate.finish_prediction(str(generation.replicate_prediction_id))
        others.append(generation.generation_id)
    clock.advance(timedelta(minutes=3))
    report = run(services, ReconcilerLimits(page=5, drift_models=0))  # small pages: every shard is paged through
    assert report.generations_completed == 30
    assert all(services.repository.get_generation(g).status == "succeeded" for g in others)  # type: ignore[union-attr]
    waiting = list(services.repository.waiting_generations(services.user))
    assert len(waiting) == 60 and all(g.due_shard is None for g in waiting)  # released by the event, not polled


def test_problem_3_outputs_that_cannot_be_copied_are_retried_for_an_hour_then_failed(
        clock: ManualClock, isolated_services: Services) -> None:
    """Before: a finished prediction whose output URL answered 404 stayed `starting` (and on the
    reconciler's index) for ever; one that succeeded with no output was marked `succeeded`, empty."""
    services = isolated_services
    services.train()
    lost = services.runtime.generations().request(services.user, GenerationRequest(prompt="gone"))
    empty = services.runtime.generations().request(services.user, GenerationRequest(prompt="empty"))
    services.replicate.finish_prediction(str(lost.replicate_prediction_id), served=False)
    services.replicate.finish_prediction(str(empty.replicate_prediction_id), outputs=0)
    clock.advance(timedelta(minutes=3))
    first = run(services)
    assert first.outputs_retried == 1  # the copy failed, and will be tried again
    assert services.repository.get_generation(lost.generation_id).status == "starting"  # type: ignore[union-attr]
    no_output = services.repository.get_generation(empty.generation_id)
    assert no_output is not None and (no_output.status, no_output.error_code) == ("failed", "NO_OUTPUT")
    assert no_output.output_keys in (None, []) and no_output.due_shard is None
    for _ in range(20):  # runs every 5 minutes, until Replicate's hour is over
        clock.advance(PERIOD)
        run(services)
    expired = services.repository.get_generation(lost.generation_id)
    assert expired is not None and (expired.status, expired.error_code) == ("failed", "OUTPUTS_EXPIRED")
    assert expired.due_shard is None  # off the reconciler's schedule
    assert services.replicate.calls.count("download") <= 8  # retried with a growing interval, not every run


def test_problem_8_the_drift_check_reaches_every_model_within_a_bounded_number_of_runs(
        clock: ManualClock, isolated_services: Services) -> None:
    """Before: only the 50 oldest models updated in the last 24 hours were checked."""
    services = isolated_services
    users = [f"{services.user}-{n}" for n in range(30)]
    for user in users:
        services.train(user)
    clock.advance(timedelta(days=3))  # nobody's model changes any more
    for _ in range(3):  # ceil(30 models / 10 a run)
        run(services, ReconcilerLimits(drift_models=10))
        clock.advance(PERIOD)
    assert services.replicate.calls.count("latest_version_id") == 30  # each model once
    stamps = {services.repository.get_model(u).drift_checked_at for u in users}  # type: ignore[union-attr]
    assert "0000" not in stamps  # every model has been checked


def test_drift_is_reported_with_both_ids_but_a_rollback_is_not(clock: ManualClock,
                                                               isolated_services: Services) -> None:
    services = isolated_services
    first = services.train()
    current = services.train()
    with_drift = ReconcilerLimits()
    assert run(services, with_drift).drift == []
    model = services.repository.get_model(services.user)
    assert model is not None
    services.replicate.models[model.destination].insert(0, "f" * 64)  # pushed outside lorapin
    clock.advance(PERIOD)
    [drift] = run(services, with_drift).drift
    assert (drift["current_version_id"], drift["latest_version_id"]) == (current, "f" * 64)
    services.runtime.history().rollback(services.user, first)
    clock.advance(PERIOD)
    assert run(services, with_drift).drift == []


def test_one_item_failing_does_not_stop_the_others(clock: ManualClock, isolated_services: Services) -> None:
    services = isolated_services
    broken = services.start_training()
    healthy = services.start_training(f"{services.user}-2")
    clock.advance(timedelta(hours=2))  # late: each is asked for alone
    services.replicate.finish_training(str(healthy.replicate_training_id))
    services.replicate.break_object(str(broken.replicate_training_id), ReplicateRejected(500, "Internal error"))
    report = run(services)
    assert report.trainings_checked == 2 and report.trainings_completed == 1
    assert report.items_failed == 1 and len(report.errors) == 1
    assert services.repository.get_training(healthy.training_id).status == "succeeded"  # type: ignore[union-attr]
    stored = services.repository.get_training(broken.training_id)
    assert stored is not None and stored.status == "starting" and stored.due_at is not None  # looked at again later


def test_problem_9_in_flight_items_spread_over_every_shard(isolated_services: Services) -> None:
    """Before: every in-flight training and generation shared the partition key value `active`."""
    services = isolated_services
    shards = Counter(services.repository.shard("g", f"gen_{n:06d}") for n in range(1600))
    assert len(shards) == services.repository.shards == 16
    assert max(shards.values()) < 2 * 1600 / 16
    training = services.start_training()
    assert TrainingItem.get(training.training_id).due_shard == services.repository.shard("t", training.training_id)
    assert GenerationItem.due.Meta.index_name == "due"


def test_a_run_stops_at_its_call_budget_and_the_next_one_goes_on(clock: ManualClock,
                                                                  isolated_services: Services) -> None:
    services = isolated_services
    for n in range(6):
        services.train(f"{services.user}-{n}")
        generation = services.runtime.generations().request(f"{services.user}-{n}", GenerationRequest(prompt="x"))
        services.replicate.finish_prediction(str(generation.replicate_prediction_id))
    clock.advance(timedelta(minutes=3))
    first = run(services, ReconcilerLimits(call_budget=3, drift_models=0))
    assert first.budget_exhausted and first.generations_completed <= 3
    second = run(services, ReconcilerLimits(call_budget=10, drift_models=0))
    assert first.generations_completed + second.generations_completed == 6
