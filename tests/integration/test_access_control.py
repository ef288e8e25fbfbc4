"""I7 and secrets over HTTP, on the integration world (moto's server, the emulator, the local API):
another user can neither read nor change what is someone else's, and learns nothing from trying;
photo keys outside the caller's prefix are refused before anything is read; presigned uploads are
one key each, under the caller's own prefix, short-lived; no secret reaches the logs."""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import io
import json
import logging
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests

from infra.local.photo_upload import send_photo
from infra.local.photos_fixture import make_photo
from infra.local.stack import LOCAL_API_TOKEN
from infra.local.tokens import issue_token
from lorapin.adapters.media import PRESIGNED_GET_SECONDS
from lorapin.domain.photo_set import MAX_IMAGE_BYTES
from lorapin.services.uploads import UPLOAD_URL_SECONDS
from tests.harness import Harness, seed_training, upload_photos, wait_for

UPLOAD_KEY = r"users/{user}/uploads/[0-9a-f]{{32}}\.{ext}"


# --- helpers -------------------------------------------------------------------------------------
def trained(world: Harness, user_id: str) -> tuple[str, str]:
    """A first training through the emulator's signed webhook: (training id, version id)."""
    training_id = seed_training(world, user_id)
    wait_for(lambda: (t := world.repository().get_training(training_id)) is not None and t.status == "succeeded",
             message=f"{user_id}'s training")
    model = wait_for(lambda: (m := world.repository().get_model(user_id)) is not None and m.current_version
                     and not m.in_flight_training_id and m, message=f"{user_id}'s slot freed")
    return training_id, str(model.current_version.id)


def generated(world: Harness, user_id: str) -> dict[str, Any]:
    """A generation that has finished, its outputs copied to our bucket."""
    response = world.call("POST", "/generations", user=user_id, body={"prompt": "a portrait"})
    assert response.status_code == 202, response.text
    generation_id = response.json()["generation"]["id"]

    def done() -> dict[str, Any] | None:
        got = world.call("GET", f"/generations/{generation_id}", user=user_id).json()["generation"]
        return dict(got) if got["status"] == "succeeded" else None

    return dict(wait_for(done, message=f"{user_id}'s generation"))


def upload(world: Harness, user_id: str, photos: list[bytes], content_type: str = "image/jpeg") -> list[str]:
    return upload_photos(world, user_id, photos, content_type)


def assert_leaks_nothing(response: requests.Response, secrets: Iterable[str], *, sent: str = "") -> None:
    """None of `secrets` appears in the answer, except what the caller sent itself."""
    leaked = [s for s in secrets if s and s in response.text and s not in sent]
    assert not leaked, f"{response.status_code} leaks {leaked}: {response.text[:500]}"


def error_code(response: requests.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}, response.text
    assert re.fullmatch(r"[A-Z][A-Z0-9_]*", body["error"]["code"]), response.text
    return str(body["error"]["code"])


def s3_operations(world: Harness) -> list[tuple[str, str]]:
    """Record each S3 call (operation, key) the training API's warm containers make from now on."""
    world.use_function_env("TrainingApiFunction")
    calls: list[tuple[str, str]] = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        calls.append((str(model.name), str(params.get("Key", ""))))

    for module in world.local.pools["TrainingApiFunction"].modules():
        module.runtime.media._s3.meta.events.register("before-parameter-build.s3", record)
    return calls


# --- another user's things -----------------------------------------------------------------------
def test_another_user_can_neither_read_nor_change_a_model_its_trainings_or_generations(harness: Harness) -> None:
    # Given alice with a trained model, an earlier version to roll back to, and a finished generation
    first_training, first_version = trained(harness, "alice")
    training_id = seed_training(harness, "alice")
    wait_for(lambda: (m := harness.repository().get_model("alice")) is not None and m.current_version is not None
             and m.current_version.id != first_version, message="alice's second version")
    generation = generated(harness, "alice")
    alice_model = harness.call("GET", "/model", user="alice").json()["model"]
    alice_training = harness.call("GET", f"/trainings/{training_id}", user="alice").json()["training"]
    current = alice_model["current_version"]
    output_keys = [unquote(urlsplit(url).path).split("/", 2)[2] for url in generation["outputs"]]
    alices = {
        "alice", training_id, first_training, generation["id"], first_version, current["id"], current["ref"],
        alice_model["destination"], alice_training["replicate_training_id"], generation["replicate_prediction_id"],
        "users/alice", *output_keys,
    }
    # and mallory, with a model of her own
    _, mallory_version = trained(harness, "mallory")

    # When mallory (and nobody, who has no model) asks for or about alice's things
    reads = {
        "training": harness.call("GET", f"/trainings/{training_id}", user="mallory"),
        "first training": harness.call("GET", f"/trainings/{first_training}", user="mallory"),
        "generation": harness.call("GET", f"/generations/{generation['id']}", user="mallory"),
        "nobody's training": harness.call("GET", f"/trainings/{training_id}", user="nobody"),
        "nobody's generation": harness.call("GET", f"/generations/{generation['id']}", user="nobody"),
        "nobody's model": harness.call("GET", "/model", user="nobody"),
    }
    # and when nobody signed in asks, API Gateway's authorizer answers before any function
    assert harness.call("GET", f"/generations/{generation['id']}").status_code == 401
    assert harness.call("GET", f"/trainings/{training_id}").status_code == 401
    # Then each is 404, in the error shape, and says nothing of alice's
    for what, response in reads.items():
        assert response.status_code == 404, (what, response.text)
        error_code(response)
        assert_leaks_nothing(response, alices)
    # and the answer for alice's training is exactly the answer for a training that does not exist
    absent_training = harness.call("GET", "/trainings/trn_doesnotexist0000", user="mallory")
    absent_generation = harness.call("GET", "/generations/gen_doesnotexist0000", user="mallory")
    assert (reads["training"].status_code, reads["training"].json()) == \
        (absent_training.status_code, absent_training.json())
    assert (reads["generation"].status_code, reads["generation"].json()) == \
        (absent_generation.status_code, absent_generation.json())

    # When mallory reads her own model, it is hers alone
    own = harness.call("GET", "/model", user="mallory")
    assert own.status_code == 200
    assert own.json()["model"]["current_version"]["id"] == mallory_version
    assert_leaks_nothing(own, alices)

    # When mallory tries to pin alice's versions, or nobody does
    for version_id in (first_version, current["id"]):
        body = {"version_id": version_id}
        rollback = harness.call("POST", "/model/rollback", user="mallory", body=body)
        assert rollback.status_code == 404, rollback.text
        assert error_code(rollback) == "UNKNOWN_VERSION"
        assert_leaks_nothing(rollback, alices, sent=version_id)
        nobody = harness.call("POST", "/model/rollback", user="nobody", body=body)
        assert nobody.status_code == 404, nobody.text
        assert error_code(nobody) == "NO_MODEL"
        assert_leaks_nothing(nobody, alices, sent=version_id)
    # and when mallory generates, her own version is used, never alice's
    mine = harness.call("POST", "/generations", user="mallory", body={"prompt": "me"})
    assert mine.status_code == 202, mine.text
    assert mine.json()["generation"]["model_version_ref"].endswith(f":{mallory_version}")
    assert_leaks_nothing(mine, alices)

    # Then nothing of alice's changed, and mallory's model is still hers
    assert harness.call("GET", "/model", user="alice").json()["model"] == alice_model
    assert harness.call("GET", f"/trainings/{training_id}", user="alice").json()["training"] == alice_training
    again = harness.call("GET", f"/generations/{generation['id']}", user="alice").json()["generation"]
    assert {k: v for k, v in again.items() if k != "outputs"} == {k: v for k, v in generation.items()
                                                                 if k != "outputs"}
    mallory = harness.repository().get_model("mallory")
    assert mallory is not None and mallory.current_version is not None
    assert mallory.current_version.id == mallory_version
    assert harness.repository().get_model("nobody") is None
    # and the outputs alice reads are short-lived links to her own prefix only
    for url in generation["outputs"]:
        assert unquote(urlsplit(url).path).split("/", 2)[2].startswith(f"users/alice/generations/{generation['id']}/")
        assert 0 < expires_in(url) <= PRESIGNED_GET_SECONDS + 5


def test_photo_keys_outside_the_callers_prefix_are_refused_before_anything_is_read(harness: Harness) -> None:
    # Given a real photo in alma's prefix, and one in bert's own
    [almas] = upload(harness, "alma", [make_photo(1, size=512)])
    [berts] = upload(harness, "bert", [make_photo(2, size=512)])
    bucket = harness.name("MediaBucket")
    stored = harness.stack.client("s3").head_object(Bucket=bucket, Key=almas)
    what_s3_knows = [str(stored["ETag"]).strip('"'), str(stored["ContentLength"]), str(stored["LastModified"])]
    s3_calls = s3_operations(harness)
    before = harness.tables_snapshot()
    name = almas.rsplit("/", 1)[-1]
    attempts = [
        [almas],  # alma's key as it is
        [berts, almas],  # smuggled in with one of his own
        [f"users/bert/uploads/../../alma/uploads/{name}"],  # a walk out of his prefix
        [f"users/bert/uploads/..%2F..%2Falice/uploads/{name}"],
        [f"/{almas}"],
        [f"users/bertie/uploads/{name}"],  # a prefix that merely starts like his
        [f"users/bert/trainings/{name}"],  # his prefix, but not his uploads
        ["users/alma/"],
    ]
    for keys in attempts:
        # When bert starts a training with photos that are not his uploads
        response = harness.call("POST", "/trainings", user="bert", body={"image_keys": keys,
                                                                       "acknowledge_warnings": True})
        # Then it is 403 FORBIDDEN_IMAGE_KEY, before S3 is asked anything
        assert response.status_code == 403, (keys, response.text)
        assert error_code(response) == "FORBIDDEN_IMAGE_KEY"
        assert s3_calls == [], (keys, s3_calls)
        assert_leaks_nothing(response, what_s3_knows)
    # and nothing was written or started: bert has no model, Replicate heard nothing
    assert harness.tables_snapshot() == before
    assert harness.replicate_calls() == []
    # and the spy was live: a key of his own with no inspection yet is looked up in S3
    never_uploaded = f"users/bert/uploads/{'b' * 32}.jpg"
    own = harness.call("POST", "/trainings", user="bert", body={"image_keys": [berts, never_uploaded]})
    assert own.status_code == 422, own.text
    assert ("HeadObject", never_uploaded) in s3_calls


# --- presigned uploads -----------------------------------------------------------------------------
def expires_in(url: str) -> float:
    """Seconds until a presigned URL expires (SigV4 `X-Amz-Expires` or SigV2 `Expires`)."""
    query = {k.lower(): v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    if "x-amz-expires" in query:
        signed_at = calendar.timegm(time.strptime(query["x-amz-date"], "%Y%m%dT%H%M%SZ"))
        return signed_at + int(query["x-amz-expires"]) - time.time()
    return int(query["expires"]) - time.time()


def policy_of(upload: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(base64.b64decode(upload["fields"]["policy"])))


def sigv2_signature(policy_b64: str, secret_key: str) -> str:
    """What S3 expects a SigV2 POST policy's signature to be."""
    return base64.b64encode(hmac.new(secret_key.encode(), policy_b64.encode(), hashlib.sha1).digest()).decode()


def test_presigned_uploads_are_one_fresh_key_each_under_the_callers_prefix_short_lived_and_capped(
        harness: Harness) -> None:
    # When ada asks for three PNG uploads
    response = harness.call("POST", "/uploads", user="ada", body={"count": 3, "content_type": "image/png"})
    # Then she gets three form POSTs, each for its own fresh key under users/ada/uploads/
    assert response.status_code == 201, response.text
    uploads = response.json()["uploads"]
    assert len(uploads) == 3
    assert len({u["key"] for u in uploads}) == 3
    bucket = harness.name("MediaBucket")
    secret_key = harness.env("TrainingApiFunction")["AWS_SECRET_ACCESS_KEY"]
    for target in uploads:
        assert re.fullmatch(UPLOAD_KEY.format(user="ada", ext="png"), target["key"]), target["key"]
        assert target["method"] == "POST" and target["max_bytes"] == MAX_IMAGE_BYTES
        assert target["fields"]["key"] == target["key"] and target["fields"]["Content-Type"] == "image/png"
        policy = policy_of(target)
        # short-lived: about UPLOAD_URL_SECONDS (15 minutes), never more
        expires = calendar.timegm(time.strptime(policy["expiration"][:19], "%Y-%m-%dT%H:%M:%S"))
        assert UPLOAD_URL_SECONDS - 60 <= expires - time.time() <= UPLOAD_URL_SECONDS + 5 <= 15 * 60 + 5
        # S3 enforces, for this bucket: exactly this key, this content type, 1 byte to 20 MiB
        assert {"bucket": bucket} in policy["conditions"] and {"key": target["key"]} in policy["conditions"]
        assert {"Content-Type": "image/png"} in policy["conditions"]
        assert ["content-length-range", 1, MAX_IMAGE_BYTES] in policy["conditions"]
        # and the policy is signed: a caller who widens it breaks the signature
        if "signature" in target["fields"]:
            assert target["fields"]["signature"] == sigv2_signature(target["fields"]["policy"], secret_key)
            wider = base64.b64encode(json.dumps({**policy, "conditions": [
                c for c in policy["conditions"] if not (isinstance(c, list) and c[0] == "content-length-range")]})
                .encode()).decode()
            assert target["fields"]["signature"] != sigv2_signature(wider, secret_key)
        else:
            assert target["fields"]["x-amz-signature"]
    # and the upload lands at exactly that key, with that content type
    sent = send_photo(uploads[0], make_photo(3, size=512, fmt="PNG"), content_type="image/png")
    assert sent.status_code == 204, sent.text
    head = harness.stack.client("s3").head_object(Bucket=bucket, Key=uploads[0]["key"])
    assert head["ContentType"] == "image/png"

    # When the count or the content type is out of bounds, no upload is handed out
    for body in ({"count": 0}, {"count": 51}, {"count": -1}, {"count": 3, "content_type": "image/gif"},
                 {"count": 1, "content_type": "text/html"}, {"count": 1, "content_type": "application/zip"},
                 {"count": 1, "key": "users/bert/uploads/x.jpg"}, {"count": 1, "user_id": "bert"}):
        refused = harness.call("POST", "/uploads", user="ada", body=body)
        assert refused.status_code == 422, (body, refused.text)
        assert error_code(refused) == "INVALID_REQUEST"
        assert "url" not in refused.text
    # and without a token API Gateway answers before the function (401)
    assert harness.call("POST", "/uploads", body={"count": 1}).status_code == 401
    many = harness.call("POST", "/uploads", user="ada", body={"count": 50})
    assert many.status_code == 201
    assert all(re.fullmatch(UPLOAD_KEY.format(user="ada", ext="jpg"), u["key"]) for u in many.json()["uploads"])
    heic = harness.call("POST", "/uploads", user="ada", body={"count": 1, "content_type": "image/heic"})
    assert re.fullmatch(UPLOAD_KEY.format(user="ada", ext="heic"), heic.json()["uploads"][0]["key"])


def test_s3_refuses_an_upload_that_breaks_its_policy_and_stores_nothing(harness: Harness) -> None:
    [target] = harness.call("POST", "/uploads", user="ines", body={"count": 1}).json()["uploads"]
    s3, bucket = harness.stack.client("s3"), harness.name("MediaBucket")
    # a file over 20 MiB: S3 answers EntityTooLarge
    too_large = send_photo(target, b"\xff\xd8\xff" + b"\0" * MAX_IMAGE_BYTES)
    assert too_large.status_code == 400 and "EntityTooLarge" in too_large.text
    # another content type than the policy's, or another key: AccessDenied
    wrong_type = requests.post(target["url"], data={**target["fields"], "Content-Type": "text/html"},
                               files={"file": ("photo", b"<html>", "text/html")}, timeout=30)
    assert wrong_type.status_code == 403
    other_key = requests.post(target["url"], data={**target["fields"], "key": "users/ines/uploads/other.jpg"},
                              files={"file": ("photo", make_photo(1), "image/jpeg")}, timeout=30)
    assert other_key.status_code == 403
    assert s3.list_objects_v2(Bucket=bucket, Prefix="users/ines/").get("KeyCount") == 0
    # the same form within its policy is stored
    assert send_photo(target, make_photo(1)).status_code == 204
    assert s3.list_objects_v2(Bucket=bucket, Prefix="users/ines/")["KeyCount"] == 1


def test_a_photo_over_the_size_limit_that_slipped_past_s3_is_refused_by_the_inspector(harness: Harness) -> None:
    # Given a file over the limit written without the upload's policy (e.g. by an older client's PUT)
    key = f"users/aria/uploads/{'a' * 32}.jpg"
    harness.stack.client("s3").put_object(Bucket=harness.name("MediaBucket"), Key=key,
                                          Body=b"\xff\xd8\xff" + b"\0" * (MAX_IMAGE_BYTES + 1024))
    harness.dispatcher.wait_drained()  # S3's notification reached the inspector
    # When aria trains with it
    response = harness.call("POST", "/trainings", user="aria", body={"image_keys": [key],
                                                                     "acknowledge_warnings": True})
    # Then the photo is refused as too large (the inspector judged it by its size, unread:
    # tests/unit/test_photo_inspection.py), and nothing is written
    assert response.status_code == 422, response.text
    assert error_code(response) == "IMAGE_VALIDATION"
    findings = response.json()["error"]["details"]
    assert {"code": "IMAGE_TOO_LARGE", "image_key": key} in [
        {"code": f["code"], "image_key": f.get("image_key")} for f in findings]
    assert harness.repository().get_model("aria") is None


# --- secrets and logs --------------------------------------------------------------------------------
@pytest.fixture
def function_logs() -> Iterator[io.StringIO]:
    """The functions' Powertools log lines, formatted exactly as Lambda would write them to stdout.

    The Logger's own handler holds the stdout of import time, which pytest's capture fixtures do
    not see, so a second handler with the same formatter writes here too."""
    from lorapin.observability import logger

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logging.getLogger(logger.name).addHandler(handler)
    yield stream
    logging.getLogger(logger.name).removeHandler(handler)


def test_no_secret_reaches_the_logs_of_a_full_flow(harness: Harness, capfd: pytest.CaptureFixture[str],
                                                   function_logs: io.StringIO) -> None:
    signing_secret = str(harness.emulator.signing_secret)
    secrets = {
        "the Replicate API token": LOCAL_API_TOKEN,
        "the webhook signing secret": signing_secret,
        "the signing key inside it": signing_secret.removeprefix("whsec_"),
    }
    tokens = {user: issue_token(user) for user in ("lena", "cara")}
    capfd.readouterr()  # only what follows
    function_logs.truncate(0)
    # Given a full flow through the API: uploads, a training that Replicate completes by webhook,
    # a generation that completes by webhook
    keys = upload(harness, "lena", [make_photo(seed, size=512) for seed in range(3)])
    started = requests.post(f"{harness.api.url}/trainings", json={"image_keys": keys, "acknowledge_warnings": True},
                            headers={"authorization": f"Bearer {tokens['lena']}"}, timeout=60)
    assert started.status_code == 202, started.text
    training_id = started.json()["training"]["id"]
    wait_for(lambda: harness.call("GET", f"/trainings/{training_id}", user="lena").json()["training"]["status"]
             == "succeeded", message="lena's training")
    generated(harness, "lena")
    # and a training started the way the core pipeline tests do, a generation on it
    trained(harness, "cara")
    done = requests.post(f"{harness.api.url}/generations", json={"prompt": "cara at sea"},
                         headers={"authorization": f"Bearer {tokens['cara']}"}, timeout=30)
    assert done.status_code == 202, done.text
    # and the paths that log on purpose: a forged and a stale delivery, a Replicate failure
    body = {"id": "x", "status": "succeeded"}
    forged = harness.post_webhook("training", body, secret="whsec_" + base64.b64encode(b"forged" * 4).decode())
    stale = harness.post_webhook("training", body, at=int(time.time()) - 3600)
    assert (forged.status_code, stale.status_code) == (401, 401)
    harness.emulator.fail_next("POST", r"^/v1/predictions$", 500, count=5)
    failing = harness.call("POST", "/generations", user="lena", body={"prompt": "again"})
    assert failing.status_code >= 500
    harness.quiet()  # the last webhook deliveries answered (and logged)
    captured = capfd.readouterr()
    logs = function_logs.getvalue() + captured.out + captured.err
    # Then the functions' logs were captured ...
    for message in ("training started", "training webhook handled", "generation requested",
                    "prediction webhook handled", "webhook signature rejected"):
        assert message in logs, f"{message!r} not in the captured logs"
    # ... and none of the secrets, nor a user's bearer token, is in them
    for what, secret in secrets.items():
        assert secret not in logs, f"{what} appears in the logs"
    for user, token in tokens.items():
        assert token not in logs, f"{user}'s bearer token appears in the logs"
        assert token.split(".")[2] not in logs, f"{user}'s token signature appears in the logs"
