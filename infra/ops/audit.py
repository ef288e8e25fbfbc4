"""R9 audit of one model: is what lorapin stores what Replicate says, and what the version was trained with?

Pure: `lorapin audit` reads the facts (our model, the destination on Replicate, the training that
produced the current version) and `audit_model` decides. Three questions per model:
- drift: is the stored current version the destination's `latest_version`, or explained by a rollback?
- ownership: is the stored current version one of the destination's versions at all?
- trigger word: do the stored words (the model's and the pinned version's) equal the word the
  version was trained with?
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from lorapin.domain.drift import DriftFinding, DriftStatus, classify_drift


class AuditIssue(StrEnum):
    DRIFT = "drift"  # current is not latest, and no rollback explains it
    UNKNOWN_LATEST = "unknown_latest"  # Replicate reports no version although lorapin has one
    DESTINATION_MISSING = "destination_missing"  # the destination model does not exist on Replicate
    FOREIGN_VERSION = "foreign_version"  # the stored version is not a version of the destination
    TRIGGER_WORD_MISMATCH = "trigger_word_mismatch"  # a stored word differs from the word trained with
    CHECK_FAILED = "check_failed"  # Replicate could not be asked


class TriggerWordCheck(StrEnum):
    MATCH = "match"
    MISMATCH = "mismatch"
    UNKNOWN = "unknown"  # no training found for the version: reported, not counted as a problem
    NOT_APPLICABLE = "n/a"  # no current version


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What was read about one model. `destination_version_ids` is None when it could not be read."""

    user_id: str
    destination: str
    model_trigger_word: str
    current_version_id: str | None
    current_reason: str | None
    current_trigger_word: str | None
    destination_exists: bool = True
    latest_version_id: str | None = None
    destination_version_ids: frozenset[str] | None = None
    trained_trigger_word: str | None = None  # None: no training found for the current version
    check_error: str | None = None  # why Replicate could not be asked


@dataclass(frozen=True, slots=True)
class ModelAudit:
    facts: ModelFacts
    drift: DriftFinding
    version_belongs_to_destination: bool | None  # None: no current version, or unknown
    trigger_word: TriggerWordCheck
    issues: tuple[AuditIssue, ...]
    details: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.issues

    def to_dict(self) -> dict[str, Any]:
        facts = self.facts
        return {
            "user_id": facts.user_id, "destination": facts.destination,
            "current_version_id": facts.current_version_id, "current_reason": facts.current_reason,
            "latest_version_id": facts.latest_version_id, "drift": self.drift.status.value,
            "version_belongs_to_destination": self.version_belongs_to_destination,
            "stored_trigger_word": facts.current_trigger_word or facts.model_trigger_word,
            "trained_trigger_word": facts.trained_trigger_word, "trigger_word": self.trigger_word.value,
            "issues": [issue.value for issue in self.issues], "details": list(self.details), "ok": self.ok,
        }


def audit_model(facts: ModelFacts) -> ModelAudit:
    """Classify one model; `issues` is empty when nothing is wrong (a rollback is not wrong)."""
    if facts.check_error is not None:
        return ModelAudit(facts, classify_drift(facts.current_version_id, facts.current_reason, None), None,
                          TriggerWordCheck.UNKNOWN, (AuditIssue.CHECK_FAILED,),
                          (f"Replicate could not be asked: {facts.check_error}",))
    issues: list[AuditIssue] = []
    details: list[str] = []
    drift = classify_drift(facts.current_version_id, facts.current_reason, facts.latest_version_id)
    if not facts.destination_exists:
        issues.append(AuditIssue.DESTINATION_MISSING)
        details.append(f"the destination {facts.destination} does not exist on Replicate")
    elif drift.status is DriftStatus.DRIFT:
        issues.append(AuditIssue.DRIFT)
        details.append(f"stored {facts.current_version_id} but Replicate's latest is {facts.latest_version_id}, "
                       "and no rollback explains it")
    elif drift.status is DriftStatus.UNKNOWN_LATEST:
        issues.append(AuditIssue.UNKNOWN_LATEST)
        details.append("Replicate reports no version for the destination, yet lorapin stores one")

    belongs = _belongs(facts)
    if belongs is False:
        issues.append(AuditIssue.FOREIGN_VERSION)
        details.append(f"the stored version {facts.current_version_id} is not a version of {facts.destination}")

    trigger = _trigger_word_check(facts)
    if trigger is TriggerWordCheck.MISMATCH:
        issues.append(AuditIssue.TRIGGER_WORD_MISMATCH)
        details.append(f"stored trigger word {facts.current_trigger_word!r} (version) / {facts.model_trigger_word!r} "
                       f"(model), but the version was trained with {facts.trained_trigger_word!r}")
    elif trigger is TriggerWordCheck.UNKNOWN:
        details.append("no training found for the current version: its trigger word is unverified")
    if drift.status is DriftStatus.ROLLBACK and not issues:
        details.append("an earlier version is pinned by a rollback: fine")
    return ModelAudit(facts, drift, belongs, trigger, tuple(issues), tuple(details))


def _belongs(facts: ModelFacts) -> bool | None:
    if facts.current_version_id is None:
        return None
    if not facts.destination_exists:
        return False
    if facts.destination_version_ids is None:
        return None
    return facts.current_version_id in facts.destination_version_ids


def _trigger_word_check(facts: ModelFacts) -> TriggerWordCheck:
    if facts.current_version_id is None:
        return TriggerWordCheck.NOT_APPLICABLE
    if facts.trained_trigger_word is None:
        return TriggerWordCheck.UNKNOWN
    stored = {facts.model_trigger_word, facts.current_trigger_word}
    return TriggerWordCheck.MATCH if stored == {facts.trained_trigger_word} else TriggerWordCheck.MISMATCH


def summarise(audits: list[ModelAudit]) -> dict[str, int]:
    """Models checked, models with a problem, and the count of each issue (drift counted as R9 asks)."""
    summary = {"models": len(audits), "problems": sum(1 for a in audits if not a.ok),
               "rollbacks": sum(1 for a in audits if a.drift.status is DriftStatus.ROLLBACK)}
    for issue in AuditIssue:
        summary[issue.value] = sum(1 for a in audits if issue in a.issues)
    return summary
