"""Starting a training (issues 10 and 11): `start` decides from stored inspections and claims the
slot; `submit` (the training submitter, after the 202) streams the zip and creates the training.
Between claiming the slot and storing Replicate's id every fault frees the slot or adopts what
Replicate created. Photos are real images in (in-memory) S3, inspected by the real inspector
service; Replicate is the in-memory fake; Lambda's Invoke runs our functions in-process."""

from __future__ import annotations

import io
import subprocess
import sys
import uuid
import zipfile
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from infra.local.photos_fixture import make_photo
from lorapin.adapters.media import MediaStore
from lorapin.adapters.replicate_gateway import CreateOutcomeUnknown
from lorapin.adapters.repository import TrainingStarts
from lorapin.adapters.tables import ModelItem, TrainingItem, VersionInfo
from lorapin.domain.clock import iso, now_iso, utc_now
from lorapin.domain.errors import (
    DependencyUnavailable,
    ImageValidationFailed,
    ModeRequired,
    PhotosPending,
    TrainingInProgress,
    UpstreamUnavailable,
)
from lorapin.domain.versions import ModelName
from lorapin.services.training_start import INLINE_INSPECTIONS, TrainingRequest
from tests.unit.conftest import Services


def upload(services: Services, count: int = 12, *, first_seed: int = 0, inspect: bool = True,
           fmt: str = "JPEG") -> list[str]:
    """Photos uploaded under the user's prefix; `inspect`: their arrival notification was handled."""
    keys = []
    extension = {"JPEG": "jpg", "HEIF": "heic", "PNG": "png"}[fmt]
    for seed in range(first_seed, first_seed + count):
        key = f"users/{services.user}/uploads/{uuid.uuid4().hex}.{extension}"
        services.runtime.media.put(key, make_photo(seed, fmt=fmt), "image/jpeg")
        if inspect:
            services.runtime.photo_inspections().on_arrival(key)
        keys.append(key)
    return keys


def start(services: Services, keys: list[str], **request: Any) -> Any:
    return services.runtime.trainings().start(services.user, TrainingRequest(image_keys=keys, **request))


def finish(services: Services, training_id: str, status: str = "succeeded") -> None:
    training = services.repository.get_training(training_id)
    assert training is not None and training.replicate_training_id is not None
    finished = services.replicate.finish_training(str(training.replicate_training_id), status)
    services.runtime.completion().apply(finished, training_id_hint=training_id)


def train(services: Services, keys: list[str], **request: Any) -> str:
    started = start(services, keys, acknowledge_warnings=True, **request)
    finish(services, started.training.training_id)
    return str(started.training.training_id)


def set_keys(services: Services) -> list[str]:
    return [photo["key"] for photo in services.runtime.photo_library().photos(services.user)["photos"]]


def zipped_names(services: Services, training_id: str) -> list[str]:
    key = f"users/{services.user}/trainings/{training_id}.zip"
    return zipfile.ZipFile(io.BytesIO(services.runtime.media.get(key))).namelist()


# --- issue 10: a start cannot be half-done -------------------------------------------------------
def test_a_first_training_that_never_reached_replicate_leaves_the_model_failed_not_training(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """The abandon freed the slot itself before settling the model, so the settling found it free
    and never fixed the status: a user with no version was shown a model still `training`."""
    keys = upload(services)

    def failing_write(*_: Any) -> int:
        raise ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}},
                          "UploadPart")

    monkeypatch.setattr(services.runtime.media, "write_zip", failing_write)
    start(services, keys)
    assert services.functions.submissions() == ["failed"]
    model = services.repository.get_model(services.user)
    assert model is not None and model.current_version is None
    assert model.status == "failed"


def test_a_later_attempt_that_cannot_tell_whether_an_earlier_one_created_the_training_creates_none(
        services: Services) -> None:
    """An attempt after one that stopped midway looks the training up on Replicate first; when
    Replicate's list cannot say (an outage), creating again could make two trainings of one: it
    leaves the training `starting` for the reconciler's look-up instead."""
    keys = upload(services)
    services.functions.hold_starts = True
    started = start(services, keys)
    stored = services.repository.get_training(started.training.training_id)
    assert stored is not None and TrainingStarts.lease_submission(stored) == 1  # the attempt that stopped
    stored.update(actions=[TrainingItem.submit_lease_until.set(iso(utc_now() - timedelta(seconds=1)))])
    services.replicate.fail_next("list_trainings", UpstreamUnavailable("Replicate is down"))

    assert services.functions.run_held() == ["unconfirmed"]
    assert services.replicate.trainings == {}  # nothing created twice
    stored = services.repository.get_training(started.training.training_id)
    assert stored is not None and stored.status == "starting" and stored.replicate_training_id is None
    model = services.repository.get_model(services.user)
    assert model is not None and model.in_flight_training_id == stored.training_id  # still held


def test_problem_5_an_s3_fault_while_building_the_zip_frees_the_slot(services: Services,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: a ClientError from S3 was not in the abandon path: the slot stayed held and the
    retry answered 409 TRAINING_IN_PROGRESS for minutes."""
    keys = upload(services)
    media = services.runtime.media

    def failing_write(*_: Any) -> int:
        raise ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}},
                          "UploadPart")

    monkeypatch.setattr(media, "write_zip", failing_write)
    start(services, keys)  # 202: the zip is built after the answer
    assert services.functions.submissions() == ["failed"]
    model = services.repository.get_model(services.user)
    assert model is not None and model.in_flight_training_id is None  # the user may try again at once
    [abandoned] = services.repository.trainings_of(services.user)
    assert abandoned.status == "failed" and abandoned.due_shard is None  # its event is out: nothing left to do
    assert "SlowDown" in str(abandoned.error)
    assert services.replicate.trainings == {}  # nothing reached Replicate
    assert [e["training_id"] for e in services.bus.events("TrainingFailed")] == [abandoned.training_id]
    monkeypatch.undo()
    retried = start(services, keys)
    assert int(retried.training.seq) == 2 and services.functions.submissions()[-1] == "submitted"


def test_problem_6_a_training_create_that_timed_out_is_adopted_and_holds_the_slot(services: Services) -> None:
    """Before: a timeout of trainings.create was treated as "not created": the slot was freed
    while Replicate trained, a second training could start, and drift followed."""
    keys = upload(services)
    services.replicate.create_then_time_out("create_training")
    started = start(services, keys)
    [created] = services.replicate.trainings.values()
    stored = services.repository.get_training(started.training.training_id)
    assert stored is not None and stored.replicate_training_id == created["id"]  # adopted
    assert created["input"]["input_images"].count(started.training.training_id) == 1  # found by our id
    with pytest.raises(TrainingInProgress):  # the slot is held by the training Replicate runs
        start(services, keys)
    assert services.replicate.calls.count("create_training") == 1


def test_a_training_create_that_timed_out_and_created_nothing_frees_the_slot(services: Services) -> None:
    keys = upload(services)
    services.replicate.fail_next("create_training", CreateOutcomeUnknown("Replicate did not answer"))
    start(services, keys)
    assert services.functions.submissions() == ["failed"]
    model = services.repository.get_model(services.user)
    assert model is not None and model.in_flight_training_id is None
    assert services.replicate.trainings == {}


def test_when_replicate_cannot_tell_the_training_waits_for_the_reconciler_to_find_out(services: Services) -> None:
    keys = upload(services)
    services.replicate.create_then_time_out("create_training")
    services.replicate.fail_next("list_trainings", UpstreamUnavailable("Replicate answered 503"))
    started = start(services, keys)
    assert services.functions.submissions() == ["unconfirmed"]
    stored = services.repository.get_training(started.training.training_id)
    assert stored is not None and stored.replicate_training_id is None and stored.status == "starting"
    model = services.repository.get_model(services.user)
    assert model is not None and model.in_flight_training_id == started.training.training_id


def test_a_submission_runs_once_however_often_lambda_delivers_it(services: Services) -> None:
    keys = upload(services)
    services.functions.hold_starts = True
    started = start(services, keys)
    [payload] = services.functions.held
    services.functions.held = [payload, payload]  # Lambda's asynchronous invocation is at least once
    assert services.functions.run_held() == ["submitted", "not_starting"]
    assert services.replicate.calls.count("create_training") == 1
    assert started.training.training_id in services.replicate.trainings[next(iter(services.replicate.trainings))][
        "input"]["input_images"]


def test_a_start_that_cannot_reach_the_submitter_frees_the_slot(services: Services) -> None:
    keys = upload(services)
    services.functions.fail_next_start = DependencyUnavailable("Could not start the submitter; retry shortly.")
    with pytest.raises(DependencyUnavailable):  # 503 with Retry-After
        start(services, keys)
    model = services.repository.get_model(services.user)
    assert model is not None and model.in_flight_training_id is None
    [abandoned] = services.repository.trainings_of(services.user)
    assert abandoned.status == "failed"


# --- issue 11: photos at real scale --------------------------------------------------------------
def test_the_training_api_path_imports_no_image_library() -> None:
    """POST /trainings decodes nothing: what the training API imports pulls in neither Pillow nor
    pillow-heif (the built training API does not carry them: tests/artifact)."""
    code = ("import sys; import lorapin.services.training_start, lorapin.services.photo_library, "
            "lorapin.services.uploads, lorapin.http.resolver; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PIL', 'pillow_heif')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"PYTHONPATH": "shared", "PATH": ""})
    assert result.stdout.strip() == "[]"


def test_the_start_reads_inspections_and_never_the_photos(services: Services,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    keys = upload(services)
    services.functions.hold_starts = True  # the submitter (which streams the bytes) runs later

    def no_reads(*_: Any, **__: Any) -> Any:
        raise AssertionError("POST /trainings read a photo's bytes")

    monkeypatch.setattr(MediaStore, "get", no_reads)
    monkeypatch.setattr(MediaStore, "get_with_etag", no_reads)
    started = start(services, keys)
    assert int(started.training.image_count) == 12 and started.findings == []


def test_photos_whose_notification_is_late_are_inspected_on_the_spot_up_to_a_budget(services: Services) -> None:
    few = upload(services, INLINE_INSPECTIONS, inspect=False)
    started = start(services, [*upload(services, 4, first_seed=50), *few])
    assert int(started.training.image_count) == 4 + INLINE_INSPECTIONS
    assert [kind for kind, payload in services.functions.calls if "inspect" in payload] == ["call"]


def test_too_many_uninspected_photos_answer_photos_pending_and_queue_their_inspection(services: Services) -> None:
    keys = upload(services, INLINE_INSPECTIONS + 4, inspect=False)
    services.functions.hold_starts = True  # the queued inspection has not run yet
    with pytest.raises(PhotosPending) as pending:
        start(services, keys)
    assert pending.value.status == 409 and pending.value.retry_after_seconds
    assert [d["image_key"] for d in pending.value.details] == keys[INLINE_INSPECTIONS:]
    assert services.repository.get_model(services.user) is None  # nothing written
    services.functions.run_held()  # the queued inspection ran: the retry goes through
    services.functions.hold_starts = False
    assert int(start(services, keys).training.image_count) == len(keys)


def test_a_key_never_uploaded_is_a_finding_not_a_pending_photo(services: Services) -> None:
    keys = upload(services)
    ghost = f"users/{services.user}/uploads/{uuid.uuid4().hex}.jpg"
    with pytest.raises(ImageValidationFailed) as refused:
        start(services, [*keys, ghost])
    assert [(d["code"], d["image_key"]) for d in refused.value.details] == [("UNREADABLE_IMAGE", ghost)]
    assert "not found" in refused.value.details[0]["message"]


def test_a_photo_replaced_after_inspection_is_never_trained_unchecked(services: Services) -> None:
    keys = upload(services)
    services.functions.hold_starts = True
    started = start(services, keys)
    services.runtime.media.put(keys[3], make_photo(999, blur=8), "image/jpeg")  # new bytes, same key
    assert services.functions.run_held() == ["photo_changed"]
    training = services.repository.get_training(started.training.training_id)
    assert training is not None and training.status == "failed" and training.error_code == "PHOTO_CHANGED"
    assert keys[3].rsplit("/", 1)[-1] in str(training.error)
    assert services.replicate.trainings == {}
    model = services.repository.get_model(services.user)
    assert model is not None and model.in_flight_training_id is None
    # its own notification re-inspects it; the next start sees what it is now
    services.runtime.photo_inspections().on_arrival(keys[3])
    with pytest.raises(ImageValidationFailed) as refused:
        start(services, keys)
    assert [d["code"] for d in refused.value.details] == ["BLURRY"]


def test_the_zip_holds_exactly_the_set_heic_as_its_jpeg_copy(services: Services) -> None:
    keys = [*upload(services, 11), *upload(services, 1, first_seed=40, fmt="HEIF")]
    training_id = train(services, keys)
    names = zipped_names(services, training_id)
    assert len(names) == 12 and names[-1].endswith(".jpg") and not any(n.endswith(".heic") for n in names)
    heic_copy = keys[-1].replace("/uploads/", "/photos/").replace(".heic", ".jpg")
    assert names[-1] == f"011-{heic_copy.rsplit('/', 1)[-1]}"


def test_merge_starts_from_the_set_that_made_the_current_version(services: Services) -> None:
    """Before: merge took the newest *started* training's photos, even a failed one's."""
    first = upload(services)
    train(services, first)
    failed = start(services, upload(services, 12, first_seed=100), mode="replace", acknowledge_warnings=True)
    finish(services, failed.training.training_id, "failed")
    retrain = start(services, upload(services, 3, first_seed=200), acknowledge_warnings=True)
    assert retrain.training.mode == "merge" and int(retrain.training.image_count) == 15
    assert len(zipped_names(services, retrain.training.training_id)) == 15


def test_a_rollback_brings_its_set_back(services: Services) -> None:
    first = upload(services)
    first_training = train(services, first)
    version_one = services.repository.get_model(services.user).current_version.id  # type: ignore[union-attr]
    train(services, upload(services, 3, first_seed=300))
    assert len(set_keys(services)) == 15
    services.runtime.history().rollback(services.user, version_one)
    assert sorted(set_keys(services)) == sorted(first)
    photos = services.runtime.photo_library().photos(services.user)
    assert {p["training_id"] for p in photos["photos"]} == {first_training}
    assert all(p["thumbnail_url"] for p in photos["photos"])


def test_photos_leave_the_set_by_exclude_keys_or_delete_without_resending_the_rest(services: Services) -> None:
    first = upload(services, 14)
    train(services, first)
    library = services.runtime.photo_library()
    remaining = library.remove(services.user, first[0].rsplit("/", 1)[-1])["photos"]
    assert first[0] not in [p["key"] for p in remaining] and len(remaining) == 13
    retrain = start(services, upload(services, 2, first_seed=400), exclude_keys=[first[1]])
    assert int(retrain.training.image_count) == 14  # 14 - 2 + 2
    names = zipped_names(services, retrain.training.training_id)
    assert not any(key.rsplit("/", 1)[-1] in name for key in first[:2] for name in names)


def test_a_removed_photo_sent_again_is_back_in(services: Services) -> None:
    first = upload(services, 12)
    train(services, first)
    services.runtime.photo_library().remove(services.user, first[0].rsplit("/", 1)[-1])
    retrain = start(services, [first[0]])
    assert int(retrain.training.image_count) == 12


def test_a_legacy_models_first_retrain_must_choose_a_mode(services: Services) -> None:
    """Before: an imported model had no manifest, so its first retrain silently became `replace`
    with no FEWER_THAN_PREVIOUS: the audit's "only the new photos" bug, for every legacy user."""
    destination = f"lorapin-local/legacy-{uuid.uuid4().hex[:8]}"
    services.replicate.create_model(ModelName.parse(destination))
    ModelItem(services.user, destination=destination, trigger_word="TOK", status="ready",
              current_version=VersionInfo(id="a" * 64, ref=f"{destination}:{'a' * 64}", trigger_word="TOK",
                                          training_id=None, seq=0, activated_at=now_iso(), reason="training"),
              drift_shard="d0", created_at=now_iso(), updated_at=now_iso()).save()
    keys = upload(services)
    with pytest.raises(ModeRequired) as required:
        start(services, keys)
    assert required.value.status == 422 and "imported" in required.value.message
    assert services.repository.trainings_of(services.user) == []  # nothing written
    started = start(services, keys, mode="replace")
    assert started.training.mode == "replace" and int(started.training.image_count) == 12
    assert services.runtime.photo_library().photos(services.user)["known"] is False
