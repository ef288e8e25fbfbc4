"""The completion decision: a finished training and what we have stored → what to do.

One pure function, used by the training webhook and by the reconciler alike (REQUIREMENTS §2), so that a
lost webhook recovered by polling is handled exactly like a delivered one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from lorapin.domain.errors import InvalidVersionRef
from lorapin.domain.replicate_objects import ReplicateTraining
from lorapin.domain.statuses import TrainingStatus
from lorapin.domain.versions import VersionRef, is_version_id, parse_training_output_version


class Outcome(StrEnum):
    """What a webhook delivery answers (REQUIREMENTS §4)."""

    ACTIVATED = "activated"
    RECORDED = "recorded"
    IGNORED_STALE = "ignored_stale"
    DUPLICATE = "duplicate"
    IGNORED_UNKNOWN = "ignored_unknown"
    REJECTED = "rejected"


INVALID_OUTPUT_VERSION = "INVALID_OUTPUT_VERSION"
"""The error code of a training ended because its `output.version` is unusable (R2)."""


class Action(StrEnum):
    ACTIVATE = "activate"
    RECORD_STALE_SUCCESS = "record_stale_success"
    RECORD_FAILURE = "record_failure"
    RECORD_PROGRESS = "record_progress"
    DUPLICATE = "duplicate"
    UNKNOWN = "unknown"
    REJECT = "reject"  # an unusable output.version: the training ends failed, nothing is stored as a version
    REFUSE_CONFLICT = "refuse_conflict"  # a second, different version for a training already recorded


_OUTCOME_OF_ACTION = {
    Action.ACTIVATE: Outcome.ACTIVATED,
    Action.RECORD_STALE_SUCCESS: Outcome.IGNORED_STALE,
    Action.RECORD_FAILURE: Outcome.RECORDED,
    Action.RECORD_PROGRESS: Outcome.RECORDED,
    Action.DUPLICATE: Outcome.DUPLICATE,
    Action.UNKNOWN: Outcome.IGNORED_UNKNOWN,
    Action.REJECT: Outcome.REJECTED,
    Action.REFUSE_CONFLICT: Outcome.REJECTED,
}


@dataclass(frozen=True, slots=True)
class StoredTraining:
    """What the decision needs to know about our own record of a training."""

    training_id: str
    replicate_training_id: str | None
    seq: int
    destination: str
    trainer_version: str | None
    status: str
    version_id: str | None = None


@dataclass(frozen=True, slots=True)
class StoredModel:
    applied_seq: int
    current_version_id: str | None


@dataclass(frozen=True, slots=True)
class CompletionDecision:
    action: Action
    reason: str
    version: VersionRef | None = None
    status: str | None = None
    error: str | None = None
    error_code: str | None = None

    @property
    def outcome(self) -> Outcome:
        """What the webhook answers (always 200: a genuine delivery is never asked again)."""
        return _OUTCOME_OF_ACTION[self.action]


FINISHED = (TrainingStatus.SUCCEEDED, *TrainingStatus.failures())
COUNT_PATTERN = re.compile(r"[0-9]{1,9}")  # a URL's seq or photo count (ASCII digits: int() takes more)


def decide_completion(
    training: ReplicateTraining, stored: StoredTraining | None, model: StoredModel | None
) -> CompletionDecision:
    """Decide what a training object means for the stored state. Never performs I/O."""
    if stored is None or model is None:
        return CompletionDecision(Action.UNKNOWN, "no training of ours has this id")
    if stored.replicate_training_id != training.id:
        return CompletionDecision(Action.UNKNOWN, "the training id does not match our record")

    status = training.normalised_status
    if not training.is_terminal:
        if stored.status in FINISHED:
            return CompletionDecision(Action.DUPLICATE, "progress report after the training finished")
        return CompletionDecision(Action.RECORD_PROGRESS, f"training is {status}", status=status)

    if status == TrainingStatus.SUCCEEDED:
        return _decide_success(training, stored, model)
    if stored.status in FINISHED:
        return CompletionDecision(Action.DUPLICATE, f"training already recorded as {stored.status}",
                                  status=stored.status)
    return CompletionDecision(Action.RECORD_FAILURE, f"training {training.status}", status=status,
                              error=training.error_message)


def _decide_success(
    training: ReplicateTraining, stored: StoredTraining, model: StoredModel
) -> CompletionDecision:
    try:
        version = parse_training_output_version(
            training.output, destination=stored.destination, trainer_version_id=stored.trainer_version
        )
    except InvalidVersionRef as exc:
        if stored.status in FINISHED:
            return CompletionDecision(Action.DUPLICATE, f"training already recorded as {stored.status}",
                                      status=stored.status)
        return CompletionDecision(Action.REJECT, f"unusable output.version: {exc}", status=TrainingStatus.FAILED,
                                  error=f"Replicate reported an unusable version ({exc}); nothing was activated.",
                                  error_code=INVALID_OUTPUT_VERSION)
    if stored.status == TrainingStatus.SUCCEEDED:
        if stored.version_id == version.id:
            return CompletionDecision(Action.DUPLICATE, "this version was already recorded", version=version,
                                      status=TrainingStatus.SUCCEEDED)
        return CompletionDecision(Action.REFUSE_CONFLICT, "a different version was already recorded for this training")
    if stored.status in TrainingStatus.failures() or stored.seq <= model.applied_seq:
        return CompletionDecision(Action.RECORD_STALE_SUCCESS, "a newer training (or a rollback) already applies",
                                  version=version, status=TrainingStatus.SUCCEEDED)
    return CompletionDecision(Action.ACTIVATE, "newest successful training", version=version,
                              status=TrainingStatus.SUCCEEDED)


@dataclass(frozen=True, slots=True)
class ExpectedTraining:
    """What our webhook URL says about the training it will report, written when the training was
    submitted: ours, its user's, the `seq`-th, of `image_count` photos, replacing
    `previous_version_id`. The query string is not signed, so none of it is believed: the
    activation is written on condition that each value is what is stored (and that the training
    is still in flight), and a delivery whose URL lies, or whose state moved on meanwhile, is
    decided again from a read. It saves the read on the common path (REQUIREMENTS §10)."""

    training_id: str
    user_id: str
    seq: int
    image_count: int
    previous_version_id: str | None = None

    def to_query(self) -> dict[str, str]:
        query = {"training_id": self.training_id, "user_id": self.user_id, "seq": str(self.seq),
                 "image_count": str(self.image_count)}
        return query | ({"previous_version_id": self.previous_version_id} if self.previous_version_id else {})

    @classmethod
    def from_query(cls, training_id: str | None, user_id: str | None, query: dict[str, str]) -> ExpectedTraining | None:
        """`training_id` and `user_id` as the caller vetted them; None unless every value is well formed."""
        seq, image_count = query.get("seq", ""), query.get("image_count", "")
        previous = query.get("previous_version_id") or None
        if not (training_id and user_id and COUNT_PATTERN.fullmatch(seq) and COUNT_PATTERN.fullmatch(image_count)):
            return None
        if previous is not None and not is_version_id(previous):
            return None
        return cls(training_id, user_id, int(seq), int(image_count), previous)

    def assumed_state(self, training: ReplicateTraining) -> tuple[StoredTraining, StoredModel] | None:
        """The stored state the activation's conditions will require, as the decision sees it: the
        training in flight under Replicate's id, its trainer the one the signed body names, its
        destination the model of the version it reports. None when the body cannot say."""
        output = training.output.get("version") if isinstance(training.output, dict) else None
        try:
            reported = VersionRef.parse(output)  # owner/name:id (no destination to default to)
        except InvalidVersionRef:
            return None
        if not training.version:
            return None
        stored = StoredTraining(training_id=self.training_id, replicate_training_id=training.id, seq=self.seq,
                                destination=str(reported.model), trainer_version=training.version,
                                status=TrainingStatus.PROCESSING)
        return stored, StoredModel(applied_seq=self.seq - 1, current_version_id=self.previous_version_id)
