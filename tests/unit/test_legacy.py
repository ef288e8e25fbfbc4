"""Pure logic of the operator tools: legacy row normalisation and planning (backfill), and the R9
audit's classification of one model."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from infra.ops.audit import AuditIssue, ModelFacts, TriggerWordCheck, audit_model, summarise
from infra.ops.legacy import (
    BackfillContext,
    DestinationFacts,
    ExistingModel,
    LegacyRow,
    RowOutcome,
    StoredVersionKind,
    TrainedWith,
    classify_stored_version,
    index_trainings_by_version,
    normalise_timestamp,
    plan_backfill,
    plan_row,
    read_legacy_rows,
    trainer_version_ids,
)
from lorapin.domain.drift import DriftStatus
from lorapin.domain.replicate_objects import ReplicateTraining
from lorapin.domain.versions import ModelName

OWNER = "acme"
DESTINATION = "acme/legacy-alice"
TRAINER_MODEL = "ostris/flux-dev-lora-trainer"
TRAINER_VERSION = "e" * 64
OLD_TRAINER_VERSION = "d" * 64  # a trainer version the legacy app used before the configured one
OLDER = "1" * 64
LATEST = "2" * 64
ELSEWHERE = "3" * 64  # a version of some other model
LATEST_REF = f"{DESTINATION}:{LATEST}"


# --- reading ---------------------------------------------------------------------------------------
def test_csv_rows_are_read_with_their_line_numbers_and_blank_lines_skipped() -> None:
    text = ("user_id,replicate_model_id,replicate_version_id,trigger_word,training_status,created_at,updated_at\n"
            f" alice ,{DESTINATION}, {LATEST_REF} ,ALICEX,succeeded,2024-05-01 10:00:00,2024-06-01T08:00:00Z\n"
            ",,,,,,\n"
            "bob,acme/legacy-bob,,TOK,failed,,\n")
    rows = read_legacy_rows(text)
    assert [(r.line, r.user_id) for r in rows] == [(2, "alice"), (4, "bob")]
    assert rows[0].replicate_version_id == LATEST_REF
    assert rows[1].replicate_version_id == ""


def test_json_lines_are_read_and_a_broken_line_becomes_an_unreadable_row() -> None:
    text = ('{"user_id": "alice", "replicate_model_id": "acme/legacy-alice", "replicate_version_id": null}\n'
            "\n"
            "{not json\n"
            "[1, 2]\n")
    rows = read_legacy_rows(text)
    assert rows[0] == LegacyRow(1, user_id="alice", replicate_model_id="acme/legacy-alice")
    assert rows[1].line == 3
    assert rows[1].unreadable is not None and "JSON" in rows[1].unreadable
    assert rows[2].unreadable == "not a JSON object"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01 10:00:00", "2024-05-01T10:00:00.000Z"),
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00.000Z"),
        ("2024-05-01T12:00:00.250+02:00", "2024-05-01T10:00:00.250Z"),
        ("1714557600", "2024-05-01T10:00:00.000Z"),
        ("yesterday", None),
        ("", None),
    ],
)
def test_legacy_timestamps_are_normalised_to_sortable_utc(value: str, expected: str | None) -> None:
    assert normalise_timestamp(value) == expected


# --- the stored version ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "kind", "version_id"),
    [
        (LATEST_REF, StoredVersionKind.DESTINATION_REF, LATEST),
        (f" {LATEST} ", StoredVersionKind.BARE_ID, LATEST),
        (TRAINER_VERSION, StoredVersionKind.TRAINER, TRAINER_VERSION),
        (OLD_TRAINER_VERSION, StoredVersionKind.TRAINER, OLD_TRAINER_VERSION),
        (f"{TRAINER_MODEL}:{TRAINER_VERSION}", StoredVersionKind.TRAINER, TRAINER_VERSION),
        (f"{TRAINER_MODEL}:{'c' * 64}", StoredVersionKind.TRAINER, "c" * 64),  # a trainer version never seen
        (f"{DESTINATION}:{TRAINER_VERSION}", StoredVersionKind.TRAINER, TRAINER_VERSION),
        (f"acme/legacy-bob:{ELSEWHERE}", StoredVersionKind.FOREIGN_REF, ELSEWHERE),
        ("", StoredVersionKind.MISSING, None),
        ("2222abcd", StoredVersionKind.ABBREVIATED, "2222abcd"),  # the UI's 8-character form
        ("2222abc", StoredVersionKind.MALFORMED, None),  # too short to be even that
        (f"{DESTINATION}:22222222", StoredVersionKind.MALFORMED, None),
        ("latest", StoredVersionKind.MALFORMED, None),
        (DESTINATION, StoredVersionKind.MALFORMED, None),
    ],
)
def test_the_stored_version_is_classified(raw: str, kind: StoredVersionKind, version_id: str | None) -> None:
    stored = classify_stored_version(raw, destination=ModelName.parse(DESTINATION), trainer_model=TRAINER_MODEL,
                                     trainer_version_ids=frozenset({TRAINER_VERSION, OLD_TRAINER_VERSION}))
    assert (stored.kind, stored.version_id) == (kind, version_id)


def training(training_id: str, *, status: str = "succeeded", version_ref: str | None = LATEST_REF,
             trigger_word: str | None = "ALICEX", with_input: bool = True,
             trainer_version: str = TRAINER_VERSION) -> ReplicateTraining:
    training_input: dict[str, Any] = {"input_images": "https://x/photos.zip"}
    if trigger_word is not None:
        training_input["trigger_word"] = trigger_word
    return ReplicateTraining.parse({
        "id": training_id, "status": status, "model": TRAINER_MODEL, "version": trainer_version,
        "input": training_input if with_input else None,
        "output": {"version": version_ref, "weights": "https://x/w.tar"} if version_ref else None})


def test_trainings_are_indexed_by_the_version_they_produced_with_their_trigger_word() -> None:
    index = index_trainings_by_version([
        training("t_latest"),
        training("t_older", version_ref=f"{DESTINATION}:{OLDER}", trigger_word=None),  # trainer default
        training("t_failed", status="failed", version_ref=None),
        training("t_no_input", version_ref=f"acme/legacy-bob:{ELSEWHERE}", with_input=False),
        training("t_bare", version_ref=ELSEWHERE),
    ])
    assert index == {LATEST_REF: TrainedWith("t_latest", "ALICEX"),
                     f"{DESTINATION}:{OLDER}": TrainedWith("t_older", "TOK")}


def test_every_trainer_version_seen_counts_as_a_trainer_version() -> None:
    seen = trainer_version_ids([training("a", trainer_version=OLD_TRAINER_VERSION), training("b")], TRAINER_VERSION)
    assert seen == frozenset({TRAINER_VERSION, OLD_TRAINER_VERSION})


# --- planning --------------------------------------------------------------------------------------
def context(**changes: Any) -> BackfillContext:
    base = BackfillContext(
        owner=OWNER, trainer_model=TRAINER_MODEL, trainer_version_ids=frozenset({TRAINER_VERSION}),
        destinations={DESTINATION: DestinationFacts(exists=True, version_ids=(LATEST, OLDER), latest_version_id=LATEST),
                      "acme/legacy-empty": DestinationFacts(exists=True)},
        trained_with={LATEST_REF: TrainedWith("r8_training", "ALICEX")}, existing={})
    return replace(base, **changes)


def row(version: str = LATEST_REF, *, user_id: str = "alice", model: str = DESTINATION, trigger_word: str = "ALICEX",
        status: str = "succeeded") -> LegacyRow:
    return LegacyRow(7, user_id=user_id, replicate_model_id=model, replicate_version_id=version,
                     trigger_word=trigger_word, training_status=status, created_at="2024-05-01 10:00:00",
                     updated_at="2024-06-01 08:00:00")


def test_a_clean_full_ref_of_the_latest_version_migrates_as_it_is() -> None:
    plan = plan_row(row(), context())
    assert plan.outcome is RowOutcome.MIGRATE
    assert plan.version is not None and plan.version.ref == LATEST_REF
    assert plan.trigger_word == "ALICEX"
    assert plan.reasons == ()
    assert (plan.created_at, plan.updated_at) == ("2024-05-01T10:00:00.000Z", "2024-06-01T08:00:00.000Z")


@pytest.mark.parametrize(
    ("stored", "note"),
    [
        (LATEST, "resolved to"),
        (OLDER, "older than the destination's latest"),
        (TRAINER_VERSION, "trainer's version, rejected"),
        (f"{TRAINER_MODEL}:{TRAINER_VERSION}", "trainer's version, rejected"),
        ("", "no stored version"),
        ("22222222", "resolved to"),
        ("v2", "not a version id"),
    ],
)
def test_the_current_version_is_always_the_destinations_latest_never_the_trainers(stored: str, note: str) -> None:
    plan = plan_row(row(stored), context())
    assert plan.outcome is RowOutcome.MIGRATE
    assert plan.version is not None and plan.version.id == LATEST
    assert any(note in reason for reason in plan.reasons), plan.reasons


def test_the_trigger_word_is_the_one_the_version_was_trained_with() -> None:
    plan = plan_row(row(trigger_word="alice"), context())
    assert plan.outcome is RowOutcome.MIGRATE
    assert plan.trigger_word == "ALICEX"
    assert any("'alice' replaced by 'ALICEX'" in reason for reason in plan.reasons)


def test_an_unverifiable_trigger_word_needs_attention_unless_trusted() -> None:
    untrained = context(trained_with={})
    assert plan_row(row(), untrained).outcome is RowOutcome.NEEDS_ATTENTION
    trusted = plan_row(row(trigger_word="ALICEZ"), replace(untrained, trust_stored_trigger_words=True))
    assert trusted.outcome is RowOutcome.MIGRATE
    assert trusted.trigger_word == "ALICEZ"
    assert any("kept as stored" in reason for reason in trusted.reasons)


@pytest.mark.parametrize(
    ("legacy", "reason"),
    [
        (row(f"acme/legacy-bob:{ELSEWHERE}"), "belongs to acme/legacy-bob"),
        (row(ELSEWHERE), "is not a version of"),
        (row(f"{DESTINATION}:{ELSEWHERE}"), "is not a version of"),
        (row("33333333"), "matches 0 versions"),
        (row(model="acme/legacy-nobody"), "does not exist on Replicate"),
        (row(user_id=""), "no user_id"),
        (row(model="legacy-alice"), "not an owner/name model"),
        (row(model="someone-else/legacy-alice"), "not to 'acme'"),
        (row("", model="acme/legacy-empty"), "has no version on Replicate although"),
        (LegacyRow(3, unreadable="not a JSON object"), "unreadable row"),
    ],
)
def test_rows_that_cannot_be_trusted_need_attention(legacy: LegacyRow, reason: str) -> None:
    plan = plan_row(legacy, context())
    assert plan.outcome is RowOutcome.NEEDS_ATTENTION
    assert plan.version is None
    assert any(reason in r for r in plan.reasons), plan.reasons


def test_a_training_still_running_or_never_successful_is_skipped_with_a_reason() -> None:
    running = plan_row(row(status="processing"), context())
    failed = plan_row(row("", model="acme/legacy-empty", status="failed"), context())
    assert (running.outcome, failed.outcome) == (RowOutcome.SKIPPED, RowOutcome.SKIPPED)
    assert "still running" in running.reasons[0]
    assert "no successful training" in failed.reasons[0]


def test_a_model_lorapin_manages_is_never_overwritten_unless_identical() -> None:
    identical = ExistingModel(DESTINATION, "ALICEX", LATEST, "ALICEX")
    newer_in_lorapin = ExistingModel(DESTINATION, "ALICEX", "4" * 64, "ALICEX")
    elsewhere = ExistingModel("acme/lorapin-0123", "ALICEX", "4" * 64, "ALICEX")
    outcomes = [plan_row(row(), context(existing={"alice": existing})) for existing in
                (identical, newer_in_lorapin, elsewhere)]
    assert [p.outcome for p in outcomes] == [RowOutcome.UNCHANGED, RowOutcome.SKIPPED, RowOutcome.NEEDS_ATTENTION]
    assert outcomes[0].version is not None and outcomes[0].version.id == LATEST
    assert f"current version {'4' * 64}; the row would give {LATEST}); not overwritten" in outcomes[1].reasons[0]
    assert "acme/lorapin-0123" in outcomes[2].reasons[0]
    assert outcomes[1].version is None and outcomes[2].version is None  # nothing to write, nothing shown as such


def test_a_second_row_for_the_same_user_is_not_planned_twice() -> None:
    plans = plan_backfill([row(), replace(row(OLDER), line=9)], context())
    assert [p.outcome for p in plans] == [RowOutcome.MIGRATE, RowOutcome.NEEDS_ATTENTION]
    assert "line 7 already names this user" in plans[1].reasons[0]


def test_a_plan_serialises_what_an_operator_needs() -> None:
    document = plan_row(row(TRAINER_VERSION), context()).to_dict()
    assert document["outcome"] == "migrate"
    assert document["version_ref"] == LATEST_REF
    assert document["stored_version"] == "trainer"
    assert document["version_id"] != TRAINER_VERSION


# --- the audit -------------------------------------------------------------------------------------
def facts(**changes: Any) -> ModelFacts:
    base = ModelFacts(user_id="alice", destination=DESTINATION, model_trigger_word="ALICEX",
                      current_version_id=LATEST, current_reason="training", current_trigger_word="ALICEX",
                      destination_exists=True, latest_version_id=LATEST,
                      destination_version_ids=frozenset({LATEST, OLDER}), trained_trigger_word="ALICEX")
    return replace(base, **changes)


def test_a_model_in_sync_has_no_issue() -> None:
    audit = audit_model(facts())
    assert audit.ok
    assert (audit.drift.status, audit.version_belongs_to_destination, audit.trigger_word) == (
        DriftStatus.IN_SYNC, True, TriggerWordCheck.MATCH)


def test_a_rollback_is_reported_as_fine() -> None:
    audit = audit_model(facts(current_version_id=OLDER, current_reason="rollback"))
    assert audit.ok
    assert audit.drift.status is DriftStatus.ROLLBACK
    assert any("rollback: fine" in detail for detail in audit.details)


def test_a_stale_version_without_a_rollback_is_drift() -> None:
    audit = audit_model(facts(current_version_id=OLDER))
    assert audit.issues == (AuditIssue.DRIFT,)
    assert OLDER in audit.details[0] and LATEST in audit.details[0]


def test_a_version_of_another_model_is_foreign_even_when_pinned_by_a_rollback() -> None:
    audit = audit_model(facts(current_version_id=TRAINER_VERSION, current_reason="rollback"))
    assert audit.issues == (AuditIssue.FOREIGN_VERSION,)
    assert audit.version_belongs_to_destination is False


@pytest.mark.parametrize(("model_word", "version_word"), [("ALICEX", "TOK"), ("TOK", "ALICEX")])
def test_a_stored_trigger_word_that_differs_from_the_trained_one_is_reported(model_word: str,
                                                                             version_word: str) -> None:
    audit = audit_model(facts(model_trigger_word=model_word, current_trigger_word=version_word))
    assert audit.issues == (AuditIssue.TRIGGER_WORD_MISMATCH,)
    assert audit.trigger_word is TriggerWordCheck.MISMATCH


def test_an_unverifiable_trigger_word_is_noted_but_not_a_problem() -> None:
    audit = audit_model(facts(trained_trigger_word=None))
    assert audit.ok
    assert audit.trigger_word is TriggerWordCheck.UNKNOWN


def test_a_model_without_a_version_yet_is_fine() -> None:
    audit = audit_model(facts(current_version_id=None, current_reason=None, current_trigger_word=None,
                              latest_version_id=None, destination_version_ids=frozenset(), trained_trigger_word=None))
    assert audit.ok
    assert (audit.drift.status, audit.trigger_word) == (DriftStatus.NO_VERSION, TriggerWordCheck.NOT_APPLICABLE)


def test_a_missing_destination_an_empty_destination_and_an_unreachable_replicate_are_problems() -> None:
    missing = audit_model(facts(destination_exists=False, latest_version_id=None, destination_version_ids=None))
    empty = audit_model(facts(latest_version_id=None, destination_version_ids=frozenset()))
    unreachable = audit_model(facts(check_error="Replicate did not answer"))
    assert missing.issues == (AuditIssue.DESTINATION_MISSING, AuditIssue.FOREIGN_VERSION)
    assert empty.issues == (AuditIssue.UNKNOWN_LATEST, AuditIssue.FOREIGN_VERSION)
    assert unreachable.issues == (AuditIssue.CHECK_FAILED,)


def test_the_summary_counts_problems_and_each_issue() -> None:
    audits = [audit_model(facts()), audit_model(facts(current_version_id=OLDER)),
              audit_model(facts(current_version_id=OLDER, current_reason="rollback"))]
    summary = summarise(audits)
    assert (summary["models"], summary["problems"], summary["drift"], summary["rollbacks"]) == (3, 1, 1, 1)
    assert audits[1].to_dict()["issues"] == ["drift"]
