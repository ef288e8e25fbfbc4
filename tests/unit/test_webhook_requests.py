"""The activating webhook in three AWS requests (REQUIREMENTS §10), and a test for each invariant
that the four requests it no longer makes used to serve:

- the per-delivery idempotency record (2 writes): a redelivery is decided `duplicate` against the
  stored state and changes nothing (I4; concurrent copies: `test_core_pipeline.py`, on the moto
  server, whose DynamoDB transactions are atomic as DynamoDB's are);
- the training lookup by Replicate id and the separate model read: the URL's ids are read in one
  request and trusted only as far as the signed body agrees (I6, I7);
- the outbox clear after `PutEvents`: the event's consumer acknowledges it, and without that
  receipt the reconciler publishes it again once the lease lapses (I5).
"""

from __future__ import annotations

import json
from typing import Any

import botocore.client
import pytest

from infra.local.functions import LocalContext, load_handler
from infra.local.template import Template
from infra.resign_event import resign
from lorapin.adapters.outbox import LEASE, acknowledge_activation
from lorapin.adapters.repository import Repository
from lorapin.adapters.settings import Settings
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


def test_an_activating_webhook_makes_three_aws_requests(webhook: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert webhook(load("training_succeeded.json"))["statusCode"] == 401  # stale: fetches the secret only
    requests = AwsRequests(monkeypatch)
    response = webhook(delivery())
    assert json.loads(response["body"]) == {"outcome": "activated"}
    assert requests.operations == ["TransactGetItems", "TransactWriteItems", "PutEvents"]


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
