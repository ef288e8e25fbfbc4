"""The photo set a user can see and edit (REQUIREMENTS §6): GET /photos and DELETE /photos/{name}.

The set is the one the next merge starts from: that of the training that made the *current*
version (so a rollback brings its set back), minus the photos removed from it. A removal is kept
on the photo's inspection (`excluded_from`), so the training's own set stays the record of what it
trained on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lorapin.adapters.media import MediaStore, user_prefix
from lorapin.adapters.photo_records import PhotoRecords, findings_of
from lorapin.adapters.repository import Repository
from lorapin.adapters.tables import ModelItem
from lorapin.domain.errors import PhotoNotInSet
from lorapin.domain.photo_set import PhotoEntry, name_of
from lorapin.services.uploads import UPLOAD_NAME_PATTERN

THUMBNAIL_URL_SECONDS = 900


@dataclass(frozen=True)
class BaseSet:
    """The set a merge starts from: that of the training that made the current version.
    `entries` is None when lorapin does not know it (a model imported by `lorapin backfill`)."""

    training_id: str | None
    entries: list[PhotoEntry] | None


def current_set(model: ModelItem | None, records: PhotoRecords) -> BaseSet:
    if model is None or model.current_version is None:
        return BaseSet(None, [])  # no version yet: nothing to merge with
    training_id = model.current_version.training_id
    if training_id is None:
        return BaseSet(None, None)
    return BaseSet(training_id, records.get_set(model.user_id, training_id))


class PhotoLibrary:
    def __init__(self, repository: Repository, records: PhotoRecords, media: Callable[[], MediaStore]) -> None:
        self._repository = repository
        self._records = records
        self._media = media

    def photos(self, user_id: str) -> dict[str, Any]:
        base = current_set(self._repository.get_model(user_id), self._records)
        entries = base.entries or []
        records = self._records.get_many(user_id, [entry.key for entry in entries])
        media = self._media()
        photos = []
        for entry in entries:
            record = records.get(entry.key)
            if record is not None and record.excluded_from == base.training_id:
                continue
            thumbnail = record.thumbnail_key if record is not None else None
            photos.append({
                "key": entry.key, "name": name_of(entry.key),
                "thumbnail_url": media.presigned_get(thumbnail, expires_in=THUMBNAIL_URL_SECONDS)
                if thumbnail else None,
                "findings": [f.to_dict() for f in findings_of(record)] if record is not None else [],
                "training_id": entry.training_id, "width": entry.width, "height": entry.height,
            })
        return {"photos": photos, "training_id": base.training_id, "known": base.entries is not None}

    def remove(self, user_id: str, name: str) -> dict[str, Any]:
        """Leave one photo out of the set the next merge starts from (nothing is deleted: the
        trainings that used it keep their record)."""
        key = f"{user_prefix(user_id)}uploads/{name}"
        if not re.fullmatch(UPLOAD_NAME_PATTERN, name):
            raise PhotoNotInSet(f"{name} is not one of your photos.", details=[{"name": name}])
        base = current_set(self._repository.get_model(user_id), self._records)
        record = self._records.get(user_id, key)
        in_set = any(entry.key == key for entry in base.entries or [])
        if not in_set or base.training_id is None or record is None or record.excluded_from == base.training_id:
            raise PhotoNotInSet(f"{name} is not in the photo set your next training starts from.",
                                details=[{"name": name}])
        self._records.exclude(record, base.training_id)
        return self.photos(user_id)
