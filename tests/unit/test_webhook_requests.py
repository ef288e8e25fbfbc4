"""The activating webhook in two AWS requests (REQUIREMENTS §10), and a test for each invariant
that the five requests it no longer makes used to serve:

- the per-delivery idempotency record (2 writes): a redelivery is decided `duplicate` against the
  stored state and changes nothing (I4; concurrent copies: `test_core_pipeline.py`, on the moto
  server, whose DynamoDB transactions are atomic as DynamoDB's are);
- the training lookup by Replicate id and the separate model read: the URL's ids are read in one
  request and trusted only as far as the signed body agrees (I6, I7);
- that read itself: the URL says what the webhook will find (`ExpectedTraining`), the activation is
  written on condition that it is so, and a URL that misstates anything, or a state that moved on
  since the training began, is read and decided as before (I1, I4, I7);
- the outbox clear after `PutEvents`: the event's consumer acknowledges it, and without that
  receipt the reconciler publishes it again once the lease lapses (I5).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import botocore.client
import pytest

from infra.local.functions import LocalContext, load_handler
from infra.local.template import Template
from infra.resign_event import resign
from lorapin.adapters.outbox import LEASE, acknowledge_activation
from lorapin.adapters.repository import Repository
from lorapin.adapters.settings import Settings
from lorapin.domain.completion import ExpectedTraining
from tests.fakes import ManualClock
from tests.fixtures import UNIT_SIGNING_SECRET
from tests.unit.conftest import Services
from tests.unit.test_reconciler import WITHOUT_DRIFT
from tests.unit.test_sample_events import load, seed_from_sample

pytestmark = pytest.mark.unit
SAMPLE_USER = "user-sample-1"
SAMPLE_TRAINING = "trn_20260101000000a1b2c3d4e5f60718"


class AwsRequests:
    """Every AWS API request made through botocore (PynamoDB's and boto3's clients alike)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.operations: list[str] = []
        original = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]

        def counted(client: Any, operation: str, params: Any) -> Any:
            self.operations.append(operation)
            return original(client, operation, params)

        monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counted)


@pytest.fixture
def webhook(in_process_aws: Any) -> Any:
    spec = Template().functions()["ReplicateWebhookFunction"]
    handler = load_handler(spec, in_process_aws.function_env["ReplicateWebhookFunction"])
    seed_from_sample(Repository(Settings.from_env()))
    return lambda event: handler(event, LocalContext("ReplicateWebhookFunction"))


def delivery(**query: str) -> dict[str, Any]:
    event = load("training_succeeded.json")
    if query:
        event["queryStringParameters"] = query
    return resign(event, UNIT_SIGNING_SECRET)


def test_an_activating_webhook_makes_two_aws_requests(webhook: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert webhook(load("training_succeeded.json"))["statusCode"] == 401  # stale: fetches the secret only
    requests = AwsRequests(monkeypatch)
    response = webhook(delivery())
    assert json.loads(response["body"]) == {"outcome": "activated"}
    assert requests.operations == ["TransactWriteItems", "PutEvents"]


def activated_version(repository: Repository) -> tuple[Any, Any]:
    model = repository.get_model(SAMPLE_USER)
    assert model is not None and model.current_version is not None
    versions = repository.versions_of(SAMPLE_USER)
    assert len(versions) == 1
    return model.current_version, versions[0]


@pytest.mark.parametrize("misstated", [{"seq": "2"}, {"image_count": "7"}, {"user_id": "someone-else"},
                                       {"previous_version_id": "a" * 64}])
def test_a_url_that_misstates_the_training_is_read_and_activates_what_is_stored(
        webhook: Any, misstated: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    query = {"training_id": SAMPLE_TRAINING, "user_id": SAMPLE_USER, "seq": "1", "image_count": "0"} | misstated
    assert webhook(load("training_succeeded.json"))["statusCode"] == 401  # stale: fetches the secret only
    requests = AwsRequests(monkeypatch)
    response = webhook(delivery(**query))
    assert json.loads(response["body"]) == {"outcome": "activated"}
    assert requests.operations[:2] == ["TransactWriteItems", "TransactGetItems"]  # refused, then read
    assert requests.operations.count("TransactWriteItems") == 2 and requests.operations[-1] == "PutEvents"
    current, version = activated_version(Repository(Settings.from_env()))
    assert (current.seq, current.trigger_word, current.training_id) == (1, "TOK", SAMPLE_TRAINING)
    assert (version.seq, version.image_count, version.trigger_word) == (1, 0, "TOK")


@pytest.mark.parametrize("malformed", [{"seq": "\u00b2"}, {"image_count": "-1"}, {"seq": "9" * 40},
                                       {"previous_version_id": "not-a-version"}])
def test_a_url_with_a_malformed_expectation_is_read(webhook: Any, malformed: dict[str, str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    query = {"training_id": SAMPLE_TRAINING, "user_id": SAMPLE_USER, "seq": "1", "image_count": "0"} | malformed
    assert webhook(load("training_succeeded.json"))["statusCode"] == 401  # stale: fetches the secret only
    requests = AwsRequests(monkeypatch)
    response = webhook(delivery(**query))
    assert json.loads(response["body"]) == {"outcome": "activated"}
    assert requests.operations == ["TransactGetItems", "TransactWriteItems", "PutEvents"]


def test_a_body_with_another_trigger_word_than_stored_activates_the_stored_one(webhook: Any) -> None:
    """The trigger word is taken from the signed body's input only on condition that it is ours."""
    event = load("training_succeeded.json")
    body = json.loads(event["body"])
    body["input"]["trigger_word"] = "OTHER"
    event["body"] = json.dumps(body)
    response = webhook(resign(event, UNIT_SIGNING_SECRET))
    assert json.loads(response["body"]) == {"outcome": "activated"}
    current, version = activated_version(Repository(Settings.from_env()))
    assert current.trigger_word == version.trigger_word == "TOK"


def expected_of(url: str) -> ExpectedTraining:
    query = dict(parse_qsl(urlsplit(url).query))
    expected = ExpectedTraining.from_query(query.get("training_id"), query.get("user_id"), query)
    assert expected is not None
    return expected


def test_a_rollback_while_training_is_the_version_the_activation_replaces(isolated_services: Services) -> None:
    """The URL expected the version current when the training began; a rollback since changed it."""
    services = isolated_services
    first = services.train()
    second = services.train()
    training = services.start_training()
    url = services.replicate.trainings[str(training.replicate_training_id)]["webhook"]
    assert expected_of(url).previous_version_id == second
    services.runtime.history().rollback(services.user, first)
    finished = services.replicate.finish_training(str(training.replicate_training_id))
    result = services.runtime.completion().apply(finished, training_id_hint=training.training_id,
                                                 user_hint=services.user, expected=expected_of(url))
    assert result.outcome.value == "activated"
    activated = services.bus.events("ModelVersionActivated")[-1]
    assert activated["previous_version_id"] == first and activated["training_id"] == training.training_id
    model = services.repository.get_model(services.user)
    assert model is not None and model.current_version is not None and model.current_version.seq == training.seq


def test_a_url_as_expected_activates_without_reading(isolated_services: Services,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    services = isolated_services
    first = services.train()
    training = services.start_training()
    url = services.replicate.trainings[str(training.replicate_training_id)]["webhook"]
    finished = services.replicate.finish_training(str(training.replicate_training_id))
    requests = AwsRequests(monkeypatch)
    result = services.runtime.completion().apply(finished, expected=expected_of(url), await_receipt=True)
    assert result.outcome.value == "activated"
    assert requests.operations == ["TransactWriteItems"]  # the isolated bus is not botocore
    activated = services.bus.events("ModelVersionActivated")[-1]
    assert (activated["previous_version_id"], activated["seq"], activated["trigger_word"]) == (first, 2, "TOK")
    assert services.repository.versions_of(services.user)[0].image_count == 12


def test_a_url_without_the_user_still_finds_its_training(webhook: Any) -> None:
    """URLs handed to Replicate before the user rode in them: found by Replicate's id, as before."""
    response = webhook(delivery(training_id=SAMPLE_TRAINING))
    assert json.loads(response["body"]) == {"outcome": "activated"}


def test_a_redelivery_is_a_duplicate_that_writes_nothing(webhook: Any) -> None:
    first = delivery()
    assert json.loads(webhook(first)["body"]) == {"outcome": "activated"}
    before = Repository(Settings.from_env()).get_model(SAMPLE_USER)
    again = webhook(first)  # the same webhook-id, body and signature
    assert again["statusCode"] == 200 and json.loads(again["body"]) == {"outcome": "duplicate"}
    after = Repository(Settings.from_env()).get_model(SAMPLE_USER)
    assert before is not None and after is not None
    assert after.serialize() == before.serialize()


def test_a_tampered_user_in_the_url_neither_reads_nor_changes_that_user(webhook: Any) -> None:
    """The query string is not signed: naming another user's id finds that user's model, which the
    training record (found for the signed body) does not belong to, so it is not the one changed."""
    repository = Repository(Settings.from_env())
    repository.new_model("someone-else", destination="lorapin-local/other", trigger_word="ZZZ", status="ready",
                         created_at="2026-11-24T10:00:00.000Z").save()
    before = repository.get_model("someone-else")
    response = webhook(delivery(training_id=SAMPLE_TRAINING, user_id="someone-else"))
    assert json.loads(response["body"]) == {"outcome": "activated"}
    sample_model, other = repository.get_model(SAMPLE_USER), repository.get_model("someone-else")
    assert sample_model is not None and sample_model.current_version is not None
    assert other is not None and before is not None and other.serialize() == before.serialize()


def test_the_consumers_receipt_clears_the_outbox_and_only_for_that_activation(isolated_services: Services) -> None:
    services = isolated_services
    training = services.start_training()
    finished = services.replicate.finish_training(str(training.replicate_training_id))
    services.runtime.completion().apply(finished, training_id_hint=training.training_id, await_receipt=True)
    stored = services.repository.get_training(training.training_id)
    assert stored is not None and stored.pending_event is not None  # published, awaiting its receipt
    assert len(services.bus.events("ModelVersionActivated")) == 1
    assert not acknowledge_activation(training.training_id, "0" * 64)  # another version's receipt
    assert acknowledge_activation(training.training_id, str(stored.version_id))
    cleared = services.repository.get_training(training.training_id)
    assert cleared is not None and cleared.pending_event is None and cleared.due_shard is None


def test_without_a_receipt_the_reconciler_publishes_again_once_the_lease_lapses(isolated_services: Services,
                                                                                clock: ManualClock) -> None:
    services = isolated_services
    training = services.start_training()
    finished = services.replicate.finish_training(str(training.replicate_training_id))
    services.runtime.completion().apply(finished, training_id_hint=training.training_id, await_receipt=True)
    assert services.runtime.reconciler(WITHOUT_DRIFT).run().events_published == 0  # the lease still holds
    clock.advance(LEASE * 2)
    assert services.runtime.reconciler(WITHOUT_DRIFT).run().events_published == 1  # the consumer never said it had it
    assert len(services.bus.events("ModelVersionActivated")) == 2  # at least once: consumers tolerate it (I5)
    stored = services.repository.get_training(training.training_id)
    assert stored is not None and stored.pending_event is None
    clock.advance(LEASE * 2)
    assert services.runtime.reconciler(WITHOUT_DRIFT).run().events_published == 0
