"""The `events/` samples that `sam local invoke` would use, run through their handlers in-process
(moto in-process, resources and environment from template.yaml), re-signed like `infra.resign_event`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.local.functions import LocalContext, load_handler
from infra.local.photos_fixture import make_photo
from infra.local.template import Template
from infra.resign_event import resign
from lorapin.adapters.photo_records import PhotoRecords
from lorapin.adapters.repository import Repository, TrainingStarts
from lorapin.adapters.settings import Settings
from lorapin.adapters.tables import PhotoSetItem, TrainingItem
from tests.fixtures import UNIT_SIGNING_SECRET

EVENTS = Path(__file__).resolve().parents[2] / "events"


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((EVENTS / name).read_text()))


def seed_from_sample(repo: Repository) -> None:
    """State matching the samples: user-sample-1's training trn_20260101000000a1b2c3d4e5f60718 is running."""
    body = json.loads(load("training_succeeded.json")["body"])
    destination = body["output"]["version"].split(":")[0]
    model = repo.new_model("user-sample-1", destination=destination, trigger_word="TOK", status="training",
                           created_at="2026-11-24T10:00:00.000Z")
    training = TrainingItem("trn_20260101000000a1b2c3d4e5f60718", user_id="user-sample-1", seq=1, status="starting",
                            trigger_word="TOK", destination=destination, trainer_model=body["model"],
                            trainer_version=body["version"], created_at="2026-11-24T10:00:00.000Z")
    TrainingStarts(repo).begin(None, training, new_model=model, photo_set=PhotoSetItem(
        training.user_id, training.training_id, entries=[], created_at=training.created_at))
    TrainingStarts.attach_replicate_training(training, body["id"], "starting")


@pytest.fixture
def handlers(in_process_aws: Any) -> dict[str, Any]:
    template = Template()
    return {fid: load_handler(spec, in_process_aws.function_env[fid]) for fid, spec in template.functions().items()
            if fid in ("ReplicateWebhookFunction", "GenerationFunction", "PhotoInspectorFunction")}


def invoke(handlers: dict[str, Any], function_id: str, event: dict[str, Any]) -> Any:
    return handlers[function_id](event, LocalContext(function_id))


def test_every_sample_event_parses_and_names_a_template_route_or_rule() -> None:
    template = Template()
    routes = {(r.method, r.path) for r in template.routes()}
    for path in sorted(EVENTS.glob("*.json")):
        event = json.loads(path.read_text())
        if "detail-type" in event:
            patterns = [rule.pattern for spec in template.functions().values() for rule in spec.rules]
            assert any(event["detail-type"] in p["detail-type"] and event["source"] in p["source"] for p in patterns)
        else:
            assert (event["requestContext"]["http"]["method"], event["rawPath"]) in routes or \
                event["rawPath"].startswith("/generations")


def test_training_succeeded_sample_activates_after_resigning(handlers: dict[str, Any]) -> None:
    repo = Repository(Settings.from_env())
    seed_from_sample(repo)
    stale = invoke(handlers, "ReplicateWebhookFunction", load("training_succeeded.json"))
    assert stale["statusCode"] == 401  # as shipped, its signature is long stale
    response = invoke(handlers, "ReplicateWebhookFunction", resign(load("training_succeeded.json"),
                                                                   UNIT_SIGNING_SECRET))
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"outcome": "activated"}
    model = repo.get_model("user-sample-1")
    assert model is not None
    assert model.current_version is not None
    assert model.current_version.id == json.loads(load("training_succeeded.json")["body"])["output"]["version"][-64:]


def test_training_failed_sample_is_recorded_and_keeps_no_version(handlers: dict[str, Any]) -> None:
    repo = Repository(Settings.from_env())
    seed_from_sample(repo)
    response = invoke(handlers, "ReplicateWebhookFunction", resign(load("training_failed.json"), UNIT_SIGNING_SECRET))
    assert json.loads(response["body"]) == {"outcome": "recorded"}
    training = repo.get_training("trn_20260101000000a1b2c3d4e5f60718")
    assert training is not None
    assert training.status == "failed"
    assert training.error == "CUDA out of memory"
    model = repo.get_model("user-sample-1")
    assert model is not None
    assert model.current_version is None


def test_model_version_activated_sample_is_ignored_when_not_current(handlers: dict[str, Any]) -> None:
    result = invoke(handlers, "GenerationFunction", load("model_version_activated.json"))
    assert result == {"released": 0}


def test_generation_request_sample_answers_no_model_for_an_unknown_user(handlers: dict[str, Any]) -> None:
    response = invoke(handlers, "GenerationFunction", load("generation_request.json"))
    assert response["statusCode"] == 409
    assert json.loads(response["body"])["error"]["code"] == "NO_MODEL"


def test_prediction_sample_for_an_unknown_generation_is_ignored(handlers: dict[str, Any]) -> None:
    response = invoke(handlers, "ReplicateWebhookFunction",
                      resign(load("prediction_succeeded.json"), UNIT_SIGNING_SECRET))
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"outcome": "ignored_unknown"}


def test_photo_uploaded_sample_is_inspected_and_recorded(handlers: dict[str, Any], in_process_aws: Any) -> None:
    event = load("photo_uploaded.json")
    key = event["detail"]["object"]["key"]
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=in_process_aws.names["MediaBucket"], Key=key, Body=make_photo(3), ContentType="image/jpeg")
    assert invoke(handlers, "PhotoInspectorFunction", event) == {"photo_key": key, "inspected": True, "usable": True}
    record = PhotoRecords(Settings.from_env(in_process_aws.function_env["PhotoInspectorFunction"])).get(
        "user-sample-1", key)
    assert record is not None and record.usable and record.width == 1024
