"""Distinct, sharp, photo-like images made with Pillow, for the demo, tests and benchmarks."""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw, ImageFilter


def make_photo(seed: int, *, size: int = 1024, blur: float = 0.0, fmt: str = "JPEG") -> bytes:
    """A unique scene per seed: gradients, shapes and fine texture, so no two are near-duplicates."""
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
    for _ in range(size * 16):  # fine detail, as a real photo has
        x, y = rng.randrange(size), rng.randrange(size)
        draw.point((x, y), fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, quality=90) if fmt == "JPEG" else image.save(buffer, format=fmt)
    return buffer.getvalue()
