"""The photo inspector's service (REQUIREMENTS §6): what it does with each object S3 tells it about."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from infra.local.photos_fixture import make_photo
from lorapin.adapters.media import MediaStore
from lorapin.adapters.photo_records import PhotoRecords
from lorapin.domain.photo_set import MAX_IMAGE_BYTES
from lorapin.services.photo_inspection import ObjectCreated, PhotoInspections, UploadKey
from tests.unit.conftest import Services

pytestmark = pytest.mark.unit
EVENTS = Path(__file__).resolve().parents[2] / "events"


def upload_key(services: Services, extension: str = "jpg") -> str:
    return f"users/{services.user}/uploads/{uuid.uuid4().hex}.{extension}"


def records(services: Services) -> PhotoRecords:
    return PhotoRecords(services.runtime.settings)


def inspections(services: Services) -> PhotoInspections:
    return services.runtime.photo_inspections()


class CountingReads:
    """Counts the reads of object bytes made through MediaStore."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reads: list[str] = []
        original = MediaStore.get_with_etag

        def counted(store: MediaStore, key: str) -> Any:
            self.reads.append(key)
            return original(store, key)

        monkeypatch.setattr(MediaStore, "get_with_etag", counted)


def test_only_upload_keys_are_inspected() -> None:
    assert UploadKey.parse(f"users/u1/uploads/{'a' * 32}.heic") == UploadKey("u1", f"users/u1/uploads/{'a' * 32}.heic",
                                                                            "a" * 32)
    for other in ["users/u1/trainings/trn_1.zip", f"users/u1/photos/{'a' * 32}.thumb.jpg",
                  f"users/u1/outputs/{'a' * 32}.webp", f"users/u1/uploads/{'a' * 32}.gif", "users/u1/uploads/x.jpg"]:
        assert UploadKey.parse(other) is None, other


def test_an_object_that_is_not_an_upload_is_left_alone(services: Services) -> None:
    key = f"users/{services.user}/trainings/trn_x.zip"
    services.runtime.media.put(key, b"PK", "application/zip")
    assert inspections(services).on_arrival(key) is None
    assert records(services).get(services.user, key) is None


def test_a_usable_photo_is_recorded_with_its_etag_hashes_and_a_thumbnail(services: Services) -> None:
    key = upload_key(services)
    services.runtime.media.put(key, make_photo(1), "image/jpeg")
    item = inspections(services).on_arrival(key)
    stored = records(services).get(services.user, key)
    assert item is not None and stored is not None and stored.usable and stored.findings == []
    assert stored.etag == services.runtime.media.head(key).etag  # type: ignore[union-attr]
    assert stored.sha256 and stored.dhash and (stored.width, stored.height) == (1024, 1024)
    assert stored.thumbnail_key is not None
    assert services.runtime.media.get(stored.thumbnail_key)[:2] == b"\xff\xd8"  # a JPEG
    assert stored.train_key is None  # a JPEG is trained on as it is


def test_a_repeated_notification_for_the_same_bytes_reads_nothing(services: Services,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    key = upload_key(services)
    services.runtime.media.put(key, make_photo(2), "image/jpeg")
    etag = services.runtime.media.head(key).etag  # type: ignore[union-attr]
    reads = CountingReads(monkeypatch)
    inspections(services).on_arrival(key, etag=etag)
    inspections(services).on_arrival(key, etag=etag)
    assert reads.reads == [key]


def test_bytes_already_inspected_on_arrival_are_not_read_again_by_a_queued_inspection(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """POST /trainings queues the inspection of photos whose notification has not been handled yet;
    when the notification gets there first, the queued inspection decoded the same bytes again."""
    key = upload_key(services)
    services.runtime.media.put(key, make_photo(2), "image/jpeg")
    reads = CountingReads(monkeypatch)
    first = inspections(services).on_arrival(key)
    assert inspections(services).inspect_keys(services.user, [key], budget_seconds=30) == [key]
    assert reads.reads == [key]
    stored = records(services).get(services.user, key)
    assert first is not None and stored is not None and stored.inspected_at == first.inspected_at


def test_new_bytes_under_the_same_key_are_inspected_again(services: Services) -> None:
    key = upload_key(services)
    services.runtime.media.put(key, make_photo(3), "image/jpeg")
    first = inspections(services).on_arrival(key)
    services.runtime.media.put(key, make_photo(3, blur=8), "image/jpeg")
    second = inspections(services).on_arrival(key, etag=services.runtime.media.head(key).etag)  # type: ignore[union-attr]
    assert first is not None and first.findings == []
    assert second is not None and [f["code"] for f in second.findings] == ["BLURRY"]
    assert second.etag != first.etag


def test_an_oversized_object_is_refused_without_reading_it(services: Services,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    key = upload_key(services)
    services.runtime.media.put(key, b"\xff\xd8" + b"\0" * (MAX_IMAGE_BYTES + 1), "image/jpeg")
    reads = CountingReads(monkeypatch)
    item = inspections(services).on_arrival(key)
    assert reads.reads == []
    assert item is not None and not item.usable and [f["code"] for f in item.findings] == ["IMAGE_TOO_LARGE"]


def test_a_heic_photo_gets_a_jpeg_copy_for_the_trainer(services: Services) -> None:
    key = upload_key(services, "heic")
    services.runtime.media.put(key, make_photo(4, fmt="HEIF"), "image/heic")
    item = inspections(services).on_arrival(key)
    assert item is not None and item.usable and item.format == "HEIF"
    assert item.train_key == key.replace("/uploads/", "/photos/").replace(".heic", ".jpg")
    assert services.runtime.media.get(item.train_key)[:2] == b"\xff\xd8"


def test_an_object_deleted_before_its_notification_is_handled_leaves_no_record(services: Services) -> None:
    key = upload_key(services)
    assert inspections(services).on_arrival(key) is None
    assert records(services).get(services.user, key) is None


def test_inline_inspection_skips_keys_of_other_users(services: Services) -> None:
    mine, theirs = upload_key(services), f"users/someone-else/uploads/{uuid.uuid4().hex}.jpg"
    for key in (mine, theirs):
        services.runtime.media.put(key, make_photo(5), "image/jpeg")
    done = inspections(services).inspect_keys(services.user, [theirs, mine], budget_seconds=30)
    assert done == [mine]
    assert records(services).get("someone-else", theirs) is None


def test_a_removed_photo_stays_removed_when_its_bytes_are_inspected_again(services: Services) -> None:
    key = upload_key(services)
    services.runtime.media.put(key, make_photo(6), "image/jpeg")
    first = inspections(services).on_arrival(key)
    assert first is not None and records(services).exclude(first, "trn_base")
    services.runtime.media.put(key, make_photo(7), "image/jpeg")
    again = inspections(services).on_arrival(key, etag=services.runtime.media.head(key).etag)  # type: ignore[union-attr]
    assert again is not None and again.excluded_from == "trn_base"


def test_the_object_created_event_gives_the_key_and_etag() -> None:
    event = json.loads((EVENTS / "photo_uploaded.json").read_text(encoding="utf-8"))
    arrived = ObjectCreated.from_event(event)
    assert arrived == ObjectCreated(key="users/user-sample-1/uploads/0f1e2d3c4b5a69788796a5b4c3d2e1f0.jpg",
                                    etag="b1946ac92492d2347c6235b4d2611184")
    del event["detail"]["object"]["etag"]
    assert ObjectCreated.from_event(event).etag is None
