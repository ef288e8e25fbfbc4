"""Inspecting one photo (REQUIREMENTS §6): decode it within bounded time and memory, and say what
is wrong with it in words a person can act on.

Only the photo inspector imports this module (it is the one function that carries Pillow and
pillow-heif). Decoding is bounded: a JPEG is decoded reduced (`Image.draft`: the DCT scaled by up
to 1/8, so a 108 MP photo decodes as ~1.7 MP), and formats that must be decoded whole (PNG, WebP,
HEIC) have a lower pixel limit. Pillow's decompression-bomb guard is not what refuses a large photo:
the header's size is checked against our own limits first, with its own finding.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, field

from PIL import Image, ImageFilter, ImageOps, ImageStat, UnidentifiedImageError

from lorapin.domain.photo_set import (
    MIN_SIDE_PX,
    RECOMMENDED_SIDE_PX,
    Finding,
    PhotoEntry,
    name_of,
)

MAX_REDUCED_PIXELS = 200_000_000
"""JPEG photos are decoded reduced, so their limit is above any phone camera (108 MP, 200 MP)."""
MAX_WHOLE_PIXELS = 50_000_000
"""PNG, WebP and HEIC are decoded whole (~4 bytes a pixel): 50 MP keeps a decode near 200 MB."""
REDUCED_FORMATS = frozenset({"JPEG", "MPO"})  # MPO: the JPEG variant some phones write
CONVERTED_FORMATS = frozenset({"HEIF"})  # the trainer gets a JPEG copy (pillow-heif names HEIC "HEIF")
ACCEPTED_FORMATS = REDUCED_FORMATS | {"PNG", "WEBP"} | CONVERTED_FORMATS
INSPECTION_SIDE_PX = 1024
"""The decoded size the checks work on: the blur and duplicate checks look at 512 px and 9x8 px."""
THUMBNAIL_SIDE_PX = 384
TRAINING_JPEG_QUALITY = 92
BLUR_VARIANCE = 80.0
"""Variance of the Laplacian (3x3, on the grayscale photo scaled to 512 px) below which a photo is
blurry: sharp phone photos measure in the hundreds, out-of-focus ones in the tens."""
_BLUR_SIDE_PX = 512
_ROTATED_ORIENTATIONS = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height
_EXIF_ORIENTATION = 0x0112

# Pillow refuses images over twice this before anything else can look at them; ours is the limit
# that speaks (IMAGE_TOO_MANY_PIXELS), Pillow's stays as the backstop beyond it.
Image.MAX_IMAGE_PIXELS = MAX_REDUCED_PIXELS


def _register_heif() -> None:
    from pillow_heif import register_heif_opener

    register_heif_opener()


_register_heif()


@dataclass(frozen=True)
class Inspection:
    """What one photo is, and what is wrong with it. `entry` is None when it cannot be trained on."""

    entry: PhotoEntry | None
    findings: list[Finding] = field(default_factory=list)
    format: str | None = None
    blur: float | None = None
    thumbnail: bytes | None = None  # a small JPEG for the photo set's view
    training_jpeg: bytes | None = None  # the trainer's copy, when the upload's own format is not for it

    @property
    def usable(self) -> bool:
        return self.entry is not None


def inspect_photo(key: str, data: bytes, *, etag: str | None = None) -> Inspection:
    """Decode one photo (bounded) and check it on its own: format, pixel count, size, sharpness."""
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limits speak first
            with Image.open(io.BytesIO(data)) as probe:
                image_format, (width, height) = probe.format or "", probe.size
                probe.verify()  # catches truncated and corrupt files that open() lets through
            if image_format not in ACCEPTED_FORMATS:
                return Inspection(None, [Finding(
                    "UNREADABLE_IMAGE", "error", f"{name_of(key)} is a {image_format} file; upload a JPEG, PNG, "
                    "WebP or HEIC photo.", key)], format=image_format)
            too_many = _too_many_pixels(key, image_format, width, height)
            if too_many is not None:
                return Inspection(None, [too_many], format=image_format)
            image: Image.Image = Image.open(io.BytesIO(data))
            if image_format in REDUCED_FORMATS:
                image.draft("RGB", (INSPECTION_SIDE_PX, INSPECTION_SIDE_PX))
            image.load()
    except Image.DecompressionBombError:
        return Inspection(None, [Finding(
            "IMAGE_TOO_MANY_PIXELS", "error", f"{name_of(key)} has more than {2 * MAX_REDUCED_PIXELS // 1_000_000} "
            "million pixels, more than any camera takes. Export a copy at most 4000 px on its longer side: the "
            "trainer works at 1024 px, so nothing is lost.", key)])
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        return Inspection(None, [Finding(
            "UNREADABLE_IMAGE", "error", f"{name_of(key)} could not be read: the file is damaged, incomplete or not "
            "an image. Upload it again, as a JPEG, PNG, WebP or HEIC photo.", key)])

    if image.getexif().get(_EXIF_ORIENTATION) in _ROTATED_ORIENTATIONS:
        width, height = height, width  # the photo as it is seen, not as the sensor stored it
    image = ImageOps.exif_transpose(image) or image
    shorter = min(width, height)
    if shorter < MIN_SIDE_PX:
        return Inspection(None, [Finding(
            "IMAGE_TOO_SMALL", "error", f"{name_of(key)} is {width}x{height} px; the shorter side must be at least "
            f"{MIN_SIDE_PX} px. Use the original photo rather than a thumbnail or screenshot.", key)],
            format=image_format)
    findings: list[Finding] = []
    if shorter < RECOMMENDED_SIDE_PX:
        findings.append(Finding(
            "LOW_RESOLUTION", "warning", f"{name_of(key)} is {width}x{height} px; photos of {RECOMMENDED_SIDE_PX} px "
            "or more on the shorter side keep more detail.", key))
    training_jpeg = _jpeg(image, TRAINING_JPEG_QUALITY) if image_format in CONVERTED_FORMATS else None
    image.thumbnail((INSPECTION_SIDE_PX, INSPECTION_SIDE_PX))  # PNG/WebP/HEIC were decoded whole
    gray = image.convert("L")
    blur = blur_score(gray)
    if blur < BLUR_VARIANCE:
        findings.append(Finding(
            "BLURRY", "warning", f"{name_of(key)} looks blurry; the model learns the blur. Replace it with a sharp, "
            "well-lit photo.", key))
    thumbnail = image.copy()
    thumbnail.thumbnail((THUMBNAIL_SIDE_PX, THUMBNAIL_SIDE_PX))
    entry = PhotoEntry(key, sha256, difference_hash(gray), width, height, etag=etag)
    return Inspection(entry, findings, format=image_format, blur=round(blur, 1), thumbnail=_jpeg(thumbnail, 80),
                      training_jpeg=training_jpeg)


def _too_many_pixels(key: str, image_format: str, width: int, height: int) -> Finding | None:
    limit = MAX_REDUCED_PIXELS if image_format in REDUCED_FORMATS else MAX_WHOLE_PIXELS
    if width * height <= limit:
        return None
    megapixels = width * height / 1_000_000
    kind = "JPEG" if image_format in REDUCED_FORMATS else "PNG, WebP or HEIC"
    return Finding(
        "IMAGE_TOO_MANY_PIXELS", "error", f"{name_of(key)} is {width}x{height} px ({megapixels:.0f} MP); a {kind} "
        f"photo may have at most {limit // 1_000_000} MP. Export a copy at most 4000 px on its longer side (as a "
        "JPEG if you can): the trainer works at 1024 px, so nothing is lost.", key)


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


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
