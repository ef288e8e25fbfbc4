"""Deleting a user's account (`DELETE /account`): a GDPR request honoured end to end.

In an order that a retry can always finish: first what runs on Replicate (the training and
predictions in flight are canceled), then the destination model's versions and the model itself
on Replicate, as far as Replicate's API allows (a version a deployment uses, say, is refused: that
is reported, never hidden); then every object under the user's prefix (photos, thumbnails, zips,
outputs; what S3 refuses is reported too, and older versions of each expire by the bucket's
lifecycle rule, 30 days later); then every row, the model item last, since it names the destination a retry needs.
Idempotent: a second call finds nothing and says so. `AccountDeleted` is published on every call
(consumers tolerate duplicates), so a call whose publish failed is finished by its retry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lorapin.adapters.event_bus import EventPublisher, to_outbox
from lorapin.adapters.media import MediaStore, user_prefix
from lorapin.adapters.replicate_gateway import ReplicateRejected
from lorapin.adapters.repository import Repository, UserRows
from lorapin.domain.clock import now_iso
from lorapin.domain.events import AccountDeleted
from lorapin.domain.statuses import GenerationStatus, TrainingStatus
from lorapin.domain.versions import ModelName
from lorapin.observability import count, logger
from lorapin.services.ports import Replicate


@dataclass
class DeletionReport:
    canceled_on_replicate: int = 0
    replicate_versions_deleted: int = 0
    replicate_model_deleted: bool = False
    objects_deleted: int = 0
    rows_deleted: dict[str, int] = field(default_factory=dict)
    not_deleted: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"deleted": {"canceled_on_replicate": self.canceled_on_replicate,
                            "replicate_versions": self.replicate_versions_deleted,
                            "replicate_model": self.replicate_model_deleted,
                            "objects": self.objects_deleted, "rows": self.rows_deleted},
                "not_deleted": self.not_deleted}


class AccountDeletion:
    def __init__(self, repository: Repository, replicate: Callable[[], Replicate], media: Callable[[], MediaStore],
                 publisher: EventPublisher) -> None:
        self._repository = repository
        self._replicate = replicate
        self._media = media
        self._publisher = publisher

    def delete(self, user_id: str) -> DeletionReport:
        report = DeletionReport()
        model = self._repository.get_model(user_id)
        rows = self._repository.everything_of(user_id)
        self._cancel_in_flight(rows, report)
        if model is not None:
            self._delete_on_replicate(ModelName.parse(model.destination), report)
        report.objects_deleted, refused = self._media().delete_prefix(user_prefix(user_id))
        report.not_deleted += [{"what": f"object {key}", "reason": reason} for key, reason in refused.items()]
        self._repository.delete_rows(rows)
        report.rows_deleted = {"trainings": len(rows.trainings), "generations": len(rows.generations),
                               "versions": len(rows.versions), "photos": len(rows.photos),
                               "photo_sets": len(rows.photo_sets), "model": int(model is not None)}
        if model is not None:
            self._repository.delete_model(user_id)
        self._publisher.publish_outbox(to_outbox(AccountDeleted(
            user_id=user_id, destination=model.destination if model else None, deleted_at=now_iso(),
            not_deleted=report.not_deleted)))
        count("AccountsDeleted")
        logger.info("account deleted", extra={"user_id": user_id, **report.to_dict()})
        return report

    def _cancel_in_flight(self, rows: UserRows, report: DeletionReport) -> None:
        running = [("training", t.replicate_training_id) for t in rows.trainings
                   if t.status in TrainingStatus.in_flight() and t.replicate_training_id]
        running += [("prediction", g.replicate_prediction_id) for g in rows.generations
                    if g.status in GenerationStatus.in_flight() and g.replicate_prediction_id]
        replicate = self._replicate()
        for kind, replicate_id in running:
            cancel = replicate.cancel_training if kind == "training" else replicate.cancel_prediction
            try:
                cancel(str(replicate_id))
                report.canceled_on_replicate += 1
            except ReplicateRejected as exc:  # it ended meanwhile, or Replicate refuses: say so
                report.not_deleted.append({"what": f"{kind} {replicate_id}", "reason": f"cancel refused: {exc.detail}"})

    def _delete_on_replicate(self, destination: ModelName, report: DeletionReport) -> None:
        replicate = self._replicate()
        try:
            versions = replicate.version_ids(destination)
        except ReplicateRejected as exc:
            if exc.status != 404:  # 404: already gone (an earlier call deleted it)
                report.not_deleted.append({"what": f"model {destination}", "reason": exc.detail})
            return
        for version_id in versions:
            try:
                replicate.delete_version(destination, version_id)
                report.replicate_versions_deleted += 1
            except ReplicateRejected as exc:
                report.not_deleted.append({"what": f"version {destination}:{version_id}", "reason": exc.detail})
        try:
            replicate.delete_model(destination)
            report.replicate_model_deleted = True
        except ReplicateRejected as exc:
            if exc.status != 404:
                report.not_deleted.append({"what": f"model {destination}", "reason": exc.detail})

