"""Photo rules (REQUIREMENTS §6): what makes a training set good, and guidance a person can act on.

Pure functions over bytes and manifests; reading from S3 happens at the edge (training_start).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from PIL import Image, ImageFilter, ImageOps, ImageStat, UnidentifiedImageError

MAX_IMAGES = 200
"""More than this adds training time without teaching the LoRA anything new about one face."""
MAX_IMAGE_BYTES = 20 * 1024 * 1024
"""Phone photos are 2-8 MB; anything larger is usually a RAW export or not a photo at all."""
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
BLUR_VARIANCE = 80.0
"""Variance of the Laplacian (3x3, on the grayscale photo scaled to 512 px) below which a photo is
blurry: sharp phone photos measure in the hundreds, out-of-focus ones in the tens."""
_BLUR_SIDE_PX = 512
_FORMATS = {"JPEG", "PNG", "WEBP", "MPO"}  # MPO: the JPEG variant some phones write

Severity = Literal["error", "warning"]


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


@dataclass(frozen=True)
class PhotoEntry:
    """One photo of a training set, as the training record's manifest stores it."""

    key: str
    sha256: str
    dhash: str
    width: int
    height: int

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "sha256": self.sha256, "dhash": self.dhash, "width": self.width,
                "height": self.height}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PhotoEntry:
        return cls(key=str(data["key"]), sha256=str(data["sha256"]), dhash=str(data.get("dhash", "")),
                   width=int(data.get("width", 0)), height=int(data.get("height", 0)))


@dataclass(frozen=True)
class InspectedPhoto:
    entry: PhotoEntry | None  # None when the photo cannot be trained on at all
    findings: list[Finding] = field(default_factory=list)


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


def inspect_photo(key: str, data: bytes) -> InspectedPhoto:
    """Decode one photo and check it on its own: format, size, sharpness."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                image_format = probe.format
                probe.verify()  # catches truncated and corrupt files that open() lets through
            image: Image.Image = Image.open(io.BytesIO(data))
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning):
        return InspectedPhoto(None, [Finding(
            "UNREADABLE_IMAGE", "error", f"{_name(key)} could not be read as a photo. Upload a JPEG, PNG or WebP "
            "straight from the camera or gallery.", key)])
    if image_format not in _FORMATS:
        return InspectedPhoto(None, [Finding(
            "UNREADABLE_IMAGE", "error", f"{_name(key)} is a {image_format} file; upload a JPEG, PNG or WebP.",
            key)])
    image = ImageOps.exif_transpose(image) or image
    width, height = image.size
    shorter = min(width, height)
    if shorter < MIN_SIDE_PX:
        return InspectedPhoto(None, [Finding(
            "IMAGE_TOO_SMALL", "error", f"{_name(key)} is {width}x{height} px; the shorter side must be at least "
            f"{MIN_SIDE_PX} px. Use the original photo rather than a thumbnail or screenshot.", key)])
    findings: list[Finding] = []
    if shorter < RECOMMENDED_SIDE_PX:
        findings.append(Finding(
            "LOW_RESOLUTION", "warning", f"{_name(key)} is {width}x{height} px; photos of {RECOMMENDED_SIDE_PX} px "
            "or more on the shorter side keep more detail.", key))
    gray = image.convert("L")
    if blur_score(gray) < BLUR_VARIANCE:
        findings.append(Finding(
            "BLURRY", "warning", f"{_name(key)} looks blurry; the model learns the blur. Replace it with a sharp, "
            "well-lit photo.", key))
    entry = PhotoEntry(key, hashlib.sha256(data).hexdigest(), difference_hash(gray), width, height)
    return InspectedPhoto(entry, findings)


def build_photo_set(previous: list[PhotoEntry], new: list[PhotoEntry],
                    mode: Literal["merge", "replace"]) -> PhotoSetResult:
    """The training set: previous plus new (merge) or new only (replace), without duplicates."""
    candidates = [*previous, *new] if mode == "merge" else list(new)
    kept: list[PhotoEntry] = []
    findings: list[Finding] = []
    for entry in candidates:
        twin = next((k for k in kept if k.sha256 == entry.sha256 or _near(k.dhash, entry.dhash)), None)
        if twin is None:
            kept.append(entry)
        elif twin.key != entry.key:
            findings.append(Finding(
                "NEAR_DUPLICATE", "warning", f"{_name(entry.key)} is the same shot as {_name(twin.key)} and was "
                "left out; a different pose, angle or light teaches the model more.", entry.key))
    findings.extend(_set_findings(kept, previous, mode))
    return PhotoSetResult(kept, findings)


def _set_findings(kept: list[PhotoEntry], previous: list[PhotoEntry], mode: str) -> list[Finding]:
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
    if mode == "replace" and previous and count < len(previous):
        findings.append(Finding(
            "FEWER_THAN_PREVIOUS", "warning", f"Replace mode trains on these {count} photo(s) only; the previous "
            f"training used {len(previous)}. Use mode \"merge\" to keep the earlier photos."))
    return findings


def difference_hash(gray: Image.Image) -> str:
    """64-bit dHash: is each pixel brighter than its right neighbour, on a 9x8 thumbnail."""
    small = gray.resize((9, 8), Image.Resampling.LANCZOS)
    pixels = small.tobytes()  # one byte per pixel in mode "L"
    bits = 0
    for row in range(8):
        for col in range(8):
            bits = (bits << 1) | int(pixels[row * 9 + col] > pixels[row * 9 + col + 1])
    return f"{bits:016x}"


def blur_score(gray: Image.Image) -> float:
    """Variance of the Laplacian: how much sharp edge the photo has."""
    scale = _BLUR_SIDE_PX / max(gray.size)
    if scale < 1:
        gray = gray.resize((max(1, round(gray.width * scale)), max(1, round(gray.height * scale))),
                           Image.Resampling.BILINEAR)
    laplacian = ImageFilter.Kernel((3, 3), [0, 1, 0, 1, -4, 1, 0, 1, 0], scale=1, offset=128)
    return float(ImageStat.Stat(gray.filter(laplacian)).var[0])


def _near(a: str, b: str) -> bool:
    if not a or not b:
        return False
    return (int(a, 16) ^ int(b, 16)).bit_count() <= NEAR_DUPLICATE_DISTANCE


def _name(key: str) -> str:
    return key.rsplit("/", 1)[-1]
