"""Inspecting photos as they arrive (REQUIREMENTS §6): the photo inspector's service.

S3 tells EventBridge of every new upload; the inspector reads it once, checks it
(`lorapin.domain.photo_inspection`), keeps a thumbnail (and, for HEIC, the JPEG the trainer gets)
and stores what it found, keyed by the upload's key and pinned to its ETag. `POST /trainings` reads
those records and decodes nothing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lorapin.adapters.media import MediaStore, user_prefix
from lorapin.adapters.photo_records import PhotoRecords
from lorapin.adapters.tables import PhotoItem
from lorapin.domain.clock import now_iso
from lorapin.domain.photo_set import MAX_IMAGE_BYTES, Finding, name_of
from lorapin.observability import count, logger
from lorapin.services.uploads import UPLOAD_NAME_PATTERN

_UPLOAD_KEY = re.compile(r"users/(?P<user_id>.+)/uploads/(?P<name>" + UPLOAD_NAME_PATTERN + ")")


@dataclass(frozen=True)
class ObjectCreated:
    """What the inspector reads of S3's "Object Created" event, delivered by EventBridge: the
    object's key, as Powertools reads it (an upload's key is a hex name: nothing to decode), and its
    ETag.

    Read here rather than through Powertools' `S3EventBridgeNotificationEvent`: its package imports
    every event class Powertools knows, ~10 ms of the inspector's cold start for two fields."""

    key: str
    etag: str | None

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> ObjectCreated:
        stored = event["detail"]["object"]
        return cls(key=str(stored["key"]), etag=stored.get("etag") or None)


@dataclass(frozen=True)
class UploadKey:
    user_id: str
    key: str
    stem: str  # the upload's name without its extension

    @classmethod
    def parse(cls, key: str) -> UploadKey | None:
        """An upload key POST /uploads hands out, or None for any other object (zips, outputs, copies)."""
        found = _UPLOAD_KEY.fullmatch(key)
        if found is None:
            return None
        return cls(found["user_id"], key, found["name"].rsplit(".", 1)[0])

    @property
    def thumbnail_key(self) -> str:
        return f"{user_prefix(self.user_id)}photos/{self.stem}.thumb.jpg"

    @property
    def training_copy_key(self) -> str:
        return f"{user_prefix(self.user_id)}photos/{self.stem}.jpg"


class PhotoInspections:
    def __init__(self, records: PhotoRecords, media: Callable[[], MediaStore]) -> None:
        self._records = records
        self._media = media

    def on_arrival(self, key: str, *, etag: str | None = None) -> PhotoItem | None:
        """Inspect a newly stored object if it is an upload (others are ignored). A repeated
        notification for bytes already inspected changes nothing."""
        upload = UploadKey.parse(key)
        if upload is None:
            return None
        existing = self._records.get(upload.user_id, key)
        if existing is not None and etag is not None and _same_etag(existing.etag, etag):
            return existing
        return self.inspect(upload, existing)

    def inspect_keys(self, user_id: str, keys: list[str], *, budget_seconds: float) -> list[str]:
        """Inspect `keys` (the caller's own uploads) one after another until the budget is spent;
        returns the keys inspected. Keys that are not this user's uploads are skipped."""
        deadline = time.monotonic() + budget_seconds
        done: list[str] = []
        for key in keys:
            upload = UploadKey.parse(key)
            if upload is None or upload.user_id != user_id:
                continue
            if time.monotonic() >= deadline:
                break
            if self.inspect(upload, self._records.get(user_id, key)) is not None:
                done.append(key)
        return done

    def inspect(self, upload: UploadKey, existing: PhotoItem | None) -> PhotoItem | None:
        """Check the upload and store what was found: a HEAD first (bytes already inspected are not
        read again; a file over the size limit is refused unread), then one GET for its bytes and the
        ETag they have. None when it is gone."""
        media = self._media()
        head = media.head(upload.key)
        if head is None:
            return None
        if existing is not None and _same_etag(existing.etag, head.etag):
            return existing
        item = PhotoItem(upload.user_id, upload.key, etag=head.etag, byte_size=head.size, usable=False,
                         findings=[], inspected_at=now_iso(),
                         excluded_from=existing.excluded_from if existing else None)
        if head.size > MAX_IMAGE_BYTES:  # refused without reading it (the upload's policy should have)
            item.findings = [_too_large(upload.key, head.size).to_dict()]
            return self._store(item)
        from lorapin.domain.photo_inspection import inspect_photo  # Pillow: only this function has it

        data, etag = media.get_with_etag(upload.key)
        inspection = inspect_photo(upload.key, data, etag=etag)
        item.etag, item.byte_size, item.format = etag, len(data), inspection.format
        item.findings = [{k: v for k, v in f.to_dict().items() if k != "image_key"} for f in inspection.findings]
        if inspection.thumbnail is not None:
            media.put(upload.thumbnail_key, inspection.thumbnail, "image/jpeg")
            item.thumbnail_key = upload.thumbnail_key
        if inspection.training_jpeg is not None:
            media.put(upload.training_copy_key, inspection.training_jpeg, "image/jpeg")
            item.train_key = upload.training_copy_key
        entry = inspection.entry
        if entry is not None:
            item.usable, item.sha256, item.dhash = True, entry.sha256, entry.dhash
            item.width, item.height, item.blur = entry.width, entry.height, inspection.blur
        return self._store(item)

    def _store(self, item: PhotoItem) -> PhotoItem:
        self._records.save(item)
        count("PhotosInspected")
        if not item.usable:
            count("PhotosRefused")
        logger.info("photo inspected", extra={"user_id": item.user_id, "photo_key": item.photo_key,
                                              "usable": item.usable, "format": item.format,
                                              "findings": [f["code"] for f in item.findings or []]})
        return item


def _too_large(key: str, size: int) -> Finding:
    return Finding("IMAGE_TOO_LARGE", "error", f"{name_of(key)} is {size / 1e6:.1f} MB; photos must be at most "
                   f"{MAX_IMAGE_BYTES // (1024 * 1024)} MB. Export it at a smaller size.", key)


def _same_etag(a: str, b: str) -> bool:
    return a.strip('"') == b.strip('"')
