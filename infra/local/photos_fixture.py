"""Distinct, sharp, photo-like images made with Pillow, for the demo, tests and benchmarks.

Deterministic: the same seed gives the same bytes in every process, so a test can upload "the same
photo twice" and the duplicate check sees it. Made once per process and seed (they are immutable bytes).
"""

from __future__ import annotations

import functools
import io
import random

from PIL import Image, ImageDraw, ImageFilter
from pillow_heif import register_heif_opener

register_heif_opener()  # fmt="HEIF": an iPhone's HEIC

GRAIN = 0.12  # how much fine, per-pixel detail is laid over the shapes, as a real photo's sensor has


@functools.lru_cache(maxsize=512)
def make_photo(seed: int, *, size: int = 1024, blur: float = 0.0, fmt: str = "JPEG") -> bytes:
    """A unique scene per seed: shapes in random colours (what the duplicate check compares) under
    a fine grain (what the blur check measures), so no two seeds are near-duplicates."""
    rng = random.Random(seed)
    image = Image.new("RGB", (size, size), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x0, y0 = rng.randrange(size), rng.randrange(size)
        x1, y1 = x0 + rng.randrange(20, size // 2), y0 + rng.randrange(20, size // 2)
        color = tuple(rng.randrange(256) for _ in range(3))
        shape = rng.choice(("rectangle", "ellipse", "line"))
        if shape == "rectangle":
            draw.rectangle((x0, y0, x1, y1), fill=color)
        elif shape == "ellipse":
            draw.ellipse((x0, y0, x1, y1), fill=color)
        else:
            draw.line((x0, y0, x1, y1), fill=color, width=rng.randrange(2, 12))
    grain = Image.frombytes("L", (size, size), rng.randbytes(size * size)).convert("RGB")
    image = Image.blend(image, grain, GRAIN)
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    buffer = io.BytesIO()
    if fmt == "HEIF":  # x265's fastest preset: the default takes ~8 s for one 1024 px photo
        image.save(buffer, format=fmt, quality=90, enc_params={"preset": "ultrafast"})
    else:
        image.save(buffer, format=fmt, quality=90) if fmt == "JPEG" else image.save(buffer, format=fmt)
    return buffer.getvalue()


@functools.lru_cache(maxsize=4)
def make_large_jpeg(width: int, height: int, *, seed: int = 0, mode: str = "L") -> bytes:
    """A camera-sized JPEG (e.g. 12000x9000, a 108 MP phone photo) made cheaply: a sharp photo of
    1024 px scaled up by whole pixels. Grayscale by default, to keep the test's own memory low; the
    inspector decodes grayscale and colour JPEGs the same way."""
    small = Image.open(io.BytesIO(make_photo(seed))).convert(mode)
    image = small.resize((width, height), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=70)
    return buffer.getvalue()


def with_exif_orientation(data: bytes, orientation: int) -> bytes:
    """The same JPEG with an EXIF orientation tag, as a phone held sideways writes it."""
    image = Image.open(io.BytesIO(data))
    exif = image.getexif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, exif=exif)
    return buffer.getvalue()


def make_landscape(seed: int, width: int = 1600, height: int = 1200) -> bytes:
    """A sharp landscape JPEG (the sensor's orientation of a phone photo)."""
    photo = Image.open(io.BytesIO(make_photo(seed, size=max(width, height))))
    buffer = io.BytesIO()
    photo.crop((0, 0, width, height)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()
