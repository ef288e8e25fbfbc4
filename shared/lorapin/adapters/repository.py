"""Data access for models, trainings, versions and generations (PynamoDB).

Every write that moves the current version carries its guard as a DynamoDB condition (I1), so
two deliveries racing each other cannot both win: the loser gets `GuardRejected` and the caller
re-reads and decides again (`lorapin.adapters.guards`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pynamodb.connection import Connection
from pynamodb.exceptions import DoesNotExist

from lorapin.adapters.event_bus import to_outbox
from lorapin.adapters.guards import GuardRejected, guarded, guarded_transaction, write_if
from lorapin.adapters.outbox import store_actions
from lorapin.adapters.settings import Settings
from lorapin.adapters.tables import (
    ACTIVE_SHARD,
    GenerationItem,
    ModelItem,
    TrainingItem,
    VersionInfo,
    VersionItem,
    bind_tables,
)
from lorapin.domain.clock import now_iso
from lorapin.domain.events import ModelVersionActivated, TrainingFailed
from lorapin.domain.statuses import ActivationReason, GenerationStatus, ModelStatus, TrainingStatus
from lorapin.domain.versions import VersionRef

__all__ = ["GuardRejected", "Repository", "TrainingStarts"]


class Repository:
    def __init__(self, settings: Settings) -> None:
        bind_tables(settings)
        self._connection = Connection(region=settings.aws_region, host=settings.aws_endpoint_url)

    # --- reads -------------------------------------------------------------------------------
    @staticmethod
    def get_model(user_id: str) -> ModelItem | None:
        try:
            return ModelItem.get(user_id, consistent_read=True)
        except DoesNotExist:
            return None

    @staticmethod
    def get_training(training_id: str) -> TrainingItem | None:
        try:
            return TrainingItem.get(training_id, consistent_read=True)
        except DoesNotExist:
            return None

    @staticmethod
    def find_training_by_replicate_id(replicate_training_id: str) -> TrainingItem | None:
        for item in TrainingItem.by_replicate_id.query(replicate_training_id, limit=1):
            return Repository.get_training(item.training_id)  # the index is eventually consistent
        return None

    @staticmethod
    def trainings_of(user_id: str, *, limit: int = 50) -> list[TrainingItem]:
        return list(TrainingItem.by_user.query(user_id, scan_index_forward=False, limit=limit))

    @staticmethod
    def versions_of(user_id: str) -> list[VersionItem]:
        """Every version of the user's destination, newest first."""
        versions = list(VersionItem.query(user_id, consistent_read=True))
        return sorted(versions, key=lambda v: (v.seq, v.created_at), reverse=True)

    @staticmethod
    def get_version(user_id: str, version_id: str) -> VersionItem | None:
        try:
            return VersionItem.get(user_id, version_id, consistent_read=True)
        except DoesNotExist:
            return None

    @staticmethod
    def get_generation(generation_id: str) -> GenerationItem | None:
        try:
            return GenerationItem.get(generation_id, consistent_read=True)
        except DoesNotExist:
            return None

    @staticmethod
    def generations_of(user_id: str, *, limit: int = 50) -> list[GenerationItem]:
        return list(GenerationItem.by_user.query(user_id, scan_index_forward=False, limit=limit))

    @staticmethod
    def waiting_generations(user_id: str) -> Iterator[GenerationItem]:
        yield from GenerationItem.waiting.query(user_id)

    @staticmethod
    def active_trainings(created_before: str, *, limit: int) -> Iterator[TrainingItem]:
        """Trainings in flight or with an event still to publish, oldest first (the reconciler's work)."""
        yield from TrainingItem.active.query(ACTIVE_SHARD, TrainingItem.created_at < created_before, limit=limit)

    @staticmethod
    def active_generations(created_before: str, *, limit: int) -> Iterator[GenerationItem]:
        yield from GenerationItem.active.query(ACTIVE_SHARD, GenerationItem.created_at < created_before,
                                               limit=limit)

    @staticmethod
    def models_updated_since(since: str, *, limit: int) -> Iterator[ModelItem]:
        from lorapin.adapters.tables import DRIFT_SHARD

        yield from ModelItem.recent.query(DRIFT_SHARD, ModelItem.updated_at > since, limit=limit)

    @staticmethod
    def all_models() -> Iterator[ModelItem]:
        """Every model (operator tools: an audit reads them all)."""
        yield from ModelItem.scan()

    # --- training completion (the webhook and the reconciler) ------------------------------------
    def apply_activation(self, training: TrainingItem, version: VersionRef, event: ModelVersionActivated, *,
                         in_flight: str | None) -> dict[str, Any]:
        """Make `version` current, guarded by the training's seq (I1); record it in the history.

        Model, training and version change in one transaction, and the training keeps
        `pending_event` until the event is published (the outbox half of I5). Returns that outbox.
        The user's training slot is released in the same write when this training holds it;
        `in_flight` is the slot as read, and the write is refused if it changed meanwhile.
        """
        activated_at = event.activated_at
        outbox = to_outbox(event)
        current = VersionInfo(id=version.id, ref=version.ref, trigger_word=training.trigger_word,
                              training_id=training.training_id, seq=training.seq, activated_at=activated_at,
                              reason=ActivationReason.TRAINING)
        releases_slot = in_flight == training.training_id
        with guarded_transaction(self._connection) as tx:
            tx.update(
                ModelItem(training.user_id),
                actions=[
                    ModelItem.current_version.set(current),
                    ModelItem.applied_seq.set(training.seq),
                    ModelItem.status.set(ModelStatus.READY),
                    ModelItem.updated_at.set(activated_at),
                    *([ModelItem.in_flight_training_id.remove()] if releases_slot else []),
                ],
                condition=(ModelItem.applied_seq < training.seq)
                & (ModelItem.destination == training.destination)
                & (ModelItem.in_flight_training_id == in_flight if in_flight
                   else ModelItem.in_flight_training_id.does_not_exist()),
            )
            tx.update(TrainingItem(training.training_id),
                      actions=self._success_actions(version, activated_at, outbox),
                      condition=TrainingItem.status.is_in(*TrainingStatus.in_flight()))
            tx.save(self._version_item(training, version, activated_at),
                    condition=VersionItem.version_id.does_not_exist())
        return outbox

    def record_stale_success(self, training: TrainingItem, version: VersionRef, *, completed_at: str) -> None:
        """A late success: keep the version in the history, leave the current version alone."""
        with guarded_transaction(self._connection) as tx:
            tx.update(TrainingItem(training.training_id),
                      actions=self._success_actions(version, completed_at, None),
                      condition=TrainingItem.status.is_in(*TrainingStatus.in_flight(), *TrainingStatus.failures()))
            tx.save(self._version_item(training, version, completed_at),
                    condition=VersionItem.version_id.does_not_exist())

    @staticmethod
    def _success_actions(version: VersionRef, completed_at: str, pending_event: dict[str, Any] | None) -> list[Any]:
        actions = [
            TrainingItem.status.set(TrainingStatus.SUCCEEDED),
            TrainingItem.version_id.set(version.id),
            TrainingItem.completed_at.set(completed_at),
            TrainingItem.error.remove(),
        ]
        if pending_event:  # stays on the `active` index until published, so the reconciler sees it
            actions += store_actions(pending_event, TrainingItem)
        else:
            actions += [TrainingItem.pending_event.remove(), TrainingItem.active_shard.remove()]
        return actions

    @staticmethod
    def _version_item(training: TrainingItem, version: VersionRef, created_at: str) -> VersionItem:
        return VersionItem(training.user_id, version.id, ref=version.ref, destination=training.destination,
                           trigger_word=training.trigger_word, training_id=training.training_id, seq=training.seq,
                           image_count=training.image_count, created_at=created_at)

    @staticmethod
    def record_failure(training: TrainingItem, event: TrainingFailed, *, completed_at: str) -> dict[str, Any]:
        """I3: a failed or canceled training is recorded; the model's current version is not touched.
        Returns the outbox, leased to the caller for publishing."""
        outbox = to_outbox(event)
        guarded(lambda: training.update(
            actions=[
                TrainingItem.status.set(event.status),
                TrainingItem.error.set(event.error or event.status),
                TrainingItem.completed_at.set(completed_at),
                *store_actions(outbox, TrainingItem),
            ],
            condition=TrainingItem.status.is_in(*TrainingStatus.in_flight()),
        ))
        return outbox

    @staticmethod
    def record_progress(training: TrainingItem, status: str) -> None:
        write_if(lambda: training.update(actions=[TrainingItem.status.set(status)],
                                         condition=TrainingItem.status.is_in(*TrainingStatus.in_flight())))

    @staticmethod
    def settle_model_after_training(user_id: str, training_id: str) -> None:
        """Free the user's training slot (I2) if this training holds it; fix the status of a model
        whose only trainings failed. Idempotent: a no-op when another training holds the slot."""
        freed = write_if(lambda: ModelItem(user_id).update(
            actions=[ModelItem.in_flight_training_id.remove(), ModelItem.updated_at.set(now_iso())],
            condition=ModelItem.in_flight_training_id == training_id,
        ))
        if freed:
            write_if(lambda: ModelItem(user_id).update(
                actions=[ModelItem.status.set(ModelStatus.FAILED)],
                condition=ModelItem.current_version.does_not_exist() & ModelItem.in_flight_training_id.does_not_exist(),
            ))

    # --- rollback --------------------------------------------------------------------------------
    @staticmethod
    def pin_version(model: ModelItem, version: VersionItem, *, activated_at: str, event: dict[str, Any]) -> None:
        """Rollback: pin an earlier version of the same destination, with its event in the outbox.

        The high-water mark stays (I1). Conditioned on the model being as it was read, so a
        training activated meanwhile is not silently overwritten (GuardRejected)."""
        current = VersionInfo(id=version.version_id, ref=version.ref, trigger_word=version.trigger_word,
                              training_id=version.training_id, seq=version.seq, activated_at=activated_at,
                              reason=ActivationReason.ROLLBACK)
        guarded(lambda: model.update(
            actions=[ModelItem.current_version.set(current), ModelItem.status.set(ModelStatus.READY),
                     *store_actions(event, ModelItem), ModelItem.updated_at.set(activated_at)],
            condition=(ModelItem.destination == version.destination) & (ModelItem.updated_at == model.updated_at),
        ))

    def create_imported_model(self, model: ModelItem, version: VersionItem) -> bool:
        """Backfill: create a legacy model with its current version in one transaction that only
        creates. False when lorapin already has either (nothing is overwritten)."""
        try:
            with guarded_transaction(self._connection) as tx:
                tx.save(model, condition=ModelItem.user_id.does_not_exist())
                tx.save(version, condition=VersionItem.version_id.does_not_exist())
        except GuardRejected:
            return False
        return True

    # --- generations -----------------------------------------------------------------------------
    @staticmethod
    def put_generation(generation: GenerationItem) -> None:
        guarded(lambda: generation.save(condition=GenerationItem.generation_id.does_not_exist()))

    @staticmethod
    def claim_waiting_generation(generation: GenerationItem, *, version_ref: str, prompt: str) -> bool:
        """Move a waiting generation to `starting` with the version that releases it; False if
        another consumer (a duplicate event) got there first."""
        return write_if(lambda: generation.update(
            actions=[
                GenerationItem.status.set(GenerationStatus.STARTING),
                GenerationItem.model_version_ref.set(version_ref),
                GenerationItem.prompt.set(prompt),
                GenerationItem.waiting_user_id.remove(),
                GenerationItem.active_shard.set(ACTIVE_SHARD),
            ],
            condition=GenerationItem.status == GenerationStatus.WAITING_FOR_MODEL,
        ))

    @staticmethod
    def return_to_waiting(generation: GenerationItem) -> None:
        """Put a claimed generation back in the queue: its prediction could not be created yet."""
        generation.update(actions=[
            GenerationItem.status.set(GenerationStatus.WAITING_FOR_MODEL),
            GenerationItem.model_version_ref.remove(),
            GenerationItem.waiting_user_id.set(generation.user_id),
        ], condition=GenerationItem.status == GenerationStatus.STARTING)

    @staticmethod
    def attach_prediction(generation: GenerationItem, prediction_id: str, status: str) -> None:
        generation.update(actions=[GenerationItem.replicate_prediction_id.set(prediction_id),
                                   GenerationItem.status.set(status)])

    @staticmethod
    def fail_generation(generation: GenerationItem, *, error: str, completed_at: str) -> None:
        generation.update(actions=[
            GenerationItem.status.set(GenerationStatus.FAILED), GenerationItem.error.set(error),
            GenerationItem.completed_at.set(completed_at), GenerationItem.active_shard.remove(),
            GenerationItem.waiting_user_id.remove(),
        ])

    @staticmethod
    def complete_generation(generation: GenerationItem, *, status: str, output_keys: list[str],
                            error: str | None, completed_at: str) -> bool:
        """Record a prediction's outcome once; False when it was already recorded (a duplicate)."""
        actions: list[Any] = [
            GenerationItem.status.set(status),
            GenerationItem.output_keys.set(output_keys),  # type: ignore[arg-type]
            GenerationItem.completed_at.set(completed_at),
            GenerationItem.active_shard.remove(),
        ]
        actions.append(GenerationItem.error.set(error) if error else GenerationItem.error.remove())
        return write_if(lambda: generation.update(
            actions=actions, condition=GenerationItem.status.is_in(*GenerationStatus.in_flight())))


class TrainingStarts:
    """The writes around starting a training (the only path that starts one, first or re-)."""

    def __init__(self, repository: Repository) -> None:
        self._connection = repository._connection

    def begin(self, model: ModelItem | None, training: TrainingItem, *, new_model: ModelItem | None = None) -> None:
        """Claim the user's training slot and record the training, in one transaction (I2).

        `training.seq` must be `model.last_seq + 1` (or 1 for a first training); the condition on
        `last_seq` turns a concurrent start into a clean conflict instead of two trainings.
        """
        now = training.created_at
        training.active_shard = ACTIVE_SHARD  # visible to the reconciler from the first moment
        with guarded_transaction(self._connection) as tx:
            if model is None:
                assert new_model is not None
                new_model.last_seq = training.seq
                new_model.in_flight_training_id = training.training_id
                new_model.last_photo_manifest = training.photo_manifest
                tx.save(new_model, condition=ModelItem.user_id.does_not_exist())
            else:
                actions: list[Any] = [
                    ModelItem.last_seq.set(training.seq),
                    ModelItem.in_flight_training_id.set(training.training_id),
                    ModelItem.last_photo_manifest.set(training.photo_manifest),
                    ModelItem.updated_at.set(now),
                ]
                if model.current_version is None:
                    actions.append(ModelItem.status.set(ModelStatus.TRAINING))
                tx.update(model, actions=actions,
                          condition=ModelItem.in_flight_training_id.does_not_exist()
                          & (ModelItem.last_seq == int(model.last_seq or 0))
                          & (ModelItem.trigger_word == training.trigger_word)
                          & (ModelItem.destination == training.destination))
            tx.save(training, condition=TrainingItem.training_id.does_not_exist())

    @staticmethod
    def attach_replicate_training(training: TrainingItem, replicate_training_id: str, status: str) -> None:
        in_flight = status if status in TrainingStatus.in_flight() else TrainingStatus.STARTING
        training.update(actions=[
            TrainingItem.replicate_training_id.set(replicate_training_id),
            TrainingItem.status.set(in_flight),
            TrainingItem.active_shard.set(ACTIVE_SHARD),
        ], condition=TrainingItem.replicate_training_id.does_not_exist())

    @staticmethod
    def abandon(training: TrainingItem, *, error: str, previous_manifest: Any = None,
                keep_manifest: bool = False) -> None:
        """The start did not reach Replicate: mark the training failed and free the slot, so the
        user can try again. Each write is conditional, so running it twice is harmless."""
        write_if(lambda: TrainingItem(training.training_id).update(actions=[
            TrainingItem.status.set(TrainingStatus.FAILED), TrainingItem.error.set(error),
            TrainingItem.completed_at.set(now_iso()), TrainingItem.active_shard.remove(),
        ], condition=TrainingItem.replicate_training_id.does_not_exist()))
        actions: list[Any] = [ModelItem.in_flight_training_id.remove(), ModelItem.updated_at.set(now_iso())]
        if not keep_manifest:
            actions.append(ModelItem.last_photo_manifest.set(previous_manifest))
        write_if(lambda: ModelItem(training.user_id).update(
            actions=actions, condition=ModelItem.in_flight_training_id == training.training_id))
        Repository.settle_model_after_training(training.user_id, training.training_id)
