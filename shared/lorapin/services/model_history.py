"""A user's model, its versions and trainings (R10), and rollback."""

from __future__ import annotations

from lorapin.adapters.event_bus import EventPublisher, to_outbox
from lorapin.adapters.outbox import Outbox
from lorapin.adapters.repository import GuardRejected, Repository
from lorapin.adapters.tables import ModelItem, TrainingItem, VersionItem
from lorapin.domain.clock import now_iso
from lorapin.domain.errors import EventPublishFailed, ModelChanged, NoModel, TrainingNotFound, UnknownVersion
from lorapin.domain.events import ModelVersionActivated
from lorapin.domain.statuses import ActivationReason
from lorapin.observability import logger


class ModelHistory:
    def __init__(self, repository: Repository, publisher: EventPublisher) -> None:
        self._repository = repository
        self._outbox = Outbox(publisher)

    def model(self, user_id: str) -> tuple[ModelItem, list[VersionItem]]:
        model = self._repository.get_model(user_id)
        if model is None:
            raise NoModel()
        return model, self._repository.versions_of(user_id)

    def training(self, user_id: str, training_id: str) -> TrainingItem:
        training = self._repository.get_training(training_id)
        if training is None or training.user_id != user_id:  # I7: another user's looks absent
            raise TrainingNotFound()
        return training

    def rollback(self, user_id: str, version_id: str) -> None:
        """Pin an earlier version of the user's own destination; the next generation uses it.

        The high-water mark is untouched, so a late webhook cannot undo the rollback (I1), and
        a later successful training moves the model forward again.
        """
        model = self._repository.get_model(user_id)
        if model is None:
            raise NoModel()
        version = self._repository.get_version(user_id, version_id)
        if version is None or version.destination != model.destination:
            raise UnknownVersion()
        previous = model.current_version.id if model.current_version else None
        activated_at = now_iso()
        event = to_outbox(ModelVersionActivated(
            user_id=user_id, destination=version.destination, version_id=version.version_id, version_ref=version.ref,
            trigger_word=version.trigger_word, training_id=None, seq=int(version.seq),
            previous_version_id=previous, reason=ActivationReason.ROLLBACK, activated_at=activated_at))
        try:
            self._repository.pin_version(model, version, activated_at=activated_at, event=event)
        except GuardRejected as exc:
            raise ModelChanged() from exc
        try:  # leased to us by that write: no need to read it back
            self._outbox.publish_leased(ModelItem(user_id), event)
        except EventPublishFailed as exc:  # the rollback stands; the reconciler publishes the outbox
            logger.warning("rollback event left in the outbox", extra={"user_id": user_id, "error": str(exc)})
