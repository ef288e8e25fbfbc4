"""The backstop for lost webhooks (I8) and stuck work, run on a schedule.

It reads only the sparse `active` indexes (things in flight or with an event still to publish),
fetches each from Replicate and applies the *same* completion code as the webhook, so a run that
overlaps a late webhook, or another run, is safe: every write is guarded. Work per run is bounded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from lorapin.adapters.replicate_gateway import ReplicateRejected
from lorapin.adapters.repository import Repository, TrainingStarts
from lorapin.adapters.tables import GenerationItem, ModelItem, TrainingItem
from lorapin.domain.clock import iso, now_iso, utc_now
from lorapin.domain.drift import classify_drift
from lorapin.domain.errors import LorapinError
from lorapin.domain.statuses import GenerationStatus, TrainingStatus
from lorapin.domain.versions import ModelName
from lorapin.observability import count, logger
from lorapin.services.generation import Generations
from lorapin.services.ports import Replicate
from lorapin.services.training_completion import TrainingCompletion


@dataclass(frozen=True)
class ReconcilerLimits:
    # Younger work is left to its webhook. Shorter than any real training and than the schedule
    # (5 minutes), so a training whose webhook is lost is completed by the first run after it ends.
    stale_after: timedelta = timedelta(minutes=2)
    max_training_age: timedelta = timedelta(hours=6)  # then cancel it: "training forever" ends here
    max_generation_age: timedelta = timedelta(minutes=30)
    drift_window: timedelta = timedelta(hours=24)
    batch: int = 50


@dataclass
class ReconcileReport:
    trainings_checked: int = 0
    trainings_completed: int = 0
    trainings_canceled: int = 0
    trainings_abandoned: int = 0
    events_published: int = 0
    generations_checked: int = 0
    generations_completed: int = 0
    generations_released: int = 0
    generations_failed: int = 0
    drift: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Reconciler:
    def __init__(self, repository: Repository, completion: TrainingCompletion, generations: Generations,
                 replicate: Callable[[], Replicate], *, limits: ReconcilerLimits | None = None,
                 now: Callable[[], datetime] = utc_now) -> None:
        self._repository = repository
        self._completion = completion
        self._generations = generations
        self._replicate = replicate
        self._limits = limits or ReconcilerLimits()
        self._now = now

    def run(self) -> ReconcileReport:
        report = ReconcileReport()
        now = self._now()
        for step in (self._trainings, self._generations_step, self._drift):
            try:
                step(report, now)
            except LorapinError as exc:  # Replicate down: the next run tries again
                report.errors.append(f"{step.__name__}: {exc.message}")
                logger.warning("reconciler step failed", extra={"step": step.__name__, "error": exc.message})
        return report

    # --- trainings -------------------------------------------------------------------------------
    def _trainings(self, report: ReconcileReport, now: datetime) -> None:
        cutoff = iso(now - self._limits.stale_after)
        for item in self._repository.active_trainings(cutoff, limit=self._limits.batch):
            report.trainings_checked += 1
            try:
                self._reconcile_training(item, report, now)
            except (LorapinError, ReplicateRejected) as exc:
                report.errors.append(f"training {item.training_id}: {exc}")

    def _reconcile_training(self, item: TrainingItem, report: ReconcileReport, now: datetime) -> None:
        if item.pending_event and item.status not in TrainingStatus.in_flight():
            self._repository.settle_model_after_training(item.user_id, item.training_id)  # idempotent
            if self._completion.publish_pending(item):
                report.events_published += 1
            return
        if item.replicate_training_id is None:
            # The start never reached Replicate (or never recorded it): free the user's slot.
            TrainingStarts(self._repository).abandon(
                item, error="the training could not be confirmed with Replicate",
                previous_manifest=None, keep_manifest=True)
            report.trainings_abandoned += 1
            return
        training = self._replicate().get_training(item.replicate_training_id)
        if not training.is_terminal and item.created_at < iso(now - self._limits.max_training_age):
            self._replicate().cancel_training(item.replicate_training_id)
            training = self._replicate().get_training(item.replicate_training_id)
            report.trainings_canceled += 1
        if training.is_terminal:
            result = self._completion.apply(training, training_id_hint=item.training_id)
            report.trainings_completed += 1
            count("ReconciledTrainings")
            logger.info("training reconciled", extra={"training_id": item.training_id,
                                                      "outcome": result.outcome.value})

    # --- generations -----------------------------------------------------------------------------
    def _generations_step(self, report: ReconcileReport, now: datetime) -> None:
        cutoff = iso(now - self._limits.stale_after)
        for item in self._repository.active_generations(cutoff, limit=self._limits.batch):
            report.generations_checked += 1
            try:
                self._reconcile_generation(item, report, now)
            except (LorapinError, ReplicateRejected) as exc:
                report.errors.append(f"generation {item.generation_id}: {exc}")

    def _reconcile_generation(self, item: GenerationItem, report: ReconcileReport, now: datetime) -> None:
        too_old = item.created_at < iso(now - self._limits.max_generation_age)
        if item.status == GenerationStatus.WAITING_FOR_MODEL:
            model = self._repository.get_model(item.user_id)
            if model is not None and model.current_version is not None:
                report.generations_released += self._generations.release_waiting(item.user_id,
                                                                                  model.current_version.id)
            elif model is None or not model.in_flight_training_id:
                self._repository.fail_generation(item, error="the model's training failed", completed_at=now_iso())
                report.generations_failed += 1
            return
        if item.replicate_prediction_id:
            prediction = self._replicate().get_prediction(item.replicate_prediction_id)
            if prediction.is_terminal:
                self._generations.complete_prediction(prediction, item.generation_id)
                report.generations_completed += 1
            elif too_old:
                self._replicate().cancel_prediction(item.replicate_prediction_id)
            return
        if too_old:
            self._repository.fail_generation(item, error="the prediction was never created", completed_at=now_iso())
            report.generations_failed += 1

    # --- drift (R9) ------------------------------------------------------------------------------
    def _drift(self, report: ReconcileReport, now: datetime) -> None:
        since = iso(now - self._limits.drift_window)
        for model in self._repository.models_updated_since(since, limit=self._limits.batch):
            try:
                if model.pending_event and self._completion.outbox.publish_pending(ModelItem(model.user_id)):
                    report.events_published += 1
                self._check_drift(model, report)
            except (LorapinError, ReplicateRejected) as exc:  # one model never stops the run
                report.errors.append(f"model {model.user_id}: {exc}")

    def _check_drift(self, model: ModelItem, report: ReconcileReport) -> None:
        current = model.current_version
        if current is None:
            return
        latest = self._replicate().latest_version_id(ModelName.parse(model.destination))
        finding = classify_drift(current.id, current.reason, latest)
        if finding.is_problem:
            count("VersionDrift")
            logger.warning("version drift", extra={"user_id": model.user_id, "destination": model.destination,
                                                   "current_version_id": current.id, "latest_version_id": latest})
            report.drift.append({"user_id": model.user_id, "destination": model.destination,
                                 "current_version_id": current.id, "latest_version_id": latest,
                                 "reason": finding.reason})
