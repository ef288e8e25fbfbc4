"""A client's side of uploading photos and starting a training, as the console, the demo, the bench
and the tests do it against the local stack (or a deployed one)."""

from __future__ import annotations

import time
from collections.abc import Callable

import requests

PENDING_RETRIES = 20


def send_photo(upload: dict[str, object], data: bytes, *, content_type: str = "image/jpeg",
               timeout: float = 30) -> requests.Response:
    """Send one photo as a browser sends S3's presigned form POST: the policy's fields, then the file
    (S3 answers 204; a file over the policy's size is refused by S3 and never stored)."""
    fields = upload["fields"]
    assert isinstance(fields, dict)
    return requests.post(str(upload["url"]), data=fields, files={"file": ("photo", data, content_type)},
                         timeout=timeout)


def start_training(post: Callable[[], requests.Response], *, retries: int = PENDING_RETRIES) -> requests.Response:
    """`POST /trainings`, sent again after its `Retry-After` while photos are still being inspected
    (409 `PHOTOS_PENDING`, e.g. right after uploading more than a handful)."""
    response = post()
    for _ in range(retries):
        if response.status_code != 409 or response.json()["error"]["code"] != "PHOTOS_PENDING":
            return response
        time.sleep(min(float(response.headers.get("retry-after", "1")), 5.0))
        response = post()
    return response
