"""The core pipeline end to end, over HTTP: the emulator's signed webhook → the local API →
guarded DynamoDB write (moto's server) → ModelVersionActivated through the template's rule →
the next generation pinned to exactly that version."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.harness import Harness, seed_training, wait_for


def current_version_id(world: Harness, user_id: str) -> str | None:
    model = world.repository().get_model(user_id)
    return model.current_version.id if model and model.current_version else None


def training_status(world: Harness, training_id: str) -> str:
    record = world.repository().get_training(training_id)
    assert record is not None
    return str(record.status)


def emulator_state(world: Harness) -> dict[str, Any]:
    return requests.get(f"{world.emulator.url}/_emulator/state", timeout=5).json()


def replicate_training(world: Harness, training_id: str) -> dict[str, Any]:
    record = world.repository().get_training(training_id)
    assert record is not None
    response = requests.get(f"{world.emulator.url}/v1/trainings/{record.replicate_training_id}",
                            headers={"authorization": "Bearer r8_local"}, timeout=5)
    return dict(response.json())


def activated_events(world: Harness) -> list[dict[str, Any]]:
    return world.events("ModelVersionActivated")


def train_to_completion(world: Harness, user_id: str) -> tuple[str, str]:
    training_id = seed_training(world, user_id)
    wait_for(lambda: training_status(world, training_id) == "succeeded", message="the training webhook")
    version_id = current_version_id(world, user_id)
    assert version_id is not None
    return training_id, version_id


def test_signed_success_activates_publishes_and_pins_the_next_generation(harness: Harness) -> None:
    # Given a user whose first training runs on the emulator
    training_id = seed_training(harness, "alice")
    # When the emulator finishes it and delivers its signed webhook
    wait_for(lambda: training_status(harness, training_id) == "succeeded", message="activation")
    # Then the model's current version is the destination's new version, from output.version
    body = replicate_training(harness, training_id)
    new_ref = body["output"]["version"]
    assert current_version_id(harness, "alice") == new_ref.split(":")[1]
    # and ModelVersionActivated went through the template's rule into the generation function's queue
    events = wait_for(lambda: activated_events(harness), message="ModelVersionActivated delivered")
    assert events[0]["result"] == {"released": 0}
    # carrying the webhook's id as its correlation id, so the consumer's logs join the producer's
    delivery = harness.webhook_deliveries("training")[0]
    assert events[0]["detail"]["correlation_id"] == delivery["webhook_id"]
    # and the next generation is pinned to exactly that version, with the trained trigger word
    response = harness.call("POST", "/generations", user="alice", body={"prompt": "a portrait at the beach"})
    assert response.status_code == 202, response.text
    generation = response.json()["generation"]
    assert generation["model_version_ref"] == new_ref
    assert generation["prompt"].startswith("TOK ")
    predictions = emulator_state(harness)["predictions"]
    sent = [p for p in predictions.values() if p["id"] == generation["replicate_prediction_id"]]
    assert sent[0]["version"] == new_ref.split(":")[1]


def test_duplicate_and_late_webhooks_change_nothing_and_answer_2xx(harness: Harness) -> None:
    first_training, first_version = train_to_completion(harness, "bob")
    second_training, second_version = train_to_completion(harness, "bob")
    assert second_version != first_version
    late_body = replicate_training(harness, first_training)
    # When the first training's success arrives again, late (a new delivery id) ...
    late = harness.post_webhook("training", late_body, query=f"training_id={first_training}")
    # ... and the second's arrives twice with the same webhook-id
    body = replicate_training(harness, second_training)
    once = harness.post_webhook("training", body, query=f"training_id={second_training}", webhook_id="msg_same")
    twice = harness.post_webhook("training", body, query=f"training_id={second_training}", webhook_id="msg_same")
    # Then every delivery answers 2xx and the current version is still the newest
    assert late.status_code == 200
    assert late.json()["outcome"] == "duplicate"
    assert once.status_code == 200
    assert once.json()["outcome"] == "duplicate"
    assert twice.status_code == 200
    assert twice.json()["outcome"] == "duplicate"
    assert current_version_id(harness, "bob") == second_version
    harness.quiet()  # every delivery answered, every event it published delivered
    assert len(activated_events(harness)) == 2


def test_a_failed_training_keeps_the_old_version(harness: Harness) -> None:
    _, version = train_to_completion(harness, "carol")
    harness.emulator.set_training_outcome("failed")
    failed_training = seed_training(harness, "carol")
    wait_for(lambda: training_status(harness, failed_training) == "failed", message="failure recorded")
    assert current_version_id(harness, "carol") == version
    # the user can train again once the webhook's handling has released the slot
    model = wait_for(lambda: (m := harness.repository().get_model("carol")) and not m.in_flight_training_id and m,
                     message="the slot released")
    assert model.status == "ready"


def test_a_forged_webhook_answers_401_and_writes_nothing(harness: Harness) -> None:
    harness.emulator.suppress_webhooks(1)  # before the training starts: it may finish at once
    training_id = seed_training(harness, "dave")
    wait_for(lambda: replicate_training(harness, training_id)["status"] == "succeeded", message="training done")
    body = replicate_training(harness, training_id)
    before = harness.tables_snapshot()
    forged = harness.post_webhook("training", body, query=f"training_id={training_id}", webhook_id="msg_forged",
                                  secret="whsec_" + "Zm9yZ2VkLXNlY3JldC1mb3ItdGVzdHM=")
    stale = harness.post_webhook("training", body, query=f"training_id={training_id}", webhook_id="msg_stale",
                                 at=int(time.time()) - 3600)
    assert forged.status_code == 401
    assert forged.json()["error"]["code"] == "INVALID_SIGNATURE"
    assert stale.status_code == 401
    assert harness.tables_snapshot() == before  # not even a webhook-id record
    assert current_version_id(harness, "dave") is None
    # and the genuine delivery still works afterwards
    genuine = harness.post_webhook("training", body, query=f"training_id={training_id}")
    assert genuine.json() == {"outcome": "activated"}


def test_concurrent_copies_of_one_delivery_activate_once(harness: Harness) -> None:
    """No per-delivery record: copies of one delivery racing each other are decided against the
    state, and the guarded write lets exactly one of them activate (I4)."""
    harness.emulator.suppress_webhooks(1)  # before the training starts: it may finish at once
    training_id = seed_training(harness, "cora")
    wait_for(lambda: replicate_training(harness, training_id)["status"] == "succeeded", message="the training")
    record = harness.repository().get_training(training_id)
    assert record is not None
    event = harness.signed_webhook("training", replicate_training(harness, training_id), webhook_id="msg_copies",
                                   query=f"training_id={training_id}&user_id=cora")
    url = f"{harness.api.url}/webhooks/replicate/training?{event['rawQueryString']}"
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: requests.post(url, data=event["body"], headers=event["headers"],
                                                        timeout=30), range(4)))
    assert sorted((a.status_code, a.json()["outcome"]) for a in answers) == [
        (200, "activated"), (200, "duplicate"), (200, "duplicate"), (200, "duplicate")]
    harness.quiet()
    assert len(activated_events(harness)) == 1


def test_a_malformed_body_is_400_even_when_signed(harness: Harness) -> None:
    response = harness.post_webhook("training", {"status": ["not", "a", "training"]})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MALFORMED_BODY"


def test_put_events_failing_after_the_write_is_healed_by_the_redelivery(harness: Harness,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    failures = {"left": 1}
    for pool in harness.local.pools.values():
        for module in pool.modules():
            client = module.runtime.publisher._client

            def flaky(*, Entries: list[dict[str, Any]], _original: Any = client.put_events) -> dict[str, Any]:
                if failures["left"] > 0:  # PutEvents accepts the call but rejects the entry
                    failures["left"] -= 1
                    return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure"}]}
                return dict(_original(Entries=Entries))

            monkeypatch.setattr(client, "put_events", flaky)
    training_id = seed_training(harness, "erin")
    # The first delivery commits the write, fails to publish and answers 503; Replicate retries.
    wait_for(lambda: activated_events(harness), message="the event after the redelivery")
    attempts = harness.webhook_deliveries("training")
    assert [a.get("status") for a in attempts][:2] == [503, 200]
    record = harness.repository().get_training(training_id)
    assert record is not None
    assert record.pending_event is None
    assert current_version_id(harness, "erin") == record.version_id
    harness.quiet()
    assert len(activated_events(harness)) == 1  # published once: by the redelivery, not twice


def test_a_waiting_generation_is_released_with_the_new_version(harness: Harness) -> None:
    harness.emulator.training_seconds = 120  # finished below, once the generation waits
    training_id = seed_training(harness, "frank")
    response = harness.call("POST", "/generations", user="frank", body={"prompt": "skiing", "num_outputs": 2})
    assert response.status_code == 202, response.text
    waiting = response.json()["generation"]
    assert waiting["status"] == "waiting_for_model"
    assert waiting["model_version_ref"] is None
    record = harness.repository().get_training(training_id)
    assert record is not None and record.replicate_training_id
    harness.emulator.complete_training_now(record.replicate_training_id)
    wait_for(lambda: training_status(harness, training_id) == "succeeded", message="training")

    def released() -> dict[str, Any] | None:
        got = harness.call("GET", f"/generations/{waiting['id']}", user="frank").json()["generation"]
        return got if got["model_version_ref"] else None

    generation = wait_for(released, message="release")
    assert generation["model_version_ref"] == replicate_training(harness, training_id)["output"]["version"]
    assert generation["prompt"] == "TOK skiing"
    done = wait_for(lambda: harness.call("GET", f"/generations/{waiting['id']}", user="frank")
                    .json()["generation"]["status"] == "succeeded", message="prediction webhook")
    assert done
    final = harness.call("GET", f"/generations/{waiting['id']}", user="frank").json()["generation"]
    assert len(final["outputs"]) == 2
    image = requests.get(final["outputs"][0], timeout=5)
    assert image.status_code == 200
    assert image.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_generation_without_any_model_is_409_no_model(harness: Harness) -> None:
    response = harness.call("POST", "/generations", user="nobody", body={"prompt": "x"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "NO_MODEL"
    invalid = harness.call("POST", "/generations", user="nobody", body={"prompt": "", "num_outputs": 9})
    assert invalid.status_code == 422
    assert invalid.json()["error"]["code"] == "INVALID_REQUEST"
    assert json.loads(invalid.text)["error"]["details"]
