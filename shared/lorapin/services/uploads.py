"""Presigned S3 uploads under the caller's own prefix."""

from __future__ import annotations

import uuid
from typing import Any

from lorapin.adapters.media import MediaStore, user_prefix

UPLOAD_URL_SECONDS = 900
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
UPLOAD_NAME_PATTERN = r"[0-9a-f]{32}\.(?:jpg|png|webp)"  # the file name of every key handed out below


def presign_uploads(media: MediaStore, user_id: str, count: int, content_type: str) -> list[dict[str, Any]]:
    """One presigned PUT per photo, each for one fresh key, short-lived and bound to its content type."""
    uploads = []
    for _ in range(count):
        key = f"{user_prefix(user_id)}uploads/{uuid.uuid4().hex}.{EXTENSIONS[content_type]}"
        uploads.append({"key": key, "url": media.presigned_put(key, content_type, expires_in=UPLOAD_URL_SECONDS),
                        "method": "PUT", "headers": {"Content-Type": content_type}})
    return uploads
