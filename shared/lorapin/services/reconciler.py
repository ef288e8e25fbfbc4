"""The backstop for lost webhooks (I8), unpublished events (I5) and drift (R9), run on a schedule.

Each run reads only what is *due* (`lorapin.domain.schedule`), from every shard of the sparse
`due` indexes in turn, starting where the previous run stopped. Due trainings are looked up
together in Replicate's list of recent trainings (one call covers a hundred); a training or a
generation is then completed through the *same* code as its webhook, so a run racing a late
webhook, or another run, is safe: every write is guarded.

No item can stop a run: each is handled on its own, and one that fails is logged with its ids,
counted (`ReconcileItemFailed`, which has an alarm) and looked at again later. A run stops taking
new work when its time or Replicate-call budget is spent; the next run resumes where it stopped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from lorapin.adapters.repository import Repository, TrainingStarts
from lorapin.adapters.tables import (
    DRIFT_SHARD,
    GENERATION_SHARD,
    MODEL_SHARD,
    TRAINING_SHARD,
    GenerationItem,
    ModelItem,
    StateItem,
    TrainingItem,
)
from lorapin.domain.clock import iso, parse_iso, utc_now
from lorapin.domain.drift import classify_drift
from lorapin.domain.errors import UpstreamUnavailable
from lorapin.domain.replicate_objects import ReplicatePrediction, ReplicateTraining
from lorapin.domain.schedule import (
    KEPT_SAMPLES,
    MAX_GENERATION_AGE,
    MAX_TRAINING_AGE,
    RETRY_AFTER_FAILURE,
    DurationEstimate,
    estimate_duration,
    next_prediction_check,
    next_training_check,
    size_key,
)
from lorapin.domain.statuses import GenerationStatus, TrainingStatus
from lorapin.domain.versions import ModelName
from lorapin.observability import count, logger
from lorapin.services.generation import CREATE_LOOKUP_MARGIN, Generations
from lorapin.services.ports import Replicate
from lorapin.services.training_completion import TrainingCompletion
from lorapin.services.training_start import abandon_training

T = TypeVar("T")
PARALLEL_READS = 8  # shards read at once: their queries are independent
PARALLEL_ITEMS = 8  # generations looked at side by side in a run


@dataclass(frozen=True)
class ReconcilerLimits:
    time_budget: timedelta = timedelta(seconds=90)  # the function times out at 120 s
    call_budget: int = 300  # Replicate API calls per run (its limit is 3,000 a minute)
    page: int = 25  # due items read from one shard at a time
    max_items: int = 2_000  # items looked at per run, across shards
    list_pages: int = 10  # pages of Replicate's recent trainings (100 each) read per run
    drift_models: int = 100  # models checked for drift per run: every model within ceil(models / this) runs


@dataclass
class ReconcileReport:
    trainings_checked: int = 0
    trainings_completed: int = 0
    trainings_canceled: int = 0
    trainings_adopted: int = 0
    trainings_abandoned: int = 0
    events_published: int = 0
    generations_checked: int = 0
    generations_completed: int = 0
    generations_failed: int = 0
    outputs_retried: int = 0  # finished predictions whose images could not be copied yet
    models_checked_for_drift: int = 0
    items_failed: int = 0
    replicate_calls: int = 0
    budget_exhausted: bool = False
    drift: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class BudgetExhausted(Exception):
    pass


class Budget:
    """The run's allowance of time and Replicate calls (spent from several threads at once)."""

    def __init__(self, limits: ReconcilerLimits) -> None:
        self._deadline = time.monotonic() + limits.time_budget.total_seconds()
        self._calls_left = limits.call_budget
        self._lock = threading.Lock()
        self.calls = 0

    def spend(self, calls: int = 1) -> None:
        with self._lock:
            if self._calls_left < calls or time.monotonic() > self._deadline:
                raise BudgetExhausted()
            self._calls_left -= calls
            self.calls += calls

    def check_time(self) -> None:
        if time.monotonic() > self._deadline:
            raise BudgetExhausted()

    @property
    def calls_left(self) -> int:
        return self._calls_left


class Reconciler:
    def __init__(self, repository: Repository, completion: TrainingCompletion, generations: Generations,
                 replicate: Callable[[], Replicate], *, limits: ReconcilerLimits | None = None) -> None:
        self._repository = repository
        self._completion = completion
        self._generations = generations
        self._replicate = replicate
        self._limits = limits or ReconcilerLimits()
        self._lock = threading.Lock()  # the report is updated by the item workers

    def _count(self, report: ReconcileReport, counter: str, n: int = 1) -> None:
        with self._lock:
            setattr(report, counter, getattr(report, counter) + n)

    def run(self, *, at: datetime | None = None) -> ReconcileReport:
        """One scheduled run. `at` (tests) looks at the schedule as of another moment."""
        report, budget = ReconcileReport(), Budget(self._limits)
        now = at or utc_now()
        state = self._repository.reconciler_state()
        shards = list(range(self._repository.shards))
        first = int(state.next_shard or 0) % len(shards)
        order = shards[first:] + shards[:first]  # round robin: each run starts one shard further on
        stopped_at: int | None = None
        for step in (self._trainings, self._generations_step, self._model_outboxes, self._drift):
            try:
                step(order, now, report, budget, state)
            except BudgetExhausted as exhausted:
                report.budget_exhausted = True
                stopped_at = exhausted.args[0] if exhausted.args else None
                break
        state.next_shard = stopped_at if stopped_at is not None else (first + 1) % len(shards)
        report.replicate_calls = budget.calls
        try:
            self._repository.save_reconciler_state(state)
        except Exception as exc:  # the next run starts from the previous cursor: nothing is lost
            logger.warning("reconciler state not saved", extra={"error": str(exc)})
        if report.items_failed:
            count("ReconcileItemFailed", report.items_failed)
        return report

    # --- isolation --------------------------------------------------------------------------------
    def _isolated(self, report: ReconcileReport, what: str, ids: dict[str, Any], work: Callable[[], object],
                  on_failure: Callable[[], object]) -> None:
        """Run `work` for one item: any failure is logged with its ids, counted, and the item is
        looked at again later; it never ends the run (a spent budget does)."""
        try:
            work()
        except BudgetExhausted:
            raise
        except Exception as exc:
            self._count(report, "items_failed", 1)
            with self._lock:
                report.errors.append(f"{what} {next(iter(ids.values()), '?')}: {type(exc).__name__}: {exc}")
            logger.warning("reconciler item failed", extra={"item": what, **ids, "error": str(exc),
                                                            "error_type": type(exc).__name__})
            try:
                on_failure()
            except Exception as retry_exc:  # the item stays due: the next run tries it anyway
                logger.warning("could not reschedule a failed item", extra={**ids, "error": str(retry_exc)})

    def _call(self, budget: Budget, call: Callable[[], T], calls: int = 1) -> T:
        budget.spend(calls)
        return call()

    def _due(self, kind: type[Any], prefix: str, order: list[int], now: str,
             budget: Budget) -> Iterator[tuple[int, Any]]:
        """Due items, shard after shard in `order`, a page at a time per shard, round after round,
        until none is left or `max_items` were taken: no shard's backlog starves the others. The
        shards' pages of one round are read side by side (they are independent queries)."""
        taken = 0
        cursors: dict[int, dict[str, Any] | None] = dict.fromkeys(order)
        with ThreadPoolExecutor(max_workers=min(PARALLEL_READS, len(order))) as pool:
            while cursors and taken < self._limits.max_items:
                budget.check_time()
                pages = pool.map(lambda shard: (shard, self._repository.due_page(
                    kind, f"{prefix}{shard}", now, limit=self._limits.page, start=cursors[shard])), list(cursors))
                for shard, (items, cursors[shard]) in pages:
                    if cursors[shard] is None:
                        del cursors[shard]
                    for item in items:
                        taken += 1
                        yield shard, item

    # --- trainings --------------------------------------------------------------------------------
    def _trainings(self, order: list[int], at: datetime, report: ReconcileReport, budget: Budget,
                   state: StateItem) -> None:
        due = list(self._due(TrainingItem, TRAINING_SHARD, order, iso(at), budget))
        self._count(report, "trainings_checked", len(due))
        # Trainings that may be finishing about now are looked up together in one list; a late one
        # (it would drag the list back hours) is asked for alone, at its own slower pace.
        fresh = [item for _, item in due if item.status in TrainingStatus.in_flight() and not item.pending_event
                 and at - parse_iso(item.created_at) < self._estimate(item, state).late
                 and not (item.replicate_training_id is None and TrainingStarts.submission_leased(item, at))]
        listed = self._recent_trainings(fresh, budget, state) if fresh else None
        for shard, item in due:
            try:
                self._isolated(report, "training", {"training_id": item.training_id, "user_id": item.user_id},
                               partial(self._reconcile_training, item, at, listed, report, budget,
                                       self._estimate(item, state)),
                               partial(self._repository.reschedule, item, at + RETRY_AFTER_FAILURE, None))
            except BudgetExhausted as exc:
                raise BudgetExhausted(shard) from exc

    @staticmethod
    def _estimate(item: TrainingItem, state: StateItem) -> DurationEstimate:
        steps = int((item.params or {}).get("steps", 1000))
        return estimate_duration(steps, (state.durations or {}).get(size_key(steps), []))

    def _recent_trainings(self, due: list[TrainingItem], budget: Budget, state: StateItem) -> Listing:
        """One look at Replicate's recent trainings, back to the oldest due one (page budget allowing)."""
        since = min(parse_iso(item.created_at) for item in due) - CREATE_LOOKUP_MARGIN
        pages = min(self._limits.list_pages, budget.calls_left)
        if pages <= 0:
            raise BudgetExhausted()
        items, complete = self._call(budget, lambda: self._replicate().recent("trainings", since, max_pages=pages),
                                     calls=pages)
        self._learn_durations(items, state)
        return Listing(items, complete)

    def _reconcile_training(self, item: TrainingItem, now: datetime, listed: Listing | None, report: ReconcileReport,
                            budget: Budget, estimate: DurationEstimate) -> None:
        if item.pending_event and item.status not in TrainingStatus.in_flight():
            self._repository.settle_model_after_training(item.user_id, item.training_id)  # idempotent
            if self._completion.publish_pending(item):
                self._count(report, "events_published", 1)
            return
        if item.replicate_training_id is None:
            if TrainingStarts.submission_leased(item, now):  # the submitter is on it: look after its lease
                self._repository.reschedule(item, parse_iso(str(item.submit_lease_until)), None)
                return
            self._confirm_start(item, listed, report, budget)
            return
        training = listed.training(item.replicate_training_id) if listed else None
        if training is None:  # not in the list (older than its pages, or gone): ask for it alone
            training = self._call(budget, lambda: self._replicate().get_training(str(item.replicate_training_id)))
        if not training.is_terminal and now - parse_iso(item.created_at) > MAX_TRAINING_AGE:
            self._call(budget, lambda: self._replicate().cancel_training(str(item.replicate_training_id)))
            training = self._call(budget, lambda: self._replicate().get_training(str(item.replicate_training_id)))
            self._count(report, "trainings_canceled", 1)
        if training.is_terminal:
            result = self._completion.apply(training, training_id_hint=item.training_id)
            self._count(report, "trainings_completed", 1)
            count("ReconciledTrainings")
            logger.info("training reconciled", extra={"training_id": item.training_id,
                                                      "outcome": result.outcome.value})
            return
        last = timedelta(seconds=float(item.check_interval)) if item.check_interval else None
        due_at, interval = next_training_check(now, parse_iso(item.created_at), estimate, last)
        self._repository.reschedule(item, due_at, interval)

    def _confirm_start(self, item: TrainingItem, listed: Listing | None, report: ReconcileReport,
                       budget: Budget) -> None:
        """A training whose start never stored Replicate's id: adopt what Replicate created, or,
        when Replicate certainly has nothing, free the user's slot."""
        found = listed.ours(item.training_id) if listed else None
        if found is None and not (listed and listed.complete):
            found = self._call(budget, lambda: self._replicate().find_training(
                item.training_id, parse_iso(item.created_at) - CREATE_LOOKUP_MARGIN))
        if found is not None:
            if TrainingStarts.attach_replicate_training(item, found.id, found.status):
                self._count(report, "trainings_adopted", 1)
                count("AdoptedTrainings")
            if found.is_terminal:
                self._completion.apply(found, training_id_hint=item.training_id)
                self._count(report, "trainings_completed", 1)
            return
        abandoned = abandon_training(self._repository, self._completion.outbox.publisher, item,
                                     "The training could not be confirmed with Replicate, which has no record of it.")
        if abandoned is not None:
            self._count(report, "trainings_abandoned", 1)
            if abandoned.announced:  # else the outbox keeps it for a later run, which counts it then
                self._count(report, "events_published", 1)

    def _learn_durations(self, listed: list[dict[str, Any]], state: StateItem) -> None:
        """How long the account's trainings took, by size, from what the list shows finished since
        the last look (`lorapin.domain.schedule.estimate_duration` reads it)."""
        durations: dict[str, list[float]] = dict(state.durations or {})
        watermark = state.durations_watermark or ""
        newest = watermark
        for raw in listed:
            completed, created = raw.get("completed_at"), raw.get("created_at")
            if raw.get("status") != TrainingStatus.SUCCEEDED or not completed or not created:
                continue
            if str(completed) <= watermark:
                continue
            steps = (raw.get("input") or {}).get("steps")
            if not isinstance(steps, int):
                continue
            seconds = (parse_iso(str(completed)) - parse_iso(str(created))).total_seconds()
            key = size_key(steps)
            durations[key] = [*durations.get(key, []), seconds][-KEPT_SAMPLES:]
            newest = max(newest, str(completed))
        state.durations, state.durations_watermark = durations, newest or None

    # --- generations ------------------------------------------------------------------------------
    def _generations_step(self, order: list[int], at: datetime, report: ReconcileReport, budget: Budget,
                          _state: StateItem) -> None:
        """Generations are many and each needs its own look at Replicate: several are looked at side
        by side, so a run's throughput is not one call's latency at a time."""
        with ThreadPoolExecutor(max_workers=PARALLEL_ITEMS, thread_name_prefix="reconcile") as pool:
            work = []
            for shard, item in self._due(GenerationItem, GENERATION_SHARD, order, iso(at), budget):
                self._count(report, "generations_checked", 1)
                ids = {"generation_id": item.generation_id, "user_id": item.user_id}
                work.append((shard, pool.submit(
                    self._isolated, report, "generation", ids, partial(self._reconcile_generation, item, at, report,
                                                                       budget),
                    partial(self._repository.reschedule, item, at + RETRY_AFTER_FAILURE, None))))
            for shard, future in work:
                try:
                    future.result()
                except BudgetExhausted as exc:
                    raise BudgetExhausted(shard) from exc

    def _reconcile_generation(self, item: GenerationItem, now: datetime, report: ReconcileReport,
                              budget: Budget) -> None:
        if item.replicate_prediction_id is None:
            found = self._call(budget, lambda: self._generations.look_up_prediction(item))
            if found is None:
                if self._repository.fail_generation(item, error="The prediction was never created.",
                                                    completed_at=iso(now)):
                    self._count(report, "generations_failed", 1)
                return
            self._repository.attach_prediction(item, found.id, GenerationStatus.PROCESSING)
            item = self._repository.get_generation(item.generation_id) or item
        prediction: ReplicatePrediction = self._call(
            budget, lambda: self._replicate().get_prediction(str(item.replicate_prediction_id)))
        if not prediction.is_terminal and now - parse_iso(item.created_at) > MAX_GENERATION_AGE:
            self._call(budget, lambda: self._replicate().cancel_prediction(str(item.replicate_prediction_id)))
        if prediction.is_terminal:
            try:
                self._generations.complete_prediction(prediction, item.generation_id)
            except UpstreamUnavailable as exc:  # outputs not copied yet, and not yet expired: look again later
                last = timedelta(seconds=float(item.check_interval)) if item.check_interval else None
                self._repository.reschedule(item, *next_prediction_check(now, last))
                self._count(report, "outputs_retried", 1)
                logger.info("outputs not copied yet", extra={"generation_id": item.generation_id,
                                                             "error": exc.message})
                return
            done = self._repository.get_generation(item.generation_id)
            if done is not None and done.status == GenerationStatus.FAILED:
                self._count(report, "generations_failed", 1)
            else:
                self._count(report, "generations_completed", 1)
            return
        last = timedelta(seconds=float(item.check_interval)) if item.check_interval else None
        self._repository.reschedule(item, *next_prediction_check(now, last))

    # --- rollbacks' events ------------------------------------------------------------------------
    def _model_outboxes(self, order: list[int], at: datetime, report: ReconcileReport, budget: Budget,
                        _state: StateItem) -> None:
        for _, model in self._due(ModelItem, MODEL_SHARD, order, iso(at), budget):
            self._isolated(report, "model", {"user_id": model.user_id},
                           partial(self._publish_model_event, model, report), lambda: None)

    def _publish_model_event(self, model: ModelItem, report: ReconcileReport) -> None:
        if self._completion.outbox.publish_pending(ModelItem(model.user_id)):
            self._count(report, "events_published", 1)

    # --- drift (R9) -------------------------------------------------------------------------------
    def _drift(self, order: list[int], at: datetime, report: ReconcileReport, budget: Budget,
               _state: StateItem) -> None:
        """The `drift_models` least recently checked models of all shards: a checked model goes to
        the back of the line, so every model is checked within ceil(models / drift_models) runs."""
        if self._limits.drift_models <= 0:
            return
        with ThreadPoolExecutor(max_workers=min(PARALLEL_READS, len(order))) as pool:
            pages = pool.map(lambda shard: self._repository.least_recently_checked_models(
                f"{DRIFT_SHARD}{shard}", limit=self._limits.drift_models), order)
            candidates = [model for page in pages for model in page]
        candidates.sort(key=lambda model: str(model.drift_checked_at))
        for model in candidates[:self._limits.drift_models]:
            self._isolated(report, "model", {"user_id": model.user_id},
                           partial(self._check_drift, model, at, report, budget),
                           partial(self._repository.mark_drift_checked, model, iso(at)))

    def _check_drift(self, model: ModelItem, at: datetime, report: ReconcileReport, budget: Budget) -> None:
        current = model.current_version
        self._count(report, "models_checked_for_drift", 1)
        if current is not None:
            latest = self._call(budget, lambda: self._replicate().latest_version_id(ModelName.parse(model.destination)))
            finding = classify_drift(current.id, current.reason, latest)
            if finding.is_problem:
                count("VersionDrift")
                logger.warning("version drift", extra={"user_id": model.user_id, "destination": model.destination,
                                                       "current_version_id": current.id, "latest_version_id": latest})
                with self._lock:
                    report.drift.append({"user_id": model.user_id, "destination": model.destination,
                                         "current_version_id": current.id, "latest_version_id": latest,
                                         "reason": finding.reason})
        self._repository.mark_drift_checked(model, iso(at))


@dataclass
class Listing:
    """What one look at Replicate's recent trainings found, indexed for the due trainings."""

    items: list[dict[str, Any]]
    complete: bool  # it reached back past the oldest due training

    def __post_init__(self) -> None:
        self._by_id = {str(item.get("id")): item for item in self.items}

    def training(self, replicate_id: str) -> ReplicateTraining | None:
        item = self._by_id.get(replicate_id)
        return ReplicateTraining.parse(item) if item else None

    def ours(self, training_id: str) -> ReplicateTraining | None:
        """The training whose input names our id (a create whose answer was lost)."""
        for item in self.items:
            if training_id in str((item.get("input") or {}).get("input_images", "")):
                return ReplicateTraining.parse(item)
        return None

