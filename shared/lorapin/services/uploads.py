"""Presigned S3 uploads under the caller's own prefix, capped by the upload itself."""

from __future__ import annotations

import uuid
from typing import Any

from lorapin.adapters.media import MediaStore, user_prefix
from lorapin.domain.photo_set import MAX_IMAGE_BYTES

UPLOAD_URL_SECONDS = 900
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/heic": "heic",
              "image/heif": "heif"}
UPLOAD_NAME_PATTERN = r"[0-9a-f]{32}\.(?:jpg|png|webp|heic|heif)"  # the file name of every key handed out below


def upload_key(user_id: str, content_type: str) -> str:
    return f"{user_prefix(user_id)}uploads/{uuid.uuid4().hex}.{EXTENSIONS[content_type]}"


def presign_uploads(media: MediaStore, user_id: str, count: int, content_type: str) -> list[dict[str, Any]]:
    """One presigned form POST per photo, each for one fresh key, short-lived, and with a policy S3
    enforces: that key, that content type, at most `MAX_IMAGE_BYTES` (a larger file is refused by S3
    and never stored). The photo inspector looks at each upload as it arrives."""
    uploads = []
    for _ in range(count):
        key = upload_key(user_id, content_type)
        post = media.presigned_post(key, content_type, max_bytes=MAX_IMAGE_BYTES, expires_in=UPLOAD_URL_SECONDS)
        uploads.append({"key": key, "url": post["url"], "method": "POST", "fields": post["fields"],
                        "max_bytes": MAX_IMAGE_BYTES})
    return uploads
