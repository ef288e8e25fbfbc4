"""Photo rules of REQUIREMENTS §6: each code, on photos Pillow makes, and the set built per mode."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from infra.local.photos_fixture import make_photo
from lorapin.domain.photos import (
    MAX_IMAGES,
    PhotoEntry,
    build_photo_set,
    inspect_photo,
)


def entry(seed: int, key: str | None = None) -> PhotoEntry:
    inspected = inspect_photo(key or f"users/u/uploads/{seed}.jpg", make_photo(seed))
    assert inspected.entry is not None
    return inspected.entry


def codes(findings: list) -> list[str]:
    return [f.code for f in findings]


def test_a_sharp_full_size_photo_has_no_findings() -> None:
    inspected = inspect_photo("users/u/uploads/a.jpg", make_photo(1))
    assert inspected.findings == []
    assert inspected.entry is not None and inspected.entry.width == 1024


@pytest.mark.parametrize(("data", "code"), [
    (b"not an image at all", "UNREADABLE_IMAGE"),
    (make_photo(2)[:4000], "UNREADABLE_IMAGE"),
    (make_photo(3, size=400), "IMAGE_TOO_SMALL"),
])
def test_photos_that_cannot_be_trained_on_are_errors_and_leave_the_set(data: bytes, code: str) -> None:
    inspected = inspect_photo("users/u/uploads/x.jpg", data)
    assert inspected.entry is None
    assert codes(inspected.findings) == [code]
    assert inspected.findings[0].severity == "error"
    assert inspected.findings[0].image_key == "users/u/uploads/x.jpg"


def test_a_gif_is_unreadable_for_training() -> None:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(make_photo(4))).save(buffer, format="GIF")
    assert codes(inspect_photo("k.gif", buffer.getvalue()).findings) == ["UNREADABLE_IMAGE"]


@pytest.mark.parametrize(("photo", "code"), [
    (make_photo(5, blur=6), "BLURRY"),
    (make_photo(6, size=768, fmt="PNG"), "LOW_RESOLUTION"),
    (make_photo(7, fmt="WEBP", blur=8), "BLURRY"),
])
def test_weak_photos_are_warnings_and_stay_in_the_set(photo: bytes, code: str) -> None:
    inspected = inspect_photo("users/u/uploads/w.jpg", photo)
    assert inspected.entry is not None
    assert codes(inspected.findings) == [code]
    assert inspected.findings[0].severity == "warning"


def test_the_same_photo_re_encoded_smaller_is_a_near_duplicate_and_is_dropped() -> None:
    original = entry(8, "users/u/uploads/a.jpg")
    buffer = io.BytesIO()
    Image.open(io.BytesIO(make_photo(8))).resize((900, 900)).save(buffer, format="PNG")
    copy = inspect_photo("users/u/uploads/a-copy.png", buffer.getvalue()).entry
    assert copy is not None and copy.sha256 != original.sha256
    result = build_photo_set([], [original, copy], "replace")
    assert [e.key for e in result.entries] == ["users/u/uploads/a.jpg"]
    assert "NEAR_DUPLICATE" in codes(result.findings)


def test_distinct_photos_are_never_near_duplicates() -> None:
    result = build_photo_set([], [entry(seed) for seed in range(30)], "replace")
    assert len(result.entries) == 30
    assert result.findings == []


def test_merge_is_previous_union_new_without_the_exact_repeats() -> None:
    previous = [entry(seed) for seed in range(12)]
    new = [entry(seed) for seed in range(100, 105)] + [previous[0]]
    result = build_photo_set(previous, new, "merge")
    assert {e.key for e in result.entries} == {e.key for e in previous} | {e.key for e in new}
    assert len(result.entries) == 17
    assert result.findings == []  # the same key again is the same photo, not a duplicate


def test_replace_keeps_only_the_new_photos_and_warns_when_the_set_shrinks() -> None:
    previous = [entry(seed) for seed in range(15)]
    new = [entry(seed) for seed in range(200, 212)]
    result = build_photo_set(previous, new, "replace")
    assert {e.key for e in result.entries} == {e.key for e in new}
    assert codes(result.findings) == ["FEWER_THAN_PREVIOUS"]
    assert result.blocking(acknowledge_warnings=False)
    assert not result.blocking(acknowledge_warnings=True)


def test_three_photos_warn_with_how_many_to_add_and_twenty_five_do_not() -> None:
    few = build_photo_set([], [entry(seed) for seed in range(3)], "replace")
    assert codes(few.findings) == ["LOW_IMAGE_COUNT"]
    assert "add 7 more" in few.findings[0].message and "15-25" in few.findings[0].message
    many = build_photo_set([], [entry(seed) for seed in range(300, 325)], "replace")
    assert many.findings == [] and not many.blocking(acknowledge_warnings=False)


def test_no_photos_and_too_many_photos_are_errors_that_acknowledging_does_not_lift() -> None:
    empty = build_photo_set([], [], "replace")
    assert codes(empty.errors) == ["NO_IMAGES"]
    assert empty.blocking(acknowledge_warnings=True)
    fake = [PhotoEntry(f"k{i}", f"{i:064x}", "", 1024, 1024) for i in range(MAX_IMAGES + 1)]
    assert codes(build_photo_set([], fake, "replace").errors) == ["TOO_MANY_IMAGES"]


def test_manifest_entries_round_trip() -> None:
    original = entry(9)
    assert PhotoEntry.from_dict(original.to_dict()) == original
