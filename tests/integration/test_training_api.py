"""The training API over HTTP (issue 3): one path for first trainings and retrains, the destination
reused, the trigger word kept, photos merged or replaced and validated, rollback and history.

Photos travel the way a frontend sends them: POST /uploads, then the presigned form POST to moto's
S3, whose notification reaches the photo inspector. The emulator's call log shows what reached
Replicate."""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from typing import Any

import pytest
import requests

from infra.local.photos_fixture import make_photo
from infra.local.stack import LOCAL_OWNER
from lorapin.adapters.repository import Repository
from lorapin.adapters.settings import Settings
from lorapin.services.training_start import destination_name
from tests.harness import Harness, upload_photos, wait_for


def upload(world: Harness, user: str, photos: list[bytes], content_type: str = "image/jpeg") -> list[str]:
    return upload_photos(world, user, photos, content_type)


def photos(seeds: range) -> list[bytes]:
    return [make_photo(seed) for seed in seeds]


def start(world: Harness, user: str, **body: Any) -> requests.Response:
    """POST /trainings; after a 202, until the training submitter has run (Lambda's async invoke)."""
    response = world.call("POST", "/trainings", user=user, body=body)
    if response.status_code == 202:
        world.dispatcher.wait_drained()
    return response


def finished(world: Harness, user: str, training_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        training = world.call("GET", f"/trainings/{training_id}", user=user).json()["training"]
        return training if training["status"] in ("succeeded", "failed", "canceled") else None

    training: dict[str, Any] = wait_for(done, message=f"training {training_id}")
    return training


def current_version(world: Harness, user: str) -> str | None:
    model = world.call("GET", "/model", user=user).json()["model"]
    return model["current_version"]["id"] if model["current_version"] else None


def train(world: Harness, user: str, **body: Any) -> dict[str, Any]:
    response = start(world, user, **body)
    assert response.status_code == 202, response.text
    training = finished(world, user, response.json()["training"]["id"])
    assert training["status"] == "succeeded", training
    wait_for(lambda: current_version(world, user) == training["version_id"], message="activation")
    world.use_function_env("TrainingApiFunction")
    repository = Repository(Settings.from_env())  # the slot is released just after the activation
    wait_for(lambda: (m := repository.get_model(user)) is not None and not m.in_flight_training_id,
             message="the training slot released")
    return training


def replicate_calls(world: Harness, method: str, path: str) -> list[dict[str, Any]]:
    """This test's calls to Replicate of one method and path."""
    return [c for c in world.replicate_calls() if c["method"] == method and c["path"] == path]


def trainings_created(world: Harness) -> list[dict[str, Any]]:
    """This test's trainings.create calls: POST /v1/models/{trainer}/versions/{id}/trainings."""
    return [c for c in world.replicate_calls() if c["method"] == "POST" and c["path"].endswith("/trainings")]


def training_inputs(world: Harness, user: str) -> list[dict[str, Any]]:
    """What each trainings.create for `user`'s destination sent, oldest first."""
    destination = str(destination_name(LOCAL_OWNER, user))
    trainings = sorted(world.emulator.trainings.values(), key=lambda t: t["created_at"])
    return [dict(t["input"], destination=destination) for t in trainings
            if world.emulator._private[t["id"]]["destination"] == destination]


def zip_hashes(training_input: dict[str, Any]) -> set[str]:
    """Content hashes of the photos inside the zip the trainer was given."""
    archive = requests.get(training_input["input_images"], timeout=30)
    assert archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
        return {hashlib.sha256(zipped.read(name)).hexdigest() for name in zipped.namelist()}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def codes(response: requests.Response) -> list[str]:
    return sorted(f["code"] for f in response.json()["error"]["details"])


def test_retrain_reuses_destination_and_trigger_word_and_merges_photos(harness: Harness) -> None:
    first_photos, new_photos = photos(range(0, 12)), photos(range(50, 55))
    first = train(harness, "ana", image_keys=upload(harness, "ana", first_photos), trigger_word="ANAPHOTO")
    second = train(harness, "ana", image_keys=upload(harness, "ana", new_photos))

    # One models.create for the whole life of the model, and both trainings on that destination
    assert len(replicate_calls(harness, "POST", "/v1/models")) == 1
    sent = training_inputs(harness, "ana")
    assert [s["destination"] for s in sent] == [first["destination"]] * 2
    # The trigger word chosen at the first training is sent and stored again on the retrain
    assert [s["trigger_word"] for s in sent] == ["ANAPHOTO", "ANAPHOTO"]
    assert second["trigger_word"] == "ANAPHOTO"
    # Merge (the retrain default): the zip holds the old photos and the new ones
    assert second["mode"] == "merge" and second["image_count"] == 17
    assert zip_hashes(sent[1]) == {sha(p) for p in first_photos + new_photos}
    assert zip_hashes(sent[0]) == {sha(p) for p in first_photos}
    # Parameters come from the photo count, and no input the trainer lacks
    assert "num_repeats" not in sent[1]
    assert sent[1]["steps"] == second["params"]["steps"]
    # History: both versions, newest first, the newest current
    model = harness.call("GET", "/model", user="ana").json()["model"]
    assert [v["id"] for v in model["versions"]] == [second["version_id"], first["version_id"]]
    assert model["current_version"]["id"] == second["version_id"]


def test_replace_mode_trains_on_the_new_photos_only(harness: Harness) -> None:
    train(harness, "ben", image_keys=upload(harness, "ben", photos(range(0, 12))))
    new_photos = photos(range(80, 92))
    response = start(harness, "ben", image_keys=upload(harness, "ben", new_photos), mode="replace")
    assert response.status_code == 202, response.text
    finished(harness, "ben", response.json()["training"]["id"])
    assert zip_hashes(training_inputs(harness, "ben")[1]) == {sha(p) for p in new_photos}


def test_three_photos_warn_until_acknowledged_and_twenty_five_do_not(harness: Harness) -> None:
    keys = upload(harness, "cat", photos(range(0, 3)))
    warned = start(harness, "cat", image_keys=keys)
    assert warned.status_code == 422
    assert warned.json()["error"]["code"] == "IMAGE_VALIDATION"
    assert codes(warned) == ["LOW_IMAGE_COUNT"]
    assert "add 7 more" in warned.json()["error"]["details"][0]["message"]
    assert harness.call("GET", "/model", user="cat").status_code == 404  # nothing was written
    assert replicate_calls(harness, "POST", "/v1/models") == []
    acknowledged = start(harness, "cat", image_keys=keys, acknowledge_warnings=True)
    assert acknowledged.status_code == 202, acknowledged.text
    assert [f["code"] for f in acknowledged.json()["findings"]] == ["LOW_IMAGE_COUNT"]

    plenty = start(harness, "dan", image_keys=upload(harness, "dan", photos(range(100, 125))))
    assert plenty.status_code == 202, plenty.text
    assert plenty.json()["findings"] == []


def test_blurry_tiny_corrupt_and_duplicate_photos_each_get_their_code(harness: Harness) -> None:
    good = photos(range(0, 12))
    bad = [make_photo(60, blur=6), make_photo(61, size=300), make_photo(62)[:3000], good[0]]
    keys = upload(harness, "eve", good + bad)
    response = start(harness, "eve", image_keys=keys)
    assert response.status_code == 422
    findings = {f["image_key"]: f["code"] for f in response.json()["error"]["details"]}
    assert findings == {keys[12]: "BLURRY", keys[13]: "IMAGE_TOO_SMALL", keys[14]: "UNREADABLE_IMAGE",
                        keys[15]: "NEAR_DUPLICATE"}
    assert all(f["message"] for f in response.json()["error"]["details"])
    assert harness.call("GET", "/model", user="eve").status_code == 404
    assert trainings_created(harness) == []


def test_a_second_training_in_flight_is_409(harness: Harness) -> None:
    harness.emulator.training_seconds = 120  # still running at the second request, however slow the machine
    first_keys = upload(harness, "fay", photos(range(0, 12)))
    second_keys = upload(harness, "fay", photos(range(20, 32)))
    first = start(harness, "fay", image_keys=first_keys)
    assert first.status_code == 202
    again = start(harness, "fay", image_keys=second_keys)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "TRAINING_IN_PROGRESS"
    assert len(trainings_created(harness)) == 1


def test_a_failing_trainings_create_leaves_the_user_able_to_try_again(harness: Harness) -> None:
    keys = upload(harness, "gus", photos(range(0, 12)))
    harness.emulator.fail_next("POST", r"/trainings$", 500, count=10)
    accepted = start(harness, "gus", image_keys=keys)  # 202: Replicate is called after the answer
    assert accepted.status_code == 202, accepted.text
    failed = finished(harness, "gus", accepted.json()["training"]["id"])
    assert failed["status"] == "failed" and "500" in failed["error"]  # the submitter freed the slot
    harness.emulator.clear_faults()
    retried = start(harness, "gus", image_keys=keys)
    assert retried.status_code == 202, retried.text
    training = finished(harness, "gus", retried.json()["training"]["id"])
    assert training["status"] == "succeeded"
    assert training["seq"] == 2  # the abandoned attempt kept its seq; nothing reuses it
    assert len(replicate_calls(harness, "POST", "/v1/models")) == 1


def test_a_different_trigger_word_on_retrain_is_422_and_nothing_is_written(harness: Harness) -> None:
    first = train(harness, "hal", image_keys=upload(harness, "hal", photos(range(0, 12))), trigger_word="HALX")
    refused = start(harness, "hal", image_keys=upload(harness, "hal", photos(range(30, 33))), trigger_word="OTHER")
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "TRIGGER_WORD_LOCKED"
    assert "HALX" in refused.json()["error"]["message"]
    model = harness.call("GET", "/model", user="hal").json()["model"]
    assert model["trigger_word"] == "HALX" and len(model["versions"]) == 1
    assert len(trainings_created(harness)) == 1
    assert first["trigger_word"] == "HALX"


def test_rollback_pins_the_old_version_until_the_next_training(harness: Harness) -> None:
    v1 = train(harness, "ivy", image_keys=upload(harness, "ivy", photos(range(0, 12))))["version_id"]
    v2 = train(harness, "ivy", image_keys=upload(harness, "ivy", photos(range(40, 43))))["version_id"]

    def generate() -> str:
        answer = harness.call("POST", "/generations", user="ivy", body={"prompt": "on a boat"})
        assert answer.status_code == 202, answer.text
        return str(answer.json()["generation"]["model_version_ref"]).split(":")[1]

    assert generate() == v2
    rolled = harness.call("POST", "/model/rollback", user="ivy", body={"version_id": v1})
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["model"]["current_version"] == {**rolled.json()["model"]["current_version"], "id": v1,
                                                         "reason": "rollback"}
    events = wait_for(lambda: [e for e in harness.events("ModelVersionActivated")
                               if e["detail"]["reason"] == "rollback"], message="rollback event")
    assert events[0]["detail"]["version_id"] == v1 and events[0]["detail"]["training_id"] is None
    assert generate() == v1
    v3 = train(harness, "ivy", image_keys=upload(harness, "ivy", photos(range(70, 73))))["version_id"]
    assert generate() == v3 and len({v1, v2, v3}) == 3

    unknown = harness.call("POST", "/model/rollback", user="ivy", body={"version_id": "0" * 64})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "UNKNOWN_VERSION"


def test_get_training_is_served_from_dynamodb_without_calling_replicate(harness: Harness) -> None:
    training = train(harness, "lee", image_keys=upload(harness, "lee", photos(range(0, 12))))
    before = len(harness.replicate_calls())
    again = harness.call("GET", f"/trainings/{training['id']}", user="lee")
    assert again.status_code == 200 and again.json()["training"]["version_id"] == training["version_id"]
    assert len(harness.replicate_calls()) == before
    assert harness.call("GET", f"/trainings/{training['id']}", user="someone-else").status_code == 404


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/uploads", {"count": 0}),
    ("POST", "/uploads", {"count": 1, "content_type": "image/gif"}),
    ("POST", "/trainings", {"image_keys": "not-a-list"}),
    ("POST", "/trainings", {"image_keys": [], "mode": "sideways"}),
    ("POST", "/trainings", {"image_keys": [], "trigger_word": "has space"}),
    ("POST", "/trainings", {"image_keys": [], "user_id": "someone-else"}),
    ("POST", "/model/rollback", {"version_id": "owner/name:abc"}),
    ("POST", "/generations", {"prompt": "x", "num_outputs": 5}),
])
def test_each_routes_validation_errors_have_the_error_shape(harness: Harness, method: str, path: str,
                                                            body: dict[str, Any]) -> None:
    response = harness.call(method, path, user="val", body=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "INVALID_REQUEST"
    assert error["message"] and error["details"]


def test_no_model_and_no_images_have_their_codes(harness: Harness) -> None:
    assert harness.call("GET", "/model", user="new").json()["error"]["code"] == "NO_MODEL"
    empty = start(harness, "new", image_keys=[])
    assert empty.status_code == 422
    assert codes(empty) == ["NO_IMAGES"]


SPEC_ROUTES = {("POST", "/uploads"), ("POST", "/trainings"), ("GET", "/trainings/{id}"), ("GET", "/model"),
               ("POST", "/model/rollback"), ("POST", "/generations"), ("GET", "/generations/{id}"),
               ("POST", "/webhooks/replicate/training"), ("POST", "/webhooks/replicate/prediction")}


def openapi_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    """(METHOD, path) pairs of an OpenAPI document, with path parameters spelled `{id}`."""
    return {(method.upper(), re.sub(r"\{[^}]+\}", "{id}", path))
            for path, operations in document["paths"].items() for method in operations}


def test_one_openapi_document_lists_every_route_of_every_function(harness: Harness) -> None:
    served = harness.call("GET", "/openapi.json", user="doc")
    assert served.status_code == 200
    document = served.json()
    template_routes = {(route.method, re.sub(r"\{[^}]+\}", "{id}", route.path))
                       for route in harness.local.template.routes()}
    assert openapi_routes(document) == template_routes  # the whole API: nothing missing, nothing extra
    assert openapi_routes(document) >= SPEC_ROUTES
    assert document["components"]["securitySchemes"]["jwt"]["scheme"] == "bearer"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            public = path.startswith(("/webhooks/", "/openapi.json", "/docs"))
            assert bool(operation["security"]) != public, (method, path)
            for status, answer in operation["responses"].items():
                if status.startswith(("4", "5")) and status != "401":  # lorapin's error shape
                    assert answer["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
    page = harness.call("GET", "/docs", user="doc")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


def test_a_first_training_costs_two_replicate_calls_and_reuses_a_destination_left_behind(harness: Harness) -> None:
    keys = upload(harness, "max", photos(range(0, 12)))
    before = len(harness.replicate_calls())
    train(harness, "max", image_keys=keys)
    made = [(c["method"], c["path"]) for c in harness.replicate_calls()[before:]]
    assert [call for call in made if call[0] == "POST"] == [("POST", "/v1/models"), made[-1]]
    assert len(made) == 2 and made[-1][1].endswith("/trainings")
    # A destination created by an interrupted first attempt is reused, not an error
    left_behind = destination_name(LOCAL_OWNER, "ned")
    harness.emulator.add_model(left_behind.owner, left_behind.name)
    first = train(harness, "ned", image_keys=upload(harness, "ned", photos(range(20, 32))))
    assert first["destination"] == str(left_behind)


def test_cancel_over_http_stops_a_running_training_and_refuses_a_finished_one(harness: Harness) -> None:
    keys = upload(harness, "kim", photos(range(0, 12)))
    done = train(harness, "kim", image_keys=keys)
    finished_answer = harness.call("POST", f"/trainings/{done['id']}/cancel", user="kim")
    assert finished_answer.status_code == 409 and finished_answer.json()["error"]["code"] == "TRAINING_FINISHED"
    assert harness.call("POST", f"/trainings/{done['id']}/cancel", user="lee").status_code == 404  # I7
    harness.emulator.training_seconds = 3600  # the next one runs until canceled
    running = start(harness, "kim", image_keys=keys)
    assert running.status_code == 202, running.text
    canceled = harness.call("POST", f"/trainings/{running.json()['training']['id']}/cancel", user="kim")
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["training"]["status"] == "canceled"
    assert current_version(harness, "kim") == done["version_id"]  # I3
    again = start(harness, "kim", image_keys=keys)  # the slot is free
    assert again.status_code == 202, again.text


def test_lists_over_http_are_paged_and_refuse_a_bad_limit_or_cursor(harness: Harness) -> None:
    keys = upload(harness, "max2", photos(range(0, 12)))
    first = train(harness, "max2", image_keys=keys, trigger_word="MAXW")
    second = train(harness, "max2", image_keys=keys)
    page = harness.call("GET", "/trainings?limit=1", user="max2").json()
    assert [t["id"] for t in page["trainings"]] == [second["id"]] and page["next_cursor"]
    rest = harness.call("GET", f"/trainings?limit=1&cursor={page['next_cursor']}", user="max2").json()
    assert [t["id"] for t in rest["trainings"]] == [first["id"]]
    versions = harness.call("GET", "/model/versions", user="max2").json()
    assert [v["id"] for v in versions["versions"]] == [second["version_id"], first["version_id"]]
    assert versions["next_cursor"] is None and [v["active"] for v in versions["versions"]] == [True, False]
    model = harness.call("GET", "/model", user="max2").json()["model"]
    assert len(model["versions"]) == 2 and model["versions_next_cursor"] is None
    assert harness.call("GET", "/generations", user="max2").json() == {"generations": [], "next_cursor": None}
    too_many = harness.call("GET", "/trainings?limit=101", user="max2")
    assert too_many.status_code == 422 and too_many.json()["error"]["code"] == "INVALID_REQUEST"
    stolen = harness.call("GET", f"/trainings?limit=1&cursor={page['next_cursor']}", user="someone")
    assert stolen.status_code == 400 and stolen.json()["error"]["code"] == "INVALID_CURSOR"  # I7


def test_delete_account_over_http_removes_the_model_here_and_on_replicate(harness: Harness) -> None:
    keys = upload(harness, "gdpr", photos(range(0, 12)))
    done = train(harness, "gdpr", image_keys=keys, trigger_word="GDPRW")
    destination = done["destination"]
    deleted = harness.call("DELETE", "/account", user="gdpr")
    assert deleted.status_code == 200, deleted.text
    body = deleted.json()
    assert body["deleted"]["replicate_model"] is True and body["not_deleted"] == []
    assert body["deleted"]["objects"] >= 12 and body["deleted"]["rows"]["trainings"] == 1
    gone = requests.get(f"{harness.emulator.url}/v1/models/{destination}",
                        headers={"authorization": "Bearer r8_local"}, timeout=5)
    assert gone.status_code == 404
    after = harness.call("GET", "/model", user="gdpr")
    assert after.status_code == 404 and after.json()["error"]["code"] == "NO_MODEL"
    again = harness.call("DELETE", "/account", user="gdpr")
    assert again.status_code == 200 and again.json()["deleted"]["rows"]["model"] == 0
    # (AccountDeleted has no consumer in the stack to deliver it to: test_account.py checks it is published)
