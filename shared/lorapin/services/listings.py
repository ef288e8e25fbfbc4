"""The list endpoints (REQUIREMENTS §4): a user's trainings, generations and versions, newest
first, a page at a time (`limit` ≤ 100, an opaque `next_cursor` until the last page)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from lorapin.adapters.repository import Page, Repository
from lorapin.adapters.tables import GenerationItem, ModelItem, TrainingItem, VersionItem
from lorapin.domain.cursors import decode_cursor, encode_cursor
from lorapin.domain.errors import NoModel

T = TypeVar("T")
TRAINING_KEYS = frozenset({"training_id", "user_id", "seq"})
GENERATION_KEYS = frozenset({"generation_id", "user_id", "created_at"})
VERSION_KEYS = frozenset({"user_id", "version_id", "seq"})


@dataclass(frozen=True)
class Listed(Generic[T]):
    items: list[T]
    next_cursor: str | None


def _listed(page: Page[T]) -> Listed[T]:
    return Listed(page.items, encode_cursor(page.last_key))


class Listings:
    def __init__(self, repository: Repository) -> None:
        self._repository = repository

    def trainings(self, user_id: str, limit: int, cursor: str | None) -> Listed[TrainingItem]:
        start = decode_cursor(cursor, user_id=user_id, key_names=TRAINING_KEYS)
        return _listed(self._repository.trainings_page(user_id, limit, start))

    def generations(self, user_id: str, limit: int, cursor: str | None) -> Listed[GenerationItem]:
        start = decode_cursor(cursor, user_id=user_id, key_names=GENERATION_KEYS)
        return _listed(self._repository.generations_page(user_id, limit, start))

    def versions(self, user_id: str, limit: int, cursor: str | None) -> tuple[ModelItem, Listed[VersionItem]]:
        """The model (for which version is current) and a page of its versions."""
        model = self._repository.get_model(user_id)
        if model is None:
            raise NoModel()
        start = decode_cursor(cursor, user_id=user_id, key_names=VERSION_KEYS)
        return model, _listed(self._repository.versions_page(user_id, limit, start))
