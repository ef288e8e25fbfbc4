"""Canceling a training the user started by mistake (`POST /trainings/{id}/cancel`).

On Replicate when it has reached Replicate, then recorded through the same completion path as a
webhook (`canceled`: the current version is kept, I3; the slot is freed; `TrainingFailed` is
published). A training still waiting for its submission is recorded canceled here, and the
submitter, finding it no longer `starting`, sends nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from lorapin.adapters.event_bus import EventPublisher
from lorapin.adapters.repository import Repository
from lorapin.adapters.tables import TrainingItem
from lorapin.domain.errors import TrainingBeingSubmitted, TrainingFinished, TrainingNotFound
from lorapin.domain.statuses import TrainingStatus
from lorapin.observability import count, logger
from lorapin.services.ports import Replicate
from lorapin.services.training_completion import TrainingCompletion
from lorapin.services.training_start import abandon_training

CANCELED_BY_USER = "Canceled by the user."


class TrainingCancel:
    def __init__(self, repository: Repository, replicate: Callable[[], Replicate], completion: TrainingCompletion,
                 publisher: EventPublisher) -> None:
        self._repository = repository
        self._replicate = replicate
        self._completion = completion
        self._publisher = publisher

    def cancel(self, user_id: str, training_id: str) -> TrainingItem:
        """The training as it ended (or, when Replicate has not stopped it yet, as it now stands)."""
        training = self._owned(user_id, training_id)
        if training.replicate_training_id is None and not self._cancel_before_submission(training):
            training = self._owned(user_id, training_id)  # the submitter got there first: cancel on Replicate
            if training.replicate_training_id is None:
                raise TrainingBeingSubmitted()
        if training.replicate_training_id is not None:
            replicate = self._replicate()
            replicate.cancel_training(str(training.replicate_training_id))
            stopped = replicate.get_training(str(training.replicate_training_id))
            if stopped.is_terminal:  # else its webhook, or the reconciler, records the end
                self._completion.apply(stopped, training_id_hint=training.training_id)
        count("TrainingsCanceled")
        logger.info("training cancel asked", extra={"user_id": user_id, "training_id": training_id})
        return self._owned(user_id, training_id, finished_ok=True)

    def _owned(self, user_id: str, training_id: str, *, finished_ok: bool = False) -> TrainingItem:
        training = self._repository.get_training(training_id)
        if training is None or training.user_id != user_id:  # I7: another user's looks absent
            raise TrainingNotFound()
        if not finished_ok and training.status not in TrainingStatus.in_flight():
            raise TrainingFinished()
        return training

    def _cancel_before_submission(self, training: TrainingItem) -> bool:
        """Record a training that never reached Replicate as canceled; False when a submission holds
        it (or it moved on meanwhile)."""
        return abandon_training(self._repository, self._publisher, training, CANCELED_BY_USER,
                                status=TrainingStatus.CANCELED) is not None
