"""Backfill of the legacy `user_models` table: read its rows, normalise each one, decide what to do.

Pure: the `lorapin backfill` command reads the file, Replicate and our tables, then hands the facts
to `plan_backfill`. Every row ends as one `RowOutcome`, with the reasons a person can act on.

The legacy rows are untrustworthy in exactly the ways REQUIREMENTS §1 lists: `replicate_version_id` may be
`owner/name:id`, a bare id, an 8-character abbreviation, the *trainer's* version, or missing, and
`trigger_word` may not be the word the version was trained with. So the migrated current version is
the destination's latest version on Replicate (R9), the stored value only has to be consistent with
the destination, and the trigger word is the one the version's training received (R4).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from lorapin.domain.clock import iso
from lorapin.domain.errors import InvalidVersionRef
from lorapin.domain.replicate_objects import ReplicateTraining
from lorapin.domain.statuses import TrainingStatus
from lorapin.domain.versions import ModelName, VersionRef, is_version_id

LEGACY_FIELDS = ("user_id", "replicate_model_id", "replicate_version_id", "trigger_word", "training_status",
                 "created_at", "updated_at")
TRAINER_DEFAULT_TRIGGER_WORD = "TOK"  # what the FLUX LoRA trainer uses when `input.trigger_word` is absent
IN_PROGRESS_STATUSES = frozenset({"starting", "processing", "training", "queued", "pending", "running"})
UNSUCCESSFUL_STATUSES = frozenset({"failed", "canceled", "cancelled", "aborted", "error"})
ABBREVIATED_ID = re.compile(r"^[0-9a-f]{8,63}$")


# --- reading ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LegacyRow:
    """One row of `user_models`, every field a stripped string ("" when absent)."""

    line: int
    user_id: str = ""
    replicate_model_id: str = ""
    replicate_version_id: str = ""
    trigger_word: str = ""
    training_status: str = ""
    created_at: str = ""
    updated_at: str = ""
    unreadable: str | None = None  # why the row could not be read at all

    @classmethod
    def from_mapping(cls, line: int, values: Mapping[str, Any]) -> LegacyRow:
        def text(key: str) -> str:
            value = values.get(key)
            return "" if value is None else str(value).strip()

        return cls(line, **{key: text(key) for key in LEGACY_FIELDS})


def read_legacy_rows(text: str) -> list[LegacyRow]:
    """CSV with a header line, or JSON lines (one object per line); the format is told by the first
    character. Blank lines are ignored; a line that is not a JSON object becomes an unreadable row."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return _read_json_lines(text)
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    for values in reader:
        if not any((value or "").strip() for value in values.values() if isinstance(value, str)):
            continue
        rows.append(LegacyRow.from_mapping(reader.line_num, values))
    return rows


def _read_json_lines(text: str) -> list[LegacyRow]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values = json.loads(line)
        except json.JSONDecodeError as exc:
            rows.append(LegacyRow(number, unreadable=f"not valid JSON: {exc.msg}"))
            continue
        if not isinstance(values, dict):
            rows.append(LegacyRow(number, unreadable="not a JSON object"))
            continue
        rows.append(LegacyRow.from_mapping(number, values))
    return rows


def normalise_timestamp(value: str) -> str | None:
    """A legacy timestamp in our sortable form (`2024-05-01T10:00:00.000Z`), or None if unreadable.
    Timestamps without a zone are taken as UTC; Unix seconds are accepted too."""
    if not value:
        return None
    try:
        if re.fullmatch(r"\d{9,11}(\.\d+)?", value):
            return iso(datetime.fromtimestamp(float(value), tz=UTC))
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        return None
    return iso(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


# --- the stored version ----------------------------------------------------------------------------
class StoredVersionKind(StrEnum):
    DESTINATION_REF = "destination_ref"  # `owner/name:id` of the row's own destination
    BARE_ID = "bare_id"  # a 64-hex id without a model
    ABBREVIATED = "abbreviated"  # 8 to 63 hex characters: the UI's short form, a prefix at best
    TRAINER = "trainer"  # the trainer's version (`training.version`): never a version of the destination
    FOREIGN_REF = "foreign_ref"  # `owner/name:id` of some other model
    MISSING = "missing"
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class StoredVersion:
    kind: StoredVersionKind
    raw: str
    version_id: str | None = None  # the id, or the prefix of an abbreviated one
    model: str | None = None  # the model a full ref names


def classify_stored_version(raw: str, *, destination: ModelName, trainer_model: str,
                            trainer_version_ids: frozenset[str]) -> StoredVersion:
    """What the legacy `replicate_version_id` holds, without deciding yet what to do with it."""
    value = raw.strip()
    if not value:
        return StoredVersion(StoredVersionKind.MISSING, raw)
    if ":" in value:
        try:
            ref = VersionRef.parse(value)
        except InvalidVersionRef:
            return StoredVersion(StoredVersionKind.MALFORMED, raw)
        if str(ref.model) == trainer_model or ref.id in trainer_version_ids:
            return StoredVersion(StoredVersionKind.TRAINER, raw, ref.id, str(ref.model))
        if ref.model != destination:
            return StoredVersion(StoredVersionKind.FOREIGN_REF, raw, ref.id, str(ref.model))
        return StoredVersion(StoredVersionKind.DESTINATION_REF, raw, ref.id, str(ref.model))
    if is_version_id(value):
        kind = StoredVersionKind.TRAINER if value in trainer_version_ids else StoredVersionKind.BARE_ID
        return StoredVersion(kind, raw, value)
    if ABBREVIATED_ID.fullmatch(value):
        return StoredVersion(StoredVersionKind.ABBREVIATED, raw, value)
    return StoredVersion(StoredVersionKind.MALFORMED, raw)


# --- facts from Replicate and from our tables --------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DestinationFacts:
    """What Replicate says about a destination model."""

    exists: bool
    version_ids: tuple[str, ...] = ()  # newest first
    latest_version_id: str | None = None


@dataclass(frozen=True, slots=True)
class TrainedWith:
    """The Replicate training that produced a version, and the trigger word it was given."""

    replicate_training_id: str
    trigger_word: str


def trained_trigger_word(training_input: Mapping[str, Any] | None) -> str | None:
    """The word a training was given: `input.trigger_word`, or the trainer's default when the input
    has none. None when the input is not known (Replicate did not return it)."""
    if training_input is None:
        return None
    word = training_input.get("trigger_word")
    if isinstance(word, str) and word.strip():
        return word.strip()
    return TRAINER_DEFAULT_TRIGGER_WORD


def index_trainings_by_version(trainings: list[ReplicateTraining]) -> dict[str, TrainedWith]:
    """Successful trainings keyed by the version ref they produced (`owner/name:id`).

    Trainings whose input is unknown, or whose output is not a full ref, are left out.
    """
    index: dict[str, TrainedWith] = {}
    for training in trainings:
        if training.normalised_status != TrainingStatus.SUCCEEDED or not isinstance(training.output, dict):
            continue
        try:
            ref = VersionRef.parse(training.output.get("version"))
        except InvalidVersionRef:
            continue
        word = trained_trigger_word(training.input)
        if word is not None:
            index.setdefault(ref.ref, TrainedWith(training.id, word))
    return index


def trainer_version_ids(trainings: list[ReplicateTraining], configured: str) -> frozenset[str]:
    """Every trainer version seen on the account's trainings, and the configured one: none of them is
    ever a version of a destination."""
    return frozenset({configured, *(t.version for t in trainings if t.version and is_version_id(t.version))})


@dataclass(frozen=True, slots=True)
class ExistingModel:
    """The model lorapin already manages for a user (REQUIREMENTS §4 `Model`, reduced to what a row can match)."""

    destination: str
    trigger_word: str
    current_version_id: str | None
    current_trigger_word: str | None


# --- the plan --------------------------------------------------------------------------------------
class RowOutcome(StrEnum):
    MIGRATE = "migrate"  # write a model and its version
    UNCHANGED = "unchanged"  # lorapin already has exactly what this row would write (a second run)
    SKIPPED = "skipped"
    NEEDS_ATTENTION = "needs_attention"


@dataclass(frozen=True, slots=True)
class RowPlan:
    line: int
    user_id: str
    outcome: RowOutcome
    reasons: tuple[str, ...]
    destination: str | None = None
    version: VersionRef | None = None
    trigger_word: str | None = None
    stored_version: StoredVersionKind | None = None
    created_at: str | None = None  # normalised legacy timestamps, for the records written
    updated_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "user_id": self.user_id, "outcome": self.outcome.value,
                "destination": self.destination, "version_id": self.version.id if self.version else None,
                "version_ref": self.version.ref if self.version else None, "trigger_word": self.trigger_word,
                "stored_version": self.stored_version.value if self.stored_version else None,
                "reasons": list(self.reasons)}


@dataclass(frozen=True)
class BackfillContext:
    """Everything the plan needs to know besides the rows."""

    owner: str  # the Replicate account lorapin trains with; destinations must belong to it
    trainer_model: str
    trainer_version_ids: frozenset[str]
    destinations: Mapping[str, DestinationFacts]  # by `owner/name`; absent = not looked up (not found)
    trained_with: Mapping[str, TrainedWith]  # by version ref
    existing: Mapping[str, ExistingModel]  # by user id
    trust_stored_trigger_words: bool = False


def plan_backfill(rows: list[LegacyRow], context: BackfillContext) -> list[RowPlan]:
    """One plan per row, in file order. A user named by an earlier row is not planned twice."""
    plans: list[RowPlan] = []
    first_line_of: dict[str, int] = {}
    for row in rows:
        if row.user_id and row.user_id in first_line_of:
            plans.append(RowPlan(row.line, row.user_id, RowOutcome.NEEDS_ATTENTION,
                                 (f"line {first_line_of[row.user_id]} already names this user; "
                                  "keep one row per user",)))
            continue
        if row.user_id:
            first_line_of[row.user_id] = row.line
        plans.append(plan_row(row, context))
    return plans


def plan_row(row: LegacyRow, context: BackfillContext) -> RowPlan:
    """Normalise one legacy row and decide its outcome (see the module docstring for the policy)."""
    if row.unreadable:
        return _verdict(row, RowOutcome.NEEDS_ATTENTION, [f"unreadable row: {row.unreadable}"])
    if not row.user_id:
        return _verdict(row, RowOutcome.NEEDS_ATTENTION, ["the row has no user_id"])
    try:
        destination = ModelName.parse(row.replicate_model_id)
    except InvalidVersionRef:
        return _verdict(row, RowOutcome.NEEDS_ATTENTION,
                        [f"replicate_model_id {row.replicate_model_id!r} is not an owner/name model"])
    candidate = _plan_destination_row(row, destination, context)
    existing = context.existing.get(row.user_id)
    return candidate if existing is None else _against_existing(candidate, existing)


def _plan_destination_row(row: LegacyRow, destination: ModelName, context: BackfillContext) -> RowPlan:
    stored = classify_stored_version(row.replicate_version_id, destination=destination,
                                     trainer_model=context.trainer_model,
                                     trainer_version_ids=context.trainer_version_ids)
    common = {"destination": str(destination), "stored_version": stored.kind}

    def attention(reason: str) -> RowPlan:
        return _verdict(row, RowOutcome.NEEDS_ATTENTION, [reason], **common)

    if destination.owner != context.owner:
        return attention(f"{destination} belongs to {destination.owner!r}, not to {context.owner!r}, "
                         "the account lorapin trains with")
    status = row.training_status.lower()
    if status in IN_PROGRESS_STATUSES:
        return _verdict(row, RowOutcome.SKIPPED, [f"training_status is {status!r}: a training is still running "
                                                  "in the legacy app; run the backfill again once it ends"], **common)
    facts = context.destinations.get(str(destination), DestinationFacts(exists=False))
    if not facts.exists:
        return attention(f"the destination {destination} does not exist on Replicate")
    if stored.kind is StoredVersionKind.FOREIGN_REF:
        return attention(f"the stored version belongs to {stored.model}, not to the destination {destination}")
    if stored.kind in (StoredVersionKind.DESTINATION_REF, StoredVersionKind.BARE_ID) \
            and stored.version_id not in facts.version_ids:
        return attention(f"the stored version {stored.version_id} is not a version of {destination}")
    if stored.kind is StoredVersionKind.ABBREVIATED:
        matches = [v for v in facts.version_ids if stored.version_id and v.startswith(stored.version_id)]
        if len(matches) != 1:
            return attention(f"the abbreviated version {stored.raw!r} matches {len(matches)} versions of "
                             f"{destination}, not exactly one")
    if facts.latest_version_id is None:
        if status in UNSUCCESSFUL_STATUSES:
            return _verdict(row, RowOutcome.SKIPPED, ["no successful training: the destination has no version"],
                            **common)
        return attention(f"{destination} has no version on Replicate although training_status is {status!r}")

    latest = VersionRef.of(destination, facts.latest_version_id)
    reasons = _version_notes(stored, latest)
    trained = context.trained_with.get(latest.ref)
    if trained is not None:
        word = trained.trigger_word
        if row.trigger_word != word:
            reasons.append(f"trigger word {row.trigger_word!r} replaced by {word!r}, the word the version was "
                           f"trained with (training {trained.replicate_training_id})")
    elif context.trust_stored_trigger_words and row.trigger_word:
        word = row.trigger_word
        reasons.append(f"trigger word {word!r} kept as stored: no Replicate training found to verify it")
    else:
        return attention(f"no Replicate training found for {latest.ref}: the trigger word cannot be verified "
                         "(use --trust-stored-trigger-words to migrate with the stored word)")
    return _verdict(row, RowOutcome.MIGRATE, reasons, version=latest, trigger_word=word, **common)


def _version_notes(stored: StoredVersion, latest: VersionRef) -> list[str]:
    if stored.kind is StoredVersionKind.TRAINER:
        return [f"the stored value {stored.raw!r} is the trainer's version, rejected; using the destination's "
                f"latest version {latest.id}"]
    if stored.kind is StoredVersionKind.MISSING:
        return [f"no stored version; using the destination's latest version {latest.id}"]
    if stored.kind is StoredVersionKind.MALFORMED:
        return [f"the stored value {stored.raw!r} is not a version id, ignored; using the destination's latest "
                f"version {latest.id}"]
    if stored.version_id and not latest.id.startswith(stored.version_id):
        return [f"the stored version {stored.version_id} is older than the destination's latest {latest.id}; "
                "using the latest"]
    if stored.kind is StoredVersionKind.DESTINATION_REF:
        return []
    return [f"the stored {stored.kind.value.replace('_', ' ')} {stored.raw!r} resolved to {latest.ref}"]


def _against_existing(candidate: RowPlan, existing: ExistingModel) -> RowPlan:
    """Never overwrite a model lorapin already manages, unless the row would write exactly it."""
    identical = (candidate.outcome is RowOutcome.MIGRATE and candidate.version is not None
                 and existing.destination == candidate.destination
                 and existing.current_version_id == candidate.version.id
                 and existing.trigger_word == candidate.trigger_word
                 and existing.current_trigger_word == candidate.trigger_word)
    if identical:
        return _replace(candidate, RowOutcome.UNCHANGED, ("lorapin already has exactly this model and version",))
    if candidate.destination is not None and existing.destination != candidate.destination:
        return _replace(candidate, RowOutcome.NEEDS_ATTENTION,
                        (f"lorapin already manages a different destination for this user ({existing.destination}); "
                         "not overwritten",))
    current = existing.current_version_id or "none"
    would_give = f"; the row would give {candidate.version.id}" if candidate.version else ""
    return _replace(candidate, RowOutcome.SKIPPED,
                    (f"lorapin already manages this model (current version {current}{would_give}); not overwritten",))


def _verdict(row: LegacyRow, outcome: RowOutcome, reasons: list[str], **fields: Any) -> RowPlan:
    return RowPlan(row.line, row.user_id, outcome, tuple(reasons),
                   created_at=normalise_timestamp(row.created_at), updated_at=normalise_timestamp(row.updated_at),
                   **fields)


def _replace(plan: RowPlan, outcome: RowOutcome, reasons: tuple[str, ...]) -> RowPlan:
    """The plan with another verdict; only a row that is written (or already is) keeps its version."""
    keeps_version = outcome in (RowOutcome.MIGRATE, RowOutcome.UNCHANGED)
    return replace(plan, outcome=outcome, reasons=reasons, version=plan.version if keeps_version else None,
                   trigger_word=plan.trigger_word if keeps_version else None)
