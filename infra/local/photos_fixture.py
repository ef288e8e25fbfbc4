"""Distinct, sharp, photo-like images made with Pillow, for the demo, tests and benchmarks.

Deterministic: the same seed gives the same bytes in every process, so a test can upload "the same
photo twice" and the duplicate check sees it. Made once per process and seed (they are immutable bytes).
"""

from __future__ import annotations

import functools
import io
import random

from PIL import Image, ImageDraw, ImageFilter

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
    image.save(buffer, format=fmt, quality=90) if fmt == "JPEG" else image.save(buffer, format=fmt)
    return buffer.getvalue()
