"""R2: one parser turns `output.version` into the destination's new version, or rejects it."""

from __future__ import annotations

import pytest

from lorapin.domain.errors import InvalidVersionRef
from lorapin.domain.versions import ModelName, VersionRef, parse_training_output_version

DESTINATION = "acme/user-abc"
NEW_ID = "a" * 64
TRAINER_ID = "b" * 64


def parse(output: object) -> VersionRef:
    return parse_training_output_version(output, destination=DESTINATION, trainer_version_id=TRAINER_ID)


def test_full_ref_of_the_destination_is_parsed() -> None:
    ref = parse({"version": f"{DESTINATION}:{NEW_ID}", "weights": "https://x/w.tar"})
    assert ref == VersionRef("acme", "user-abc", NEW_ID)
    assert ref.ref == f"acme/user-abc:{NEW_ID}"


def test_bare_id_is_taken_as_a_version_of_the_destination() -> None:
    assert parse({"version": NEW_ID}).ref == f"{DESTINATION}:{NEW_ID}"


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ({"version": f"someone/else:{NEW_ID}"}, "not the destination"),
        ({"version": f"{DESTINATION}:{TRAINER_ID}"}, "trainer"),
        ({"version": TRAINER_ID}, "trainer"),
        ({"weights": "https://x"}, "non-empty string"),
        (None, "missing"),
        ({"version": f"{DESTINATION}:4e0de78d"}, "64-character"),
        ({"version": "4e0de78d"}, "64-character"),
        ({"version": "not a version at all"}, "64-character"),
        ({"version": f"{DESTINATION}:{'A' * 64}"}, "64-character"),
        ({"version": 12345}, "non-empty string"),
        ({"version": f"acme/user-abc/extra:{NEW_ID}"}, "owner/name"),
        ({"version": f":{NEW_ID}"}, "owner/name"),
    ],
)
def test_anything_else_is_rejected(output: object, reason: str) -> None:
    with pytest.raises(InvalidVersionRef, match=reason):
        parse(output)


def test_version_ref_round_trips_and_needs_a_model_for_a_bare_id() -> None:
    ref = VersionRef.parse(f"{DESTINATION}:{NEW_ID}")
    assert VersionRef.parse(str(ref)) == ref
    assert ref.model == ModelName.parse(DESTINATION)
    with pytest.raises(InvalidVersionRef, match="without a model"):
        VersionRef.parse(NEW_ID)
