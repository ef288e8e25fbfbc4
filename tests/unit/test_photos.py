"""Photo rules of REQUIREMENTS §6: each code, on photos Pillow makes (camera-sized ones included),
and the set built per mode."""

from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image

from infra.local.photos_fixture import make_landscape, make_large_jpeg, make_photo, with_exif_orientation
from lorapin.domain.photo_inspection import MAX_WHOLE_PIXELS, inspect_photo
from lorapin.domain.photo_set import MAX_IMAGES, PhotoEntry, build_photo_set


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
    provenance = PhotoEntry("k", "0" * 64, "", 1024, 1024, etag='"e"', train_key="k.jpg", training_id="trn_1")
    assert PhotoEntry.from_dict(provenance.to_dict()) == provenance


def test_a_108_megapixel_phone_photo_is_a_photo_and_is_measured_at_full_size() -> None:
    # The issue's reproduction: 12000x9000 JPEG used to be UNREADABLE_IMAGE ("upload a JPEG straight
    # from the camera") because Pillow's bomb warning was an error.
    inspected = inspect_photo("users/u/uploads/big.jpg", make_large_jpeg(12000, 9000))
    assert inspected.entry is not None, inspected.findings
    assert (inspected.entry.width, inspected.entry.height) == (12000, 9000)
    assert codes(inspected.findings) == []
    assert inspected.format == "JPEG" and inspected.thumbnail is not None


def test_more_pixels_than_the_limit_has_its_own_finding_with_honest_guidance() -> None:
    inspected = inspect_photo("users/u/uploads/huge.jpg", make_large_jpeg(20000, 12000))
    assert inspected.entry is None
    assert codes(inspected.findings) == ["IMAGE_TOO_MANY_PIXELS"]
    message = inspected.findings[0].message
    assert "20000x12000" in message and "200 MP" in message and "4000 px" in message
    assert "camera" not in message.split(";")[0]  # it does not claim the photo is not a photo


def test_formats_decoded_whole_have_a_lower_pixel_limit() -> None:
    side = int(MAX_WHOLE_PIXELS ** 0.5) + 10
    buffer = io.BytesIO()
    Image.new("L", (side, side), 128).save(buffer, format="PNG")  # compresses to almost nothing
    inspected = inspect_photo("users/u/uploads/wide.png", buffer.getvalue())
    assert codes(inspected.findings) == ["IMAGE_TOO_MANY_PIXELS"]
    assert "PNG, WebP or HEIC" in inspected.findings[0].message


def test_an_exif_rotated_photo_is_measured_as_it_is_seen() -> None:
    sideways = with_exif_orientation(make_landscape(11, 1600, 1200), 6)  # stored 1600x1200, seen 1200x1600
    inspected = inspect_photo("users/u/uploads/portrait.jpg", sideways)
    assert inspected.entry is not None
    assert (inspected.entry.width, inspected.entry.height) == (1200, 1600)
    thumbnail = Image.open(io.BytesIO(inspected.thumbnail or b""))
    assert thumbnail.height > thumbnail.width  # the thumbnail is upright too
    upright = inspect_photo("users/u/uploads/upright.jpg", make_landscape(11, 1600, 1200))
    assert upright.entry is not None and upright.entry.dhash != inspected.entry.dhash


def test_a_rotated_small_side_is_judged_after_rotation() -> None:
    narrow = with_exif_orientation(make_landscape(12, 1400, 600), 8)  # seen 600x1400: LOW_RESOLUTION
    inspected = inspect_photo("users/u/uploads/n.jpg", narrow)
    assert codes(inspected.findings) == ["LOW_RESOLUTION"]
    assert "600x1400" in inspected.findings[0].message


def test_a_heic_photo_is_accepted_and_converted_to_jpeg_for_the_trainer() -> None:
    inspected = inspect_photo("users/u/uploads/iphone.heic", make_photo(13, fmt="HEIF"))
    assert inspected.entry is not None and inspected.format == "HEIF"
    assert codes(inspected.findings) == []
    converted = Image.open(io.BytesIO(inspected.training_jpeg or b""))
    assert converted.format == "JPEG" and converted.size == (1024, 1024)
    jpeg = inspect_photo("users/u/uploads/same.jpg", make_photo(13))
    assert jpeg.entry is not None and jpeg.training_jpeg is None  # a JPEG trains as uploaded
    result = build_photo_set([], [inspected.entry, jpeg.entry], "replace")  # one shot in two formats
    assert codes(result.findings) == ["NEAR_DUPLICATE", "LOW_IMAGE_COUNT"]


def test_the_content_hash_is_of_the_bytes_uploaded() -> None:
    data = make_photo(14)
    inspected = inspect_photo("users/u/uploads/h.jpg", data, etag='"abc"')
    assert inspected.entry is not None
    assert inspected.entry.sha256 == hashlib.sha256(data).hexdigest() and inspected.entry.etag == '"abc"'
