"""Data access for models, trainings, versions, generations and the reconciler's state (PynamoDB).

Every write that moves the current version carries its guard as a DynamoDB condition (I1), so
two deliveries racing each other cannot both win: the loser gets `GuardRejected` and the caller
re-reads and decides again (`lorapin.adapters.guards`). What the reconciler must look at carries
`due_shard`/`due_at` (`lorapin.domain.schedule`); a write that ends the work takes them off.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from pynamodb.exceptions import DoesNotExist
from pynamodb.transactions import TransactWrite

from lorapin.adapters.event_bus import to_outbox
from lorapin.adapters.guards import GuardRejected, condition_failed_at, guarded, guarded_transaction, write_if
from lorapin.adapters.outbox import store_actions
from lorapin.adapters.settings import Settings
from lorapin.adapters.tables import (
    DRIFT_SHARD,
    GENERATION_SHARD,
    MODEL_SHARD,
    TRAINING_SHARD,
    GenerationItem,
    ModelItem,
    PhotoSetItem,
    StateItem,
    TrainingItem,
    VersionInfo,
    VersionItem,
    bind_tables,
    connection,
)
from lorapin.domain.clock import iso, now_iso, parse_iso, processing_time, utc_now
from lorapin.domain.events import ModelVersionActivated, TrainingFailed
from lorapin.domain.schedule import PREDICTION_FIRST_CHECK, shard_of
from lorapin.domain.statuses import ActivationReason, GenerationStatus, ModelStatus, TrainingStatus
from lorapin.domain.versions import VersionRef

T = TypeVar("T")

__all__ = ["GuardRejected", "Repository", "TrainingStarts"]

RECONCILER_STATE = "reconciler"


class Repository:
    def __init__(self, settings: Settings) -> None:
        bind_tables(settings)
        self._connection = connection(settings.aws_region, settings.aws_endpoint_url)  # the tables' own
        self.shards = settings.in_flight_shards

    def shard(self, prefix: str, item_id: str) -> str:
        """The partition key an item's schedule entry lives under, e.g. `t7` (docs/CAPACITY.md)."""
        return f"{prefix}{shard_of(item_id, self.shards)}"

    def shard_keys(self, prefix: str) -> list[str]:
        return [f"{prefix}{n}" for n in range(self.shards)]

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

    def get_training_and_model(self, training_id: str, user_id: str) -> tuple[TrainingItem | None, ModelItem | None]:
        """A training and its user's model in one request (TransactGetItems: strongly consistent,
        as of one moment): the webhook's lookup when its URL names both."""
        from pynamodb.transactions import TransactGet

        with TransactGet(connection=self._connection) as tx:
            training, model = tx.get(TrainingItem, training_id), tx.get(ModelItem, user_id)
        return _resolved(training), _resolved(model)

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
    def trainings_page(user_id: str, limit: int, start: dict[str, Any] | None) -> Page[TrainingItem]:
        """A page of the user's trainings, newest first (by seq)."""
        return _page(TrainingItem.by_user.query(user_id, scan_index_forward=False, limit=limit,
                                                last_evaluated_key=start), limit)

    @staticmethod
    def generations_page(user_id: str, limit: int, start: dict[str, Any] | None) -> Page[GenerationItem]:
        """A page of the user's generations, newest first."""
        return _page(GenerationItem.by_user.query(user_id, scan_index_forward=False, limit=limit,
                                                  last_evaluated_key=start), limit)

    @staticmethod
    def versions_page(user_id: str, limit: int, start: dict[str, Any] | None) -> Page[VersionItem]:
        """A page of the user's versions, newest first (by the seq of the training that made them)."""
        return _page(VersionItem.by_seq.query(user_id, scan_index_forward=False, limit=limit,
                                              last_evaluated_key=start), limit)

    @staticmethod
    def everything_of(user_id: str) -> UserRows:
        """Every row lorapin keeps for the user (account deletion)."""
        from lorapin.adapters.tables import PhotoItem

        return UserRows(
            trainings=list(TrainingItem.by_user.query(user_id)),
            generations=list(GenerationItem.by_user.query(user_id)),
            versions=list(VersionItem.query(user_id, consistent_read=True)),
            photos=list(PhotoItem.query(user_id, consistent_read=True)),
            photo_sets=list(PhotoSetItem.query(user_id, consistent_read=True)),
        )

    @staticmethod
    def delete_rows(rows: UserRows) -> None:
        """Delete the rows, table by table (BatchWriteItem, 25 a request)."""
        for items in (rows.trainings, rows.generations, rows.versions, rows.photos, rows.photo_sets):
            if items:
                with type(items[0]).batch_write() as batch:
                    for item in items:
                        batch.delete(item)

    @staticmethod
    def delete_model(user_id: str) -> None:
        ModelItem(user_id).delete()

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
    def all_models() -> Iterator[ModelItem]:
        """Every model (operator tools: an audit reads them all)."""
        yield from ModelItem.scan()

    # --- the reconciler's schedule ---------------------------------------------------------------
    @staticmethod
    def due_page(kind: type[TrainingItem] | type[GenerationItem] | type[ModelItem], shard: str, now: str, *,
                 limit: int, start: dict[str, Any] | None = None) -> tuple[list[Any], dict[str, Any] | None]:
        """One page of the items of a shard due by `now`, most overdue first, and where the next
        page starts (None: there is none)."""
        pages = kind.due.query(shard, kind.due_at <= now, limit=limit, last_evaluated_key=start)
        items = list(pages)
        return items, pages.last_evaluated_key

    @staticmethod
    def least_recently_checked_models(shard: str, *, limit: int) -> list[ModelItem]:
        return list(ModelItem.drift.query(shard, limit=limit))

    @staticmethod
    def reschedule(item: TrainingItem | GenerationItem, due_at: datetime, interval: timedelta | None) -> bool:
        """Look at `item` again at `due_at`, if it is still on the schedule (its webhook may have
        taken it off meanwhile: then nothing is written)."""
        cls = type(item)
        actions: list[Any] = [cls.due_at.set(iso(due_at))]
        actions.append(cls.check_interval.set(interval.total_seconds()) if interval else cls.check_interval.remove())
        return write_if(lambda: item.update(actions=actions, condition=cls.due_shard.exists()))

    @staticmethod
    def mark_drift_checked(model: ModelItem, at: str) -> None:
        write_if(lambda: model.update(actions=[ModelItem.drift_checked_at.set(at)],
                                      condition=ModelItem.user_id.exists()))

    @staticmethod
    def reconciler_state() -> StateItem:
        try:
            return StateItem.get(RECONCILER_STATE, consistent_read=True)
        except DoesNotExist:
            return StateItem(RECONCILER_STATE, next_shard=0, durations={})

    @staticmethod
    def save_reconciler_state(state: StateItem) -> None:
        state.updated_at = now_iso()
        state.save()

    # --- training completion (the webhook and the reconciler) ------------------------------------
    def apply_activation(self, training: TrainingItem, version: VersionRef, event: ModelVersionActivated, *,
                         in_flight: str | None) -> dict[str, Any]:
        """Make `version` current, guarded by the training's seq (I1); record it in the history.

        Model, training and version change in one transaction, and the training keeps
        `pending_event` until the event is published (the outbox half of I5). Returns that outbox.
        The user's training slot is released in the same write when this training holds it;
        `in_flight` is the slot as read, and the write is refused if it changed meanwhile, as it is
        unless the model's current version is the one the event says it replaces and the training
        is stored as `training` (which may have been read, or built from a webhook's URL and body:
        `ExpectedTraining`).
        """
        activated_at = event.activated_at
        outbox = to_outbox(event)
        current = VersionInfo(id=version.id, ref=version.ref, trigger_word=training.trigger_word,
                              training_id=training.training_id, seq=training.seq, activated_at=activated_at,
                              reason=ActivationReason.TRAINING)
        releases_slot = in_flight == training.training_id
        model_condition = ((ModelItem.applied_seq < training.seq) & (ModelItem.destination == training.destination)
                           & (ModelItem.in_flight_training_id == in_flight if in_flight
                              else ModelItem.in_flight_training_id.does_not_exist())
                           & _current_version_is(event.previous_version_id))
        training_condition = TrainingItem.status.is_in(*TrainingStatus.in_flight()) & _stored_as(training)
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
                condition=model_condition,
            )
            tx.update(TrainingItem(training.training_id),
                      actions=self._success_actions(training, version, activated_at, outbox),
                      condition=training_condition)
            tx.save(self._version_item(training, version, activated_at),
                    condition=VersionItem.version_id.does_not_exist())
        return outbox

    def record_stale_success(self, training: TrainingItem, version: VersionRef, *, completed_at: str) -> None:
        """A late success: keep the version in the history, leave the current version alone."""
        with guarded_transaction(self._connection) as tx:
            tx.update(TrainingItem(training.training_id),
                      actions=self._success_actions(training, version, completed_at, None),
                      condition=TrainingItem.status.is_in(*TrainingStatus.in_flight(), *TrainingStatus.failures()))
            tx.save(self._version_item(training, version, completed_at),
                    condition=VersionItem.version_id.does_not_exist())

    def _success_actions(self, training: TrainingItem, version: VersionRef, completed_at: str,
                         pending_event: dict[str, Any] | None) -> list[Any]:
        actions = [
            TrainingItem.status.set(TrainingStatus.SUCCEEDED),
            TrainingItem.version_id.set(version.id),
            TrainingItem.completed_at.set(completed_at),
            TrainingItem.error.remove(),
            TrainingItem.error_code.remove(),
            TrainingItem.check_interval.remove(),
        ]
        if pending_event:  # stays on the schedule until published, so the reconciler sees it
            actions += store_actions(pending_event, TrainingItem, self.shard(TRAINING_SHARD, training.training_id))
        else:
            actions += [TrainingItem.pending_event.remove(), TrainingItem.due_shard.remove(),
                        TrainingItem.due_at.remove()]
        return actions

    @staticmethod
    def _version_item(training: TrainingItem, version: VersionRef, created_at: str) -> VersionItem:
        return VersionItem(training.user_id, version.id, ref=version.ref, destination=training.destination,
                           trigger_word=training.trigger_word, training_id=training.training_id, seq=training.seq,
                           image_count=training.image_count, created_at=created_at)

    def record_failure(self, training: TrainingItem, event: TrainingFailed, *, completed_at: str,
                       error_code: str | None = None) -> dict[str, Any]:
        """I3: a failed, canceled or rejected training is recorded; the model's current version is
        not touched. Returns the outbox (`TrainingFailed`), leased to the caller for publishing."""
        outbox = to_outbox(event)
        guarded(lambda: training.update(
            actions=[
                TrainingItem.status.set(event.status),
                TrainingItem.error.set(event.error or event.status),
                TrainingItem.error_code.set(error_code) if error_code else TrainingItem.error_code.remove(),
                TrainingItem.completed_at.set(completed_at),
                TrainingItem.check_interval.remove(),
                *store_actions(outbox, TrainingItem, self.shard(TRAINING_SHARD, training.training_id)),
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
    def pin_version(self, model: ModelItem, version: VersionItem, *, activated_at: str, event: dict[str, Any]) -> None:
        """Rollback: pin an earlier version of the same destination, with its event in the outbox.

        The high-water mark stays (I1). Conditioned on the model being as it was read, so a
        training activated meanwhile is not silently overwritten (GuardRejected)."""
        current = VersionInfo(id=version.version_id, ref=version.ref, trigger_word=version.trigger_word,
                              training_id=version.training_id, seq=version.seq, activated_at=activated_at,
                              reason=ActivationReason.ROLLBACK)
        guarded(lambda: model.update(
            actions=[ModelItem.current_version.set(current), ModelItem.status.set(ModelStatus.READY),
                     *store_actions(event, ModelItem, self.shard(MODEL_SHARD, model.user_id)),
                     ModelItem.updated_at.set(activated_at)],
            condition=(ModelItem.destination == version.destination) & (ModelItem.updated_at == model.updated_at),
        ))

    def new_model(self, user_id: str, *, destination: str, trigger_word: str, status: str, created_at: str,
                  **attributes: Any) -> ModelItem:
        """A model item, placed in the drift index (checked first, as it was never checked)."""
        return ModelItem(user_id, destination=destination, trigger_word=trigger_word, status=status,
                         drift_shard=self.shard(DRIFT_SHARD, user_id), created_at=created_at,
                         updated_at=created_at, **attributes)

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
    def put_generation(self, generation: GenerationItem, admission: Admitted | None = None) -> None:
        """Record a new generation; one that is starting is on the reconciler's schedule at once.
        With `admission`, in the same transaction the user's limits are counted on the model
        item, conditioned on the minute's count being as read and the in-flight count still under its
        limit (generations that ended meanwhile only lowered it); `GuardRejected` otherwise."""
        if generation.status == GenerationStatus.STARTING:
            generation.due_shard = self.shard(GENERATION_SHARD, generation.generation_id)
            generation.due_at = self._first_prediction_check()
        if admission is None:
            guarded(lambda: generation.save(condition=GenerationItem.generation_id.does_not_exist()))
            return
        read = admission.read
        unchanged = ((ModelItem.generation_window == read.generation_window) if read.generation_window
                     else ModelItem.generation_window.does_not_exist())
        unchanged &= (ModelItem.generations_in_flight.does_not_exist()
                      | (ModelItem.generations_in_flight < admission.in_flight_limit))
        unchanged &= ((ModelItem.generation_window_count == read.generation_window_count)
                      if read.generation_window_count is not None
                      else ModelItem.generation_window_count.does_not_exist())
        with guarded_transaction(self._connection) as tx:
            tx.save(generation, condition=GenerationItem.generation_id.does_not_exist())
            tx.update(ModelItem(generation.user_id), actions=[
                ModelItem.generation_window.set(admission.window),
                ModelItem.generation_window_count.set(admission.window_count),
                ModelItem.generations_in_flight.add(1),
            ], condition=ModelItem.user_id.exists() & unchanged)

    @staticmethod
    def _first_prediction_check() -> str:
        from lorapin.domain.clock import utc_now

        return iso(utc_now() + PREDICTION_FIRST_CHECK)

    def claim_waiting_generation(self, generation: GenerationItem, *, version_ref: str, prompt: str) -> bool:
        """Move a waiting generation to `starting` with the version that releases it; False if
        another consumer (a duplicate event) got there first."""
        return write_if(lambda: generation.update(
            actions=[
                GenerationItem.status.set(GenerationStatus.STARTING),
                GenerationItem.model_version_ref.set(version_ref),
                GenerationItem.prompt.set(prompt),
                GenerationItem.waiting_user_id.remove(),
                GenerationItem.due_shard.set(self.shard(GENERATION_SHARD, generation.generation_id)),
                GenerationItem.due_at.set(self._first_prediction_check()),
            ],
            condition=GenerationItem.status == GenerationStatus.WAITING_FOR_MODEL,
        ))

    @staticmethod
    def return_to_waiting(generation: GenerationItem) -> bool:
        """Put a claimed generation back in the queue (its prediction could not be created yet);
        False when it is no longer `starting` (it failed or was completed meanwhile)."""
        return write_if(lambda: generation.update(actions=[
            GenerationItem.status.set(GenerationStatus.WAITING_FOR_MODEL),
            GenerationItem.model_version_ref.remove(),
            GenerationItem.waiting_user_id.set(generation.user_id),
            GenerationItem.due_shard.remove(), GenerationItem.due_at.remove(),
        ], condition=(GenerationItem.status == GenerationStatus.STARTING)
            & GenerationItem.replicate_prediction_id.does_not_exist()))

    @staticmethod
    def attach_prediction(generation: GenerationItem, prediction_id: str, status: str) -> None:
        generation.update(actions=[GenerationItem.replicate_prediction_id.set(prediction_id),
                                   GenerationItem.status.set(status)])

    def fail_generation(self, generation: GenerationItem, *, error: str, completed_at: str,
                        error_code: str | None = None) -> bool:
        """Record that a generation ended without images; False when it had already ended."""
        return self._end_generation(generation, [
            GenerationItem.status.set(GenerationStatus.FAILED), GenerationItem.error.set(error),
            GenerationItem.error_code.set(error_code) if error_code else GenerationItem.error_code.remove(),
            GenerationItem.completed_at.set(completed_at), GenerationItem.due_shard.remove(),
            GenerationItem.due_at.remove(), GenerationItem.waiting_user_id.remove(),
        ], GenerationItem.status.is_in(GenerationStatus.WAITING_FOR_MODEL, *GenerationStatus.in_flight()))

    def complete_generation(self, generation: GenerationItem, *, status: str, output_keys: list[str],
                            error: str | None, completed_at: str) -> bool:
        """Record a prediction's outcome once; False when it was already recorded (a duplicate)."""
        actions: list[Any] = [
            GenerationItem.status.set(status),
            GenerationItem.output_keys.set(output_keys),  # type: ignore[arg-type]
            GenerationItem.completed_at.set(completed_at),
            GenerationItem.due_shard.remove(), GenerationItem.due_at.remove(),
        ]
        actions.append(GenerationItem.error.set(error) if error else GenerationItem.error.remove())
        return self._end_generation(generation, actions, GenerationItem.status.is_in(*GenerationStatus.in_flight()))

    def _end_generation(self, generation: GenerationItem, actions: list[Any], condition: Any) -> bool:
        """A generation's end, and its user's in-flight count one lower, in one transaction (so the
        count cannot drift); False when the generation had already ended. A user whose model is
        gone (a deleted account) has no count: the generation alone is written."""
        from pynamodb.exceptions import TransactWriteError

        try:
            with TransactWrite(connection=self._connection) as tx:
                tx.update(generation, actions=actions, condition=condition)
                tx.update(ModelItem(generation.user_id), actions=[ModelItem.generations_in_flight.add(-1)],
                          condition=ModelItem.user_id.exists())
        except TransactWriteError as exc:
            if condition_failed_at(exc, 0):
                return False  # already ended (a duplicate)
            if condition_failed_at(exc, 1):
                return write_if(lambda: generation.update(actions=actions, condition=condition))
            raise
        return True


SUBMIT_GRACE = timedelta(minutes=15)
"""How long after a start the reconciler first looks at a training the submitter has not taken
(real time): Lambda's queue for asynchronous invocations normally starts it within a second."""
SUBMIT_LEASE = timedelta(minutes=6)
"""How long one submission may hold a training (the submitter's timeout is 5 minutes): while it
does, neither the reconciler nor another attempt touches it."""


class TrainingStarts:
    """The writes around starting a training (the only path that starts one, first or re-)."""

    def __init__(self, repository: Repository) -> None:
        self._repository = repository
        self._connection = repository._connection

    def begin(self, model: ModelItem | None, training: TrainingItem, *, photo_set: PhotoSetItem,
              new_model: ModelItem | None = None) -> None:
        """Claim the user's training slot and record the training with its photo set, in one
        transaction (I2).

        `training.seq` must be `model.last_seq + 1` (or 1 for a first training); the condition on
        `last_seq` turns a concurrent start into a clean conflict instead of two trainings. The
        training is on the reconciler's schedule from the first moment: if no submission ever gets
        as far as storing Replicate's id, the reconciler finds out what happened.
        """
        now = training.created_at
        training.previous_version_id = model.current_version.id if model and model.current_version else None
        training.due_shard = self._repository.shard(TRAINING_SHARD, training.training_id)
        training.due_at = iso(parse_iso(now) + processing_time(SUBMIT_GRACE))
        with guarded_transaction(self._connection) as tx:
            if model is None:
                assert new_model is not None
                new_model.last_seq = training.seq
                new_model.in_flight_training_id = training.training_id
                tx.save(new_model, condition=ModelItem.user_id.does_not_exist())
            else:
                actions: list[Any] = [
                    ModelItem.last_seq.set(training.seq),
                    ModelItem.in_flight_training_id.set(training.training_id),
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
            tx.save(photo_set, condition=PhotoSetItem.training_id.does_not_exist())

    @staticmethod
    def lease_submission(training: TrainingItem) -> int | None:
        """Take the training for one submission (zip + create), for `SUBMIT_LEASE`; returns which
        attempt this is, or None when it is no longer waiting for one or another attempt holds it."""
        now = utc_now()
        until = iso(now + processing_time(SUBMIT_LEASE))
        free = TrainingItem.submit_lease_until.does_not_exist() | (TrainingItem.submit_lease_until < iso(now))
        taken = write_if(lambda: training.update(
            actions=[TrainingItem.submit_lease_until.set(until), TrainingItem.submit_attempts.add(1),
                     TrainingItem.due_at.set(until)],
            condition=(TrainingItem.status == TrainingStatus.STARTING)
            & TrainingItem.replicate_training_id.does_not_exist() & free))
        return int(training.submit_attempts or 1) if taken else None

    @staticmethod
    def submission_leased(training: TrainingItem, at: datetime) -> bool:
        return bool(training.submit_lease_until) and parse_iso(str(training.submit_lease_until)) > at

    @staticmethod
    def attach_replicate_training(training: TrainingItem, replicate_training_id: str, status: str,
                                  *, first_check: datetime | None = None) -> bool:
        """Store Replicate's id (once); the reconciler first looks at `first_check`. False when the
        training already has an id, or is no longer starting (an abandon got there first)."""
        in_flight = status if status in TrainingStatus.in_flight() else TrainingStatus.STARTING
        actions: list[Any] = [TrainingItem.replicate_training_id.set(replicate_training_id),
                              TrainingItem.status.set(in_flight),
                              TrainingItem.submit_lease_until.remove()]  # the submission is done
        if first_check is not None:
            actions.append(TrainingItem.due_at.set(iso(first_check)))
        return write_if(lambda: training.update(
            actions=actions, condition=TrainingItem.replicate_training_id.does_not_exist()
            & TrainingItem.status.is_in(*TrainingStatus.in_flight())))

    def abandon(self, training: TrainingItem, event: TrainingFailed, *, error_code: str | None = None,
                lease_holder: bool = False) -> dict[str, Any] | None:
        """The start certainly did not create a training on Replicate: record it failed (with its
        `TrainingFailed` in the outbox, so what waited for it is told) and free the slot, so the
        user can try again. Returns the outbox to publish, or None when there is nothing to do
        (the training was confirmed or abandoned meanwhile, or a submission holds it and this
        caller is not that submission). Each write is conditional."""
        repository = self._repository
        try:
            outbox = guarded(lambda: self._record_abandon(training, event, error_code, lease_holder))
        except GuardRejected:
            return None
        repository.settle_model_after_training(training.user_id, training.training_id)  # frees the slot
        return outbox

    def _record_abandon(self, training: TrainingItem, event: TrainingFailed, error_code: str | None,
                        lease_holder: bool) -> dict[str, Any]:
        outbox = to_outbox(event)
        condition = (TrainingItem.replicate_training_id.does_not_exist()
                     & TrainingItem.status.is_in(*TrainingStatus.in_flight()))
        if not lease_holder:  # a submission in progress decides for itself
            condition = condition & (TrainingItem.submit_lease_until.does_not_exist()
                                     | (TrainingItem.submit_lease_until < now_iso()))
        actions: list[Any] = [
            TrainingItem.status.set(event.status), TrainingItem.error.set(event.error or "not started"),
            TrainingItem.completed_at.set(now_iso()), TrainingItem.submit_lease_until.remove(),
            *store_actions(outbox, TrainingItem, self._repository.shard(TRAINING_SHARD, training.training_id)),
        ]
        if error_code:
            actions.append(TrainingItem.error_code.set(error_code))
        TrainingItem(training.training_id).update(actions=actions, condition=condition)
        return outbox


def _current_version_is(version_id: str | None) -> Any:
    return (ModelItem.current_version.id == version_id if version_id
            else ModelItem.current_version.does_not_exist())


def _stored_as(training: TrainingItem) -> Any:
    """The stored training is `training` in every value an activation takes from it."""
    return ((TrainingItem.replicate_training_id == training.replicate_training_id)
            & (TrainingItem.user_id == training.user_id) & (TrainingItem.seq == training.seq)
            & (TrainingItem.destination == training.destination) & (TrainingItem.trigger_word == training.trigger_word)
            & (TrainingItem.image_count == training.image_count)
            & (TrainingItem.trainer_version == training.trainer_version))


def _resolved(future: Any) -> Any:
    """A TransactGet placeholder's item, or None when there is no such item."""
    try:
        return future.get()
    except DoesNotExist:
        return None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    last_key: dict[str, Any] | None  # where the next page starts; None on the last page


def _page(results: Any, limit: int) -> Page[Any]:
    items = list(results)
    return Page(items, results.last_evaluated_key if len(items) == limit else None)


@dataclass(frozen=True)
class Admitted:
    """An admitted generation: the limit values it was decided on (`read`), those to write, and the
    in-flight limit the write must still be under."""

    read: ModelItem
    window: str
    window_count: int
    in_flight_limit: int


@dataclass(frozen=True)
class UserRows:
    trainings: list[TrainingItem]
    generations: list[GenerationItem]
    versions: list[VersionItem]
    photos: list[Any]
    photo_sets: list[PhotoSetItem]
