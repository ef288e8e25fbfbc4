"""Data access for photos: each upload's inspection (`PhotoItem`) and each training's photo set
(`PhotoSetItem`), REQUIREMENTS §6."""

from __future__ import annotations

from collections.abc import Iterable

from pynamodb.exceptions import DoesNotExist

from lorapin.adapters.guards import write_if
from lorapin.adapters.settings import Settings
from lorapin.adapters.tables import PhotoItem, PhotoSetItem, bind_tables
from lorapin.domain.photo_set import Finding, PhotoEntry

BATCH_GET_LIMIT = 100  # DynamoDB's BatchGetItem takes at most 100 keys


class PhotoRecords:
    def __init__(self, settings: Settings) -> None:
        bind_tables(settings)

    @staticmethod
    def get(user_id: str, key: str) -> PhotoItem | None:
        try:
            return PhotoItem.get(user_id, key, consistent_read=True)
        except DoesNotExist:
            return None

    @staticmethod
    def get_many(user_id: str, keys: Iterable[str]) -> dict[str, PhotoItem]:
        """The inspections of `keys` that exist, by key (BatchGetItem, 100 keys a request)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, PhotoItem] = {}
        for start in range(0, len(wanted), BATCH_GET_LIMIT):
            batch = [(user_id, key) for key in wanted[start:start + BATCH_GET_LIMIT]]
            for item in PhotoItem.batch_get(batch, consistent_read=True):
                found[item.photo_key] = item
        return found

    @staticmethod
    def save(item: PhotoItem) -> None:
        item.save()

    @staticmethod
    def exclude(item: PhotoItem, from_training_id: str) -> bool:
        """Leave the photo out of merges that start from `from_training_id`'s set (DELETE /photos)."""
        return write_if(lambda: item.update(actions=[PhotoItem.excluded_from.set(from_training_id)],
                                            condition=PhotoItem.photo_key.exists()))

    @staticmethod
    def get_set(user_id: str, training_id: str) -> list[PhotoEntry] | None:
        """The photo set `training_id` used, or None when lorapin never recorded it."""
        try:
            item = PhotoSetItem.get(user_id, training_id, consistent_read=True)
        except DoesNotExist:
            return None
        return [PhotoEntry.from_dict(e) for e in item.entries]


def entry_of(item: PhotoItem) -> PhotoEntry | None:
    """The set entry of an inspected photo, or None when it cannot be trained on."""
    if not item.usable or item.sha256 is None:
        return None
    return PhotoEntry(item.photo_key, item.sha256, item.dhash or "", int(item.width or 0), int(item.height or 0),
                      etag=item.etag, train_key=item.train_key)


def findings_of(item: PhotoItem) -> list[Finding]:
    return [Finding.from_dict({**f, "image_key": item.photo_key}) for f in item.findings or []]
