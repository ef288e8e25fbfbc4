"""The list endpoints: newest first, a page at a time, opaque cursors that only continue the
caller's own list (REQUIREMENTS §4, I7)."""

from __future__ import annotations

import base64
import json

import pytest

from lorapin.domain.cursors import decode_cursor, encode_cursor
from lorapin.domain.errors import InvalidCursor
from lorapin.services.generation_request import GenerationRequest
from lorapin.services.listings import TRAINING_KEYS
from tests.unit.conftest import Services

pytestmark = pytest.mark.unit


def all_pages(fetch: object, limit: int) -> tuple[list[object], int]:
    """Every item, following next_cursor; how many pages it took."""
    items: list[object] = []
    cursor, pages = None, 0
    while True:
        listed = fetch(limit, cursor)  # type: ignore[operator]
        items += listed.items
        pages += 1
        cursor = listed.next_cursor
        if cursor is None:
            return items, pages
        assert pages < 50, "the cursor never ended"


def test_trainings_come_newest_first_a_page_at_a_time_and_every_one_once(services: Services) -> None:
    for _ in range(5):
        services.train()
    listings = services.runtime.listings()
    first = listings.trainings(services.user, 2, None)
    assert len(first.items) == 2 and first.next_cursor is not None
    items, pages = all_pages(lambda limit, cursor: listings.trainings(services.user, limit, cursor), 2)
    seqs = [int(t.seq) for t in items]  # type: ignore[attr-defined]
    assert seqs == [5, 4, 3, 2, 1] and pages == 3


def test_generations_and_versions_are_paged_the_same_way(services: Services) -> None:
    versions = [services.train() for _ in range(3)]
    generations = services.runtime.generations()
    made = [generations.request(services.user, GenerationRequest(prompt=f"p{n}")).generation_id for n in range(4)]
    listings = services.runtime.listings()
    listed, _ = all_pages(lambda limit, cursor: listings.generations(services.user, limit, cursor), 3)
    assert [g.generation_id for g in listed] == list(reversed(made))  # type: ignore[attr-defined]
    _, first = listings.versions(services.user, 2, None)
    _, rest = listings.versions(services.user, 2, first.next_cursor)
    assert [v.version_id for v in [*first.items, *rest.items]] == list(reversed(versions))
    assert rest.next_cursor is None


def test_a_cursor_naming_another_user_or_not_made_by_us_is_refused(services: Services) -> None:
    for _ in range(3):
        services.train()
    listings = services.runtime.listings()
    mine = listings.trainings(services.user, 1, None).next_cursor
    assert mine is not None
    key = json.loads(base64.urlsafe_b64decode(mine + "=" * (-len(mine) % 4)))
    key["user_id"] = {"S": "someone-else"}
    theirs = encode_cursor(key)
    for bad in (theirs, "not-a-cursor", base64.urlsafe_b64encode(b"[1,2]").decode(), "x" * 5000):
        with pytest.raises(InvalidCursor) as refused:
            listings.trainings(services.user, 1, bad)
        assert refused.value.status == 400


def test_a_cursor_round_trips_and_must_have_the_lists_key_shape() -> None:
    key = {"training_id": {"S": "trn_1"}, "user_id": {"S": "u"}, "seq": {"N": "3"}}
    assert decode_cursor(encode_cursor(key), user_id="u", key_names=TRAINING_KEYS) == key
    with pytest.raises(InvalidCursor):  # another list's cursor
        decode_cursor(encode_cursor({"user_id": {"S": "u"}, "created_at": {"S": "x"}, "generation_id": {"S": "g"}}),
                      user_id="u", key_names=TRAINING_KEYS)
    with pytest.raises(InvalidCursor):  # a value of a type our keys never have
        decode_cursor(encode_cursor({**key, "seq": {"M": {}}}), user_id="u", key_names=TRAINING_KEYS)
