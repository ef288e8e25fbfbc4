"""The local stack is read from template.yaml: change the template and what runs changes with it."""

from __future__ import annotations

import contextlib
import copy
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from infra.local.template import Template, load_template
from lorapin.adapters.repository import Repository
from lorapin.adapters.settings import Settings
from tests.harness import Harness, seed_training, wait_for


@pytest.fixture
def document() -> dict[str, Any]:
    return copy.deepcopy(load_template())


@pytest.fixture
def start(moto_server: str) -> Iterator[Any]:
    """A world of its own, built from a changed copy of the template."""
    from infra.emulator import ReplicateEmulator

    with contextlib.ExitStack() as stack:
        def _start(doc: dict[str, Any]) -> Harness:
            emulator = stack.enter_context(ReplicateEmulator(training_seconds=0.2, prediction_seconds=0.1))
            return stack.enter_context(Harness.start(moto_server, emulator, template=Template(doc),
                                                     prefix=f"t{uuid.uuid4().hex[:10]}"))
        yield _start


def events_of(document: dict[str, Any], function_id: str) -> dict[str, Any]:
    events: dict[str, Any] = document["Resources"][function_id]["Properties"]["Events"]
    return events


def test_a_route_removed_from_the_template_is_no_longer_served(document: dict[str, Any], start: Any,
                                                               harness: Harness) -> None:
    # The unchanged template serves GET /model: the function answers
    served = harness.call("GET", "/model", user="ann")
    assert served.status_code == 404
    assert served.json()["error"]["code"] == "NO_MODEL"
    # Without that route in the template, nothing serves it
    events = events_of(document, "TrainingApiFunction")
    route = next(name for name, e in events.items() if e["Type"] == "HttpApi" and e["Properties"]["Path"] == "/model")
    del events[route]
    world = start(document)
    removed = world.call("GET", "/model", user="ann")
    assert removed.status_code == 404
    assert removed.json() == {"message": "Not Found"}  # API Gateway's own answer: no route, no function ran
    kept = world.call("POST", "/uploads", user="ann", body={"count": 1})
    assert kept.status_code == 201


def test_a_changed_rule_pattern_changes_what_is_delivered(document: dict[str, Any], start: Any) -> None:
    events = events_of(document, "GenerationFunction")
    rule = next(e for e in events.values() if e["Type"] == "EventBridgeRule")
    rule["Properties"]["Pattern"]["detail-type"] = ["SomethingElse"]
    world = start(document)
    world.emulator.training_seconds = 120  # finished below, once the generation waits for it
    training_id = seed_training(world, "bea")
    waiting = world.call("POST", "/generations", user="bea", body={"prompt": "hello"}).json()["generation"]
    assert waiting["status"] == "waiting_for_model"
    world.use_function_env()
    repository = Repository(Settings.from_env())
    record = repository.get_training(training_id)
    assert record is not None and record.replicate_training_id
    world.emulator.complete_training_now(record.replicate_training_id)
    wait_for(lambda: (t := repository.get_training(training_id)) is not None and t.status == "succeeded",
             message="activation")
    # moto's rule no longer matches ModelVersionActivated: nothing reaches the generation function
    world.quiet()  # the webhook answered (its PutEvents done), and every queued event delivered
    assert world.dispatcher.delivered == []
    still = world.call("GET", f"/generations/{waiting['id']}", user="bea").json()["generation"]
    assert still["status"] == "waiting_for_model"
