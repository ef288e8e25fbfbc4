"""The completion decision table (pure): a training object + stored state → what to do."""

from __future__ import annotations

from typing import Any

import pytest

from lorapin.domain.completion import Action, Outcome, StoredModel, StoredTraining, decide_completion
from lorapin.domain.replicate_objects import ReplicateTraining

DEST = "acme/user-abc"
TRAINER = "b" * 64
NEW = "c" * 64


def training(status: str = "succeeded", output: Any = None, **extra: Any) -> ReplicateTraining:
    if output is None and status == "succeeded":
        output = {"version": f"{DEST}:{NEW}", "weights": "https://x/w.tar"}
    return ReplicateTraining.parse({"id": "r8train", "status": status, "output": output,
                                             "model": "ostris/flux-dev-lora-trainer", "version": TRAINER, **extra})


def stored(seq: int = 2, status: str = "processing", version_id: str | None = None,
           replicate_id: str = "r8train") -> StoredTraining:
    return StoredTraining("trn_1", replicate_id, seq, DEST, TRAINER, status, version_id)


def model(applied_seq: int = 1, current: str | None = "d" * 64) -> StoredModel:
    return StoredModel(applied_seq, current)


def test_newest_success_activates_the_new_version() -> None:
    decision = decide_completion(training(), stored(seq=2), model(applied_seq=1))
    assert decision.action is Action.ACTIVATE
    assert decision.outcome is Outcome.ACTIVATED
    assert decision.version is not None and decision.version.id == NEW


def test_late_success_of_an_older_training_is_recorded_but_not_activated() -> None:
    decision = decide_completion(training(), stored(seq=2), model(applied_seq=3))
    assert decision.action is Action.RECORD_STALE_SUCCESS
    assert decision.outcome is Outcome.IGNORED_STALE


def test_same_success_twice_is_a_duplicate() -> None:
    decision = decide_completion(training(), stored(seq=2, status="succeeded", version_id=NEW), model(2, NEW))
    assert decision.action is Action.DUPLICATE
    assert decision.outcome is Outcome.DUPLICATE


def test_a_different_version_for_an_already_succeeded_training_is_refused_and_changes_nothing() -> None:
    decision = decide_completion(training(), stored(seq=2, status="succeeded", version_id="e" * 64), model(2))
    assert decision.action is Action.REFUSE_CONFLICT
    assert decision.outcome is Outcome.REJECTED
    assert decision.version is None and decision.status is None


@pytest.mark.parametrize("status", ["failed", "canceled", "aborted", "exploded"])
def test_failures_are_recorded_and_never_activate(status: str) -> None:
    decision = decide_completion(training(status, output=None, error="oom"), stored(), model())
    assert decision.action is Action.RECORD_FAILURE
    assert decision.version is None
    assert decision.status == ("canceled" if status == "canceled" else "failed")


def test_failure_after_failure_is_a_duplicate() -> None:
    decision = decide_completion(training("failed", error="x"), stored(status="failed"), model())
    assert decision.action is Action.DUPLICATE


def test_success_with_the_trainers_version_ends_the_training_failed_with_its_code() -> None:
    decision = decide_completion(training(output={"version": f"{DEST}:{TRAINER}"}), stored(), model())
    assert decision.action is Action.REJECT
    assert decision.outcome is Outcome.REJECTED
    assert "trainer" in decision.reason
    assert (decision.status, decision.error_code, decision.version) == ("failed", "INVALID_OUTPUT_VERSION", None)


def test_success_with_another_models_version_is_rejected() -> None:
    decision = decide_completion(training(output={"version": f"evil/model:{NEW}"}), stored(), model())
    assert decision.action is Action.REJECT


def test_an_unusable_version_for_a_training_already_ended_is_a_duplicate() -> None:
    decision = decide_completion(training(output={"version": f"{DEST}:{TRAINER}"}), stored(status="failed"), model())
    assert decision.action is Action.DUPLICATE


def test_unknown_training_and_mismatched_id_are_ignored() -> None:
    assert decide_completion(training(), None, None).outcome is Outcome.IGNORED_UNKNOWN
    mismatch = decide_completion(training(), stored(replicate_id="other"), model())
    assert mismatch.outcome is Outcome.IGNORED_UNKNOWN


def test_progress_is_recorded_until_the_training_ends() -> None:
    assert decide_completion(training("processing"), stored(status="starting"), model()).action \
        is Action.RECORD_PROGRESS
    assert decide_completion(training("processing"), stored(status="succeeded", version_id=NEW), model()).action \
        is Action.DUPLICATE


def test_success_after_we_gave_up_on_the_training_does_not_move_the_model() -> None:
    decision = decide_completion(training(), stored(status="canceled"), model(applied_seq=0, current=None))
    assert decision.action is Action.RECORD_STALE_SUCCESS
