"""Photo-set rules (REQUIREMENTS §6): which photos a training uses, and guidance a person can act on.

Pure, and free of Pillow: the training API builds sets from stored inspections
(`lorapin.domain.photo_inspection` decodes photos, in the photo inspector alone).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

MAX_IMAGES = 200
"""More than this adds training time without teaching the LoRA anything new about one face."""
MAX_IMAGE_BYTES = 20 * 1024 * 1024
"""Phone photos are 2-25 MB (a 108 MP JPEG ~20 MB); anything larger is usually a RAW export or not a photo."""
MIN_SIDE_PX = 512
"""The trainer's smallest training resolution; below it the photo is upscaled and teaches blur."""
RECOMMENDED_SIDE_PX = 1024
"""FLUX trains best at 1024 px; smaller photos still work but cost detail."""
LOW_IMAGE_COUNT = 10
"""The trainer's documented minimum recommendation; fewer over-fits to a handful of poses."""
IDEAL_IMAGE_COUNT = (15, 25)
NEAR_DUPLICATE_DISTANCE = 6
"""Hamming distance between 64-bit difference hashes at or under which two photos are the same
shot: burst photos and re-exports land at 0-4, distinct photos of one person well above 10."""

Severity = Literal["error", "warning"]
Mode = Literal["merge", "replace"]


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    message: str
    image_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"code": self.code, "severity": self.severity, "message": self.message}
        if self.image_key is not None:
            found["image_key"] = self.image_key
        return found

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        severity: Severity = "error" if data.get("severity") == "error" else "warning"
        return cls(str(data["code"]), severity, str(data.get("message", "")), data.get("image_key"))


@dataclass(frozen=True)
class PhotoEntry:
    """One photo of a training set, as the set's manifest stores it.

    `etag` pins the bytes that were inspected (the zip is built from exactly those); `train_key` is
    the object the trainer gets when it is not the upload itself (a HEIC photo's JPEG copy);
    `training_id` is the training that brought the photo into the set.
    """

    key: str
    sha256: str
    dhash: str
    width: int
    height: int
    etag: str | None = None
    train_key: str | None = None
    training_id: str | None = None

    @property
    def object_key(self) -> str:
        return self.train_key or self.key

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"key": self.key, "sha256": self.sha256, "dhash": self.dhash, "width": self.width,
                                "height": self.height}
        for name in ("etag", "train_key", "training_id"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PhotoEntry:
        return cls(key=str(data["key"]), sha256=str(data["sha256"]), dhash=str(data.get("dhash", "")),
                   width=int(data.get("width", 0)), height=int(data.get("height", 0)), etag=data.get("etag"),
                   train_key=data.get("train_key"), training_id=data.get("training_id"))

    def brought_by(self, training_id: str) -> PhotoEntry:
        """The entry as the set of `training_id` records it: a photo keeps the training that first brought it."""
        return self if self.training_id else replace(self, training_id=training_id)


@dataclass(frozen=True)
class PhotoSetResult:
    entries: list[PhotoEntry]
    findings: list[Finding]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def blocking(self, acknowledge_warnings: bool) -> bool:
        return bool(self.errors) or (bool(self.warnings) and not acknowledge_warnings)

    def with_findings(self, earlier: list[Finding]) -> PhotoSetResult:
        """Per-photo findings first, then the findings about the set as a whole."""
        return replace(self, findings=[*earlier, *self.findings])


def build_photo_set(previous: list[PhotoEntry], new: list[PhotoEntry], mode: Mode, *,
                    previous_count: int | None = None) -> PhotoSetResult:
    """The training set: previous plus new (merge) or new only (replace), without duplicates.

    `previous_count` is the size of the set the user had (before anything was excluded from it), for
    the `FEWER_THAN_PREVIOUS` warning; it defaults to `len(previous)`.
    """
    candidates = [*previous, *new] if mode == "merge" else list(new)
    kept: list[PhotoEntry] = []
    findings: list[Finding] = []
    for entry in candidates:
        twin = next((k for k in kept if k.sha256 == entry.sha256 or _near(k.dhash, entry.dhash)), None)
        if twin is None:
            kept.append(entry)
        elif twin.key != entry.key:
            findings.append(Finding(
                "NEAR_DUPLICATE", "warning", f"{name_of(entry.key)} is the same shot as {name_of(twin.key)} and was "
                "left out; a different pose, angle or light teaches the model more.", entry.key))
    had = len(previous) if previous_count is None else previous_count
    findings.extend(_set_findings(kept, had, mode))
    return PhotoSetResult(kept, findings)


def _set_findings(kept: list[PhotoEntry], previous_count: int, mode: str) -> list[Finding]:
    count = len(kept)
    low, high = IDEAL_IMAGE_COUNT
    if count == 0:
        return [Finding("NO_IMAGES", "error", f"There are no usable photos to train on. Upload {low}-{high} sharp "
                        "photos of one person with different angles, expressions and lighting.")]
    if count > MAX_IMAGES:
        return [Finding("TOO_MANY_IMAGES", "error", f"The set has {count} photos; at most {MAX_IMAGES} can be "
                        f"used. Remove {count - MAX_IMAGES}, keeping the sharpest and most varied.")]
    findings: list[Finding] = []
    if count < LOW_IMAGE_COUNT:
        findings.append(Finding(
            "LOW_IMAGE_COUNT", "warning", f"Only {count} photo(s): add {LOW_IMAGE_COUNT - count} more with different "
            f"angles and lighting; {low}-{high} works best."))
    if mode == "replace" and previous_count and count < previous_count:
        findings.append(Finding(
            "FEWER_THAN_PREVIOUS", "warning", f"Replace mode trains on these {count} photo(s) only; the previous "
            f"training used {previous_count}. Use mode \"merge\" to keep the earlier photos."))
    return findings


def _near(a: str, b: str) -> bool:
    if not a or not b:
        return False
    return (int(a, 16) ^ int(b, 16)).bit_count() <= NEAR_DUPLICATE_DISTANCE


def name_of(key: str) -> str:
    return key.rsplit("/", 1)[-1]
