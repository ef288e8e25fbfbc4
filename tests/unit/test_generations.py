"""Generations (R1, R4): pinned to the current version read at request time, with that version's
trigger word; waiting for a first version and released by its event; outputs copied before
`succeeded`; Replicate's refusals leave nothing half-done."""

from __future__ import annotations

import pytest

from lorapin.adapters.replicate_gateway import CreateOutcomeUnknown, ReplicateRejected
from lorapin.adapters.tables import GenerationItem
from lorapin.domain.completion import Outcome
from lorapin.domain.errors import (
    NoModelToGenerateWith,
    NotYetRecorded,
    UnknownVersion,
    UpstreamRejected,
    UpstreamUnavailable,
)
from lorapin.services.generation_request import GenerationRequest
from tests.fakes import PNG
from tests.unit.conftest import Services


def ask(services: Services, prompt: str = "on a boat", num_outputs: int = 1) -> str:
    request = GenerationRequest(prompt=prompt, num_outputs=num_outputs)
    generation = services.runtime.generations().request(services.user, request)
    return generation.generation_id


def test_a_generation_is_pinned_to_the_current_version_with_its_trigger_word(services: Services) -> None:
    version = services.train()
    generation_id = ask(services, num_outputs=2)
    stored = services.repository.get_generation(generation_id)
    assert stored is not None and stored.status == "starting"
    [prediction] = services.replicate.predictions.values()
    assert prediction["version"] == version  # this destination's exact version (R1)
    assert stored.model_version_ref == f"{prediction['model']}:{version}"
    assert prediction["input"]["prompt"] == "TOK on a boat"  # the word that version was trained with (R4)
    assert prediction["input"]["num_outputs"] == 2
    assert prediction["webhook"].endswith(f"generation_id={generation_id}")
    assert stored.replicate_prediction_id == prediction["id"]


def test_without_any_model_there_is_nothing_to_generate_with(services: Services) -> None:
    with pytest.raises(NoModelToGenerateWith):
        ask(services)
    assert services.replicate.calls == []


def test_a_generation_waits_for_the_first_version_and_its_event_releases_it(services: Services) -> None:
    training = services.start_training()
    generation_id = ask(services, prompt="skiing")
    waiting = services.repository.get_generation(generation_id)
    assert waiting is not None and waiting.status == "waiting_for_model" and waiting.model_version_ref is None
    assert "create_prediction" not in services.replicate.calls
    finished = services.replicate.finish_training(str(training.replicate_training_id))
    services.runtime.completion().apply(finished, training_id_hint=training.training_id)
    [event] = services.bus.events("ModelVersionActivated")
    # The consumer of that event starts what waited, with the version it announces
    assert services.runtime.generations().release_waiting(event["user_id"], event["version_id"]) == 1
    released = services.repository.get_generation(generation_id)
    assert released is not None and released.status == "starting"
    assert released.model_version_ref == finished.output["version"]
    assert released.prompt == "TOK skiing"
    # and a duplicate of the event releases nothing twice
    assert services.runtime.generations().release_waiting(event["user_id"], event["version_id"]) == 0
    assert services.replicate.calls.count("create_prediction") == 1


def test_an_event_for_a_version_that_is_no_longer_current_releases_nothing(services: Services) -> None:
    first = services.train()
    services.train()
    assert services.runtime.generations().release_waiting(services.user, first) == 0


def test_a_finished_prediction_is_copied_to_our_bucket_before_it_is_succeeded(services: Services) -> None:
    services.train()
    generation_id = ask(services, num_outputs=2)
    prediction = services.replicate.finish_prediction(next(iter(services.replicate.predictions)), outputs=2)
    generations = services.runtime.generations()
    assert generations.complete_prediction(prediction, generation_id) is Outcome.RECORDED
    done = services.repository.get_generation(generation_id)
    assert done is not None and done.status == "succeeded" and len(done.output_keys or []) == 2
    for key in done.output_keys or []:
        assert key.startswith(f"users/{services.user}/generations/{generation_id}/")
        assert services.runtime.media.get(str(key)) == PNG
    # the same outcome again is a duplicate, and copies nothing more
    downloads = services.replicate.calls.count("download")
    assert generations.complete_prediction(prediction, generation_id) is Outcome.DUPLICATE
    assert services.replicate.calls.count("download") == downloads


def test_a_prediction_for_another_generation_is_ignored(services: Services) -> None:
    services.train()
    mine, other = ask(services), ask(services)
    predictions = list(services.replicate.predictions)
    theirs = services.replicate.finish_prediction(predictions[1])
    assert services.runtime.generations().complete_prediction(theirs, mine) is Outcome.IGNORED_UNKNOWN
    assert services.repository.get_generation(mine).status == "starting"  # type: ignore[union-attr]
    assert services.runtime.generations().complete_prediction(theirs, None) is Outcome.IGNORED_UNKNOWN
    assert services.runtime.generations().complete_prediction(theirs, other) is Outcome.RECORDED  # its own


def test_a_webhook_before_the_prediction_id_is_stored_asks_for_a_redelivery(services: Services) -> None:
    services.train()
    generation_id = ask(services)
    stored = services.repository.get_generation(generation_id)
    assert stored is not None
    prediction = services.replicate.finish_prediction(str(stored.replicate_prediction_id))
    stored.update(actions=[type(stored).replicate_prediction_id.remove()])
    with pytest.raises(NotYetRecorded):
        services.runtime.generations().complete_prediction(prediction, generation_id)


@pytest.mark.parametrize(("error", "expected"), [
    pytest.param(ReplicateRejected(422, "Invalid version or not permitted"), UpstreamRejected, id="refused"),
    pytest.param(UpstreamUnavailable("Replicate answered 500"), UpstreamUnavailable, id="unavailable"),
])
def test_a_prediction_replicate_does_not_create_fails_the_generation(
        services: Services, error: Exception, expected: type[Exception]) -> None:
    services.train()
    services.replicate.fail_next("create_prediction", error)
    with pytest.raises(expected):
        ask(services)
    [generation] = services.repository.generations_of(services.user)
    assert generation.status == "failed" and generation.error
    assert generation.due_shard is None  # nothing left for the reconciler to chase


def test_each_prediction_is_sent_a_seed_and_the_generation_records_it(services: Services) -> None:
    services.train()
    chosen = services.runtime.generations().request(services.user, GenerationRequest(prompt="x", seed=42))
    random = services.runtime.generations().request(services.user, GenerationRequest(prompt="x"))
    sent = {p["id"]: p["input"]["seed"] for p in services.replicate.predictions.values()}
    assert sent[str(chosen.replicate_prediction_id)] == 42 == chosen.seed
    assert sent[str(random.replicate_prediction_id)] == random.seed
    assert random.seed is not None and 0 <= random.seed <= 2**31 - 1


def test_problem_4_a_prediction_refused_while_releasing_fails_that_one_and_the_others_go_on(
        services: Services) -> None:
    """Before: `return_to_waiting` ran after `fail_generation` and raised a raw UpdateError,
    ending the event consumer (and the reconciler's run) with the other generations unreleased."""
    training = services.start_training()
    first, second = ask(services, prompt="one"), ask(services, prompt="two")
    finished = services.replicate.finish_training(str(training.replicate_training_id))
    services.runtime.completion().apply(finished, training_id_hint=training.training_id)
    [event] = services.bus.events("ModelVersionActivated")
    services.replicate.fail_next("create_prediction", ReplicateRejected(422, "Invalid input"))
    released = services.runtime.generations().release_waiting(event["user_id"], event["version_id"])
    assert released == 1
    statuses = {g: services.repository.get_generation(g).status for g in (first, second)}  # type: ignore[union-attr]
    assert sorted(statuses.values()) == ["failed", "starting"]


def test_a_release_that_cannot_reach_replicate_puts_the_generation_back_and_asks_again(services: Services) -> None:
    training = services.start_training()
    waiting = ask(services)
    finished = services.replicate.finish_training(str(training.replicate_training_id))
    services.runtime.completion().apply(finished, training_id_hint=training.training_id)
    [event] = services.bus.events("ModelVersionActivated")
    services.replicate.fail_next("create_prediction", UpstreamUnavailable("Replicate is unreachable"))
    with pytest.raises(UpstreamUnavailable):  # EventBridge retries the event
        services.runtime.generations().release_waiting(event["user_id"], event["version_id"])
    assert services.repository.get_generation(waiting).status == "waiting_for_model"  # type: ignore[union-attr]
    assert services.runtime.generations().release_waiting(event["user_id"], event["version_id"]) == 1


def test_when_the_first_training_fails_what_waited_for_it_fails_too(services: Services) -> None:
    training = services.start_training()
    waiting = ask(services)
    failed = services.replicate.finish_training(str(training.replicate_training_id), "failed")
    services.runtime.completion().apply(failed, training_id_hint=training.training_id)
    [event] = services.bus.events("TrainingFailed")
    assert services.runtime.generations().fail_waiting(event["user_id"]) == 1
    stored = services.repository.get_generation(waiting)
    assert stored is not None and (stored.status, stored.error_code) == ("failed", "TRAINING_FAILED")
    assert services.runtime.generations().fail_waiting(event["user_id"]) == 0  # a duplicate event: nothing more


def test_problem_6_a_prediction_create_that_timed_out_is_adopted_not_created_twice(services: Services) -> None:
    """Before: a timeout of predictions.create was treated as "not created": the generation failed
    and the user's retry paid for a second prediction, while Replicate ran the first."""
    services.train()
    services.replicate.create_then_time_out("create_prediction")
    generation_id = ask(services)
    assert services.replicate.calls.count("create_prediction") == 1
    [prediction] = services.replicate.predictions.values()
    stored = services.repository.get_generation(generation_id)
    assert stored is not None and stored.replicate_prediction_id == prediction["id"]
    assert stored.status in ("starting", "processing")


def test_a_prediction_create_that_timed_out_and_created_nothing_fails_and_may_be_retried(services: Services) -> None:
    services.train()
    services.replicate.fail_next("create_prediction", CreateOutcomeUnknown("Replicate did not answer"))
    with pytest.raises(UpstreamUnavailable):
        ask(services)
    [generation] = services.repository.generations_of(services.user)
    assert generation.status == "failed"
    assert services.replicate.predictions == {}


def test_an_earlier_version_can_be_compared_with_the_current_one_like_for_like(services: Services) -> None:
    first = services.train()
    current = services.train()
    generations = services.runtime.generations()
    earlier = generations.request(services.user, GenerationRequest(prompt="on a boat", seed=7, version_id=first))
    now = generations.request(services.user, GenerationRequest(prompt="on a boat", seed=7))
    sent = {p["id"]: p for p in services.replicate.predictions.values()}
    assert sent[str(earlier.replicate_prediction_id)]["version"] == first
    assert sent[str(now.replicate_prediction_id)]["version"] == current != first
    assert [sent[str(g.replicate_prediction_id)]["input"]["seed"] for g in (earlier, now)] == [7, 7]
    assert str(earlier.model_version_ref).endswith(f":{first}")  # which version made it, recorded
    model = services.repository.get_model(services.user)
    assert model is not None and model.current_version is not None and model.current_version.id == current


def test_a_version_that_is_not_the_callers_answers_like_an_absent_one(services: Services) -> None:
    theirs = services.train(f"{services.user}-other")
    services.train()
    generations = services.runtime.generations()
    for version_id in (theirs, "f" * 64):
        with pytest.raises(UnknownVersion) as refused:
            generations.request(services.user, GenerationRequest(prompt="x", version_id=version_id))
        assert refused.value.status == 404
    assert services.replicate.predictions == {}  # nothing was asked of Replicate
    assert list(GenerationItem.by_user.query(services.user)) == []  # and nothing was written
