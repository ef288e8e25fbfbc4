"""Apply a finished (or progressing) training to the stored state: the webhook's and the
reconciler's shared path. Decide (pure) → guarded write → event → free the training slot."""

from __future__ import annotations

from dataclasses import dataclass

from lorapin.adapters.event_bus import EventPublisher
from lorapin.adapters.outbox import Outbox
from lorapin.adapters.repository import GuardRejected, Repository
from lorapin.adapters.tables import ModelItem, TrainingItem
from lorapin.domain.clock import now_iso
from lorapin.domain.completion import (
    Action,
    CompletionDecision,
    ExpectedTraining,
    Outcome,
    StoredModel,
    StoredTraining,
    decide_completion,
)
from lorapin.domain.errors import NotYetRecorded
from lorapin.domain.events import ModelVersionActivated, TrainingFailed
from lorapin.domain.replicate_objects import ReplicateTraining
from lorapin.domain.statuses import ActivationReason, TrainingStatus
from lorapin.observability import count, logger

MAX_ATTEMPTS = 3  # a lost guard means someone else moved the state: re-read and decide again


class StateKeptChanging(RuntimeError):
    """Every attempt lost its guard: the state changed under each decision (a retry will decide again)."""


@dataclass(frozen=True, slots=True)
class CompletionResult:
    outcome: Outcome
    decision: CompletionDecision
    user_id: str | None = None
    training_id: str | None = None


def stored_training(item: TrainingItem) -> StoredTraining:
    return StoredTraining(training_id=item.training_id, replicate_training_id=item.replicate_training_id,
                          seq=int(item.seq), destination=item.destination, trainer_version=item.trainer_version,
                          status=item.status, version_id=item.version_id)


def stored_model(item: ModelItem) -> StoredModel:
    current = item.current_version.id if item.current_version else None
    return StoredModel(applied_seq=int(item.applied_seq or 0), current_version_id=current)


class TrainingCompletion:
    def __init__(self, repository: Repository, publisher: EventPublisher) -> None:
        self._repository = repository
        self.outbox = Outbox(publisher)

    def apply(self, training: ReplicateTraining, *, training_id_hint: str | None = None,
              user_hint: str | None = None, expected: ExpectedTraining | None = None,
              await_receipt: bool = False) -> CompletionResult:
        """`training_id_hint`, `user_hint` and `expected` come from our webhook URL (unsigned).
        With `expected`, a success is first activated without reading (`ExpectedTraining`); else,
        or when that write's conditions fail, the training and its model are read (in one request
        with both hints) and used only if the signed body agrees. `await_receipt`: an activation's
        event stays in the outbox until its consumer acknowledges it (the webhook's two-request
        path) instead of being cleared here after publishing."""
        if expected is not None:
            activated = self._activate_unread(training, expected, await_receipt=await_receipt)
            if activated is not None:
                return activated
        for _ in range(MAX_ATTEMPTS):
            record, model = self._find(training, training_id_hint, user_hint)
            decision = decide_completion(training, stored_training(record) if record else None,
                                         stored_model(model) if model else None)
            outcome = decision.outcome
            # UNKNOWN must stop here: the record found through an unsigned hint is not this training's.
            if record is None or model is None or decision.action is Action.UNKNOWN:
                return CompletionResult(Outcome.IGNORED_UNKNOWN, decision)
            if decision.action in (Action.REJECT, Action.REFUSE_CONFLICT):
                count("RejectedVersions")
                logger.error("training output rejected", extra={"replicate_training_id": training.id,
                                                                "training_id": record.training_id,
                                                                "user_id": record.user_id, "reason": decision.reason})
            try:
                self._act(decision, record, model, await_receipt=await_receipt)
            except GuardRejected:
                continue
            return CompletionResult(outcome, decision, record.user_id, record.training_id)
        raise StateKeptChanging(f"training {training.id}: state kept changing under {MAX_ATTEMPTS} attempts")

    def _activate_unread(self, training: ReplicateTraining, expected: ExpectedTraining, *,
                         await_receipt: bool) -> CompletionResult | None:
        """A success as the URL expects it, in one write and no read; None when the decision on
        the assumed state is not an activation, or the write finds the state is not that."""
        assumed = expected.assumed_state(training)
        trigger_word = (training.input or {}).get("trigger_word")
        if assumed is None or not isinstance(trigger_word, str):
            return None
        stored, model = assumed
        decision = decide_completion(training, stored, model)
        if decision.action is not Action.ACTIVATE:
            return None
        record = TrainingItem(stored.training_id, user_id=expected.user_id, seq=stored.seq,
                              replicate_training_id=stored.replicate_training_id, status=stored.status,
                              image_count=expected.image_count, trigger_word=trigger_word,
                              destination=stored.destination, trainer_version=stored.trainer_version)
        try:
            self._activate(decision, record, previous_version_id=expected.previous_version_id,
                           in_flight=record.training_id, await_receipt=await_receipt)
        except GuardRejected:
            count("WebhookStateRead")  # the URL was stale (or lied): decided again from a read
            return None
        return CompletionResult(decision.outcome, decision, record.user_id, record.training_id)

    def _find(self, training: ReplicateTraining, hint: str | None,
              user_hint: str | None) -> tuple[TrainingItem | None, ModelItem | None]:
        """Our record of `training` and its user's model. The query string is not signed: a hinted
        record counts only if it is the training the signed body names, for the hinted user."""
        record, model = (self._repository.get_training_and_model(hint, user_hint) if hint and user_hint
                         else (self._repository.get_training(hint) if hint else None, None))
        if record is None or (record.replicate_training_id and record.replicate_training_id != training.id):
            record, model = self._repository.find_training_by_replicate_id(training.id), None
        if (record is not None and record.replicate_training_id is None
                and record.status == TrainingStatus.STARTING):
            raise NotYetRecorded(f"Training {record.training_id} is still being created; deliver again.")
        if record is not None and (model is None or model.user_id != record.user_id):
            model = self._repository.get_model(record.user_id)
        return record, model

    def _act(self, decision: CompletionDecision, record: TrainingItem, model: ModelItem, *,
             await_receipt: bool) -> None:
        now = now_iso()
        if decision.action is Action.ACTIVATE:
            self._activate(decision, record, previous_version_id=model.current_version.id if model.current_version
                           else None, in_flight=model.in_flight_training_id, await_receipt=await_receipt)
            return
        if decision.action is Action.RECORD_STALE_SUCCESS:
            assert decision.version is not None
            self._repository.record_stale_success(record, decision.version, completed_at=now)
        elif decision.action in (Action.RECORD_FAILURE, Action.REJECT):
            failed = TrainingFailed(user_id=record.user_id, training_id=record.training_id,
                                    status=decision.status or TrainingStatus.FAILED, error=decision.error,
                                    current_version_id=model.current_version.id if model.current_version else None)
            outbox = self._repository.record_failure(record, failed, completed_at=now, error_code=decision.error_code)
            # Free the slot before publishing: if the bus is down the user can still train again.
            self._repository.settle_model_after_training(record.user_id, record.training_id)
            self.outbox.publish_leased(TrainingItem(record.training_id), outbox)
            return
        elif decision.action is Action.RECORD_PROGRESS:
            self._repository.record_progress(record, decision.status or TrainingStatus.PROCESSING)
            return
        elif decision.action is Action.REFUSE_CONFLICT:
            return  # the training keeps the version first recorded for it
        elif decision.action is Action.DUPLICATE and record.pending_event:
            # An earlier delivery committed the state but could not publish: finish its job (I5).
            self.publish_pending(record)
        self._repository.settle_model_after_training(record.user_id, record.training_id)

    def _activate(self, decision: CompletionDecision, record: TrainingItem, *, previous_version_id: str | None,
                  in_flight: str | None, await_receipt: bool) -> None:
        assert decision.version is not None
        event = ModelVersionActivated(
            user_id=record.user_id, destination=record.destination, version_id=decision.version.id,
            version_ref=decision.version.ref, trigger_word=record.trigger_word, training_id=record.training_id,
            seq=int(record.seq), previous_version_id=previous_version_id, reason=ActivationReason.TRAINING,
            activated_at=now_iso())
        outbox = self._repository.apply_activation(record, decision.version, event, in_flight=in_flight)
        # leased to us by that write: no need to read it back
        if await_receipt:
            self.outbox.publish_awaiting_receipt(TrainingItem(record.training_id), outbox)
        else:
            self.outbox.publish_leased(TrainingItem(record.training_id), outbox)

    def publish_pending(self, record: TrainingItem) -> bool:
        """Publish the event stored with the training's last state change, if nobody else is (I5)."""
        return self.outbox.publish_pending(TrainingItem(record.training_id))
