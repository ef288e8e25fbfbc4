"""`DELETE /account`: everything lorapin keeps for a user goes, and their model on Replicate as far
as its API allows; idempotent; `AccountDeleted` published."""

from __future__ import annotations

import pytest

from lorapin.adapters.tables import GenerationItem, PhotoItem, TrainingItem, VersionItem
from lorapin.domain.errors import NoModel
from lorapin.domain.versions import ModelName
from lorapin.services.generation_request import GenerationRequest
from tests.unit.conftest import Services
from tests.unit.test_training_start import train, upload

pytestmark = pytest.mark.unit


def objects_of(services: Services, user: str) -> list[str]:
    media = services.runtime.media
    listed = media._s3.list_objects_v2(Bucket=media.bucket, Prefix=f"users/{user}/")
    return [item["Key"] for item in listed.get("Contents", [])]


def test_everything_goes_and_the_same_token_then_sees_no_model(services: Services) -> None:
    keys = upload(services)
    train(services, keys)
    train(services, keys)
    generations = services.runtime.generations()
    generations.request(services.user, GenerationRequest(prompt="a portrait"))
    model = services.repository.get_model(services.user)
    assert model is not None
    destination = ModelName.parse(model.destination)
    other = f"{services.user}-other"
    services.train(other)
    assert objects_of(services, services.user)

    report = services.runtime.account_deletion().delete(services.user)

    assert report.replicate_versions_deleted == 2 and report.replicate_model_deleted
    assert str(destination) not in services.replicate.models
    assert report.canceled_on_replicate == 1  # the generation's prediction was running
    assert objects_of(services, services.user) == []  # photos, thumbnails, zips
    for table in (TrainingItem.by_user, GenerationItem.by_user):
        assert list(table.query(services.user)) == []
    assert list(VersionItem.query(services.user)) == [] and list(PhotoItem.query(services.user)) == []
    with pytest.raises(NoModel):
        services.runtime.history().model(services.user)
    [event] = services.bus.events("AccountDeleted")
    assert (event["user_id"], event["destination"], event["not_deleted"]) == (services.user, str(destination), [])
    assert services.repository.get_model(other) is not None  # nobody else's


def test_a_second_call_finds_nothing_and_says_so(services: Services) -> None:
    services.train()
    services.runtime.account_deletion().delete(services.user)
    again = services.runtime.account_deletion().delete(services.user).to_dict()
    assert again["deleted"]["rows"]["model"] == 0 and again["deleted"]["objects"] == 0
    assert again["not_deleted"] == [] and len(services.bus.events("AccountDeleted")) == 2


def test_what_replicate_refuses_is_reported_and_the_rest_still_goes(services: Services) -> None:
    kept = services.train()
    services.train()
    services.replicate.protected_versions.add(kept)  # a deployment uses it
    report = services.runtime.account_deletion().delete(services.user)
    refused = {entry["what"].split(":")[-1] if "version" in entry["what"] else entry["what"]
               for entry in report.not_deleted}
    assert kept in refused and any(what.startswith("model ") for what in refused)
    assert report.replicate_versions_deleted == 1 and not report.replicate_model_deleted
    assert services.repository.get_model(services.user) is None  # our side is gone all the same


def test_an_object_s3_refuses_to_delete_is_reported_not_counted(services: Services,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`DeleteObjects` answers 200 with the keys it could not delete in `Errors`; they were counted
    as deleted and the report said nothing was left."""
    upload(services)
    stored = objects_of(services, services.user)  # in S3's order: the first is the one refused
    s3 = services.runtime.media._s3
    delete_objects = s3.delete_objects

    def refusing_the_first(**request: object) -> dict[str, object]:
        objects = request["Delete"]["Objects"]  # type: ignore[index]
        refused, rest = objects[0], objects[1:]
        answer: dict[str, object] = delete_objects(Bucket=request["Bucket"], Delete={"Objects": rest, "Quiet": True})
        return {**answer, "Errors": [{"Key": refused["Key"], "Code": "AccessDenied", "Message": "Access Denied"}]}

    monkeypatch.setattr(s3, "delete_objects", refusing_the_first)
    report = services.runtime.account_deletion().delete(services.user)

    assert report.objects_deleted == len(stored) - 1
    assert report.not_deleted == [{"what": f"object {stored[0]}", "reason": "AccessDenied: Access Denied"}]
    assert objects_of(services, services.user) == [stored[0]]
