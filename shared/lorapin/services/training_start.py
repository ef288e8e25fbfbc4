"""Starting a training, first or re- (R4-R8): the one path that starts trainings.

Destination created once and reused; trigger word fixed at the first training; photo set merged
(or replaced) and validated; parameters from the photo count; the slot claimed under one
conditional write (I2); nothing left half-done when Replicate refuses.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lorapin.adapters.event_bus import EventPublisher
from lorapin.adapters.media import MediaStore, user_prefix
from lorapin.adapters.outbox import Outbox
from lorapin.adapters.replicate_gateway import CreateOutcomeUnknown, ReplicateRejected
from lorapin.adapters.repository import GuardRejected, Repository, TrainingStarts
from lorapin.adapters.settings import Settings
from lorapin.adapters.tables import ModelItem, TrainingItem
from lorapin.domain.clock import new_id, now_iso, parse_iso
from lorapin.domain.errors import (
    EventPublishFailed,
    ForbiddenImageKey,
    ImageValidationFailed,
    TrainingInProgress,
    TriggerWordLocked,
    UpstreamRejected,
    UpstreamUnavailable,
)
from lorapin.domain.events import TrainingFailed
from lorapin.domain.photos import MAX_IMAGE_BYTES, MAX_IMAGES, Finding, PhotoEntry, PhotoSetResult, build_photo_set
from lorapin.domain.photos import inspect_photo as inspect_photo_bytes
from lorapin.domain.replicate_objects import ReplicateTraining
from lorapin.domain.schedule import DurationEstimate, estimate_duration, first_training_check, size_key
from lorapin.domain.statuses import ModelStatus, TrainingStatus
from lorapin.domain.training_params import training_params_for
from lorapin.domain.versions import ModelName
from lorapin.observability import count, logger
from lorapin.services.generation import CREATE_LOOKUP_MARGIN
from lorapin.services.ports import Replicate
from lorapin.services.uploads import UPLOAD_NAME_PATTERN

DEFAULT_TRIGGER_WORD = "TOK"  # the trainer's own default
TRIGGER_WORD_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{1,31}$"
TRAINING_ZIP_URL_SECONDS = 6 * 3600  # the trainer may queue for a while before it downloads the zip
DESTINATION_HARDWARE = "gpu-h100"


class TrainingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_keys: list[str] = Field(default_factory=list, max_length=MAX_IMAGES)
    mode: Literal["merge", "replace"] | None = None
    trigger_word: str | None = Field(default=None, pattern=TRIGGER_WORD_PATTERN)
    acknowledge_warnings: bool = False


def destination_name(owner: str, user_id: str) -> ModelName:
    """The user's destination model: derived once, deterministic, and without the user id in it.

    80 bits of SHA-256 keep names distinct across users; the result is a valid Replicate name.
    """
    digest = hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:20]
    return ModelName(owner, f"lorapin-{digest}")


@dataclass(frozen=True)
class StartedTraining:
    training: TrainingItem
    findings: list[Finding]


class Trainings:
    def __init__(self, settings: Settings, repository: Repository, replicate: Callable[[], Replicate],
                 media: Callable[[], MediaStore], webhook_url: Callable[[str], str],
                 publisher: EventPublisher) -> None:
        self._settings = settings
        self._repository = repository
        self._publisher = publisher
        self._replicate = replicate
        self._media = media
        self._webhook_url = webhook_url

    def start(self, user_id: str, request: TrainingRequest) -> StartedTraining:
        self._check_keys(user_id, request.image_keys)  # before anything is read (I6, I7)
        model = self._repository.get_model(user_id)
        if model is not None and model.in_flight_training_id:
            raise TrainingInProgress(details=[{"training_id": model.in_flight_training_id}])
        trigger_word = self._trigger_word(model, request.trigger_word)
        previous = [PhotoEntry.from_dict(e) for e in (model.last_photo_manifest or [])] if model else []
        mode = request.mode or ("merge" if previous else "replace")
        photo_set = self._photo_set(previous, request.image_keys, mode)
        if photo_set.blocking(request.acknowledge_warnings):
            raise ImageValidationFailed(self._validation_message(photo_set, request.acknowledge_warnings),
                                        details=[f.to_dict() for f in photo_set.findings])

        destination = ModelName.parse(model.destination) if model else self._ensure_destination(user_id)
        now = now_iso()
        params = training_params_for(len(photo_set.entries), self._settings.training_params_overrides)
        training = TrainingItem(
            new_id("trn"), user_id=user_id, seq=int(model.last_seq or 0) + 1 if model else 1,
            status=TrainingStatus.STARTING,
            mode=mode, image_count=len(photo_set.entries), photo_manifest=[e.to_dict() for e in photo_set.entries],
            params=params, trigger_word=trigger_word, destination=str(destination),
            trainer_model=self._settings.trainer_model, trainer_version=self._settings.trainer_version,
            created_at=now)
        new_model = None if model else self._repository.new_model(
            user_id, destination=str(destination), trigger_word=trigger_word, status=ModelStatus.TRAINING,
            created_at=now)
        starts = TrainingStarts(self._repository)
        try:
            starts.begin(model, training, new_model=new_model)
        except GuardRejected as exc:
            raise TrainingInProgress() from exc
        created = self._create_on_replicate(starts, training, model, photo_set, destination)
        if created is not None:
            estimate = self._expected_duration(int(params.get("steps", 1000)))
            starts.attach_replicate_training(training, created.id, created.status,
                                             first_check=first_training_check(parse_iso(now), estimate))
        return StartedTraining(self._repository.get_training(training.training_id) or training, photo_set.findings)

    def _create_on_replicate(self, starts: TrainingStarts, training: TrainingItem, model: ModelItem | None,
                             photo_set: PhotoSetResult, destination: ModelName) -> ReplicateTraining | None:
        """Between claiming the slot and storing Replicate's id, every fault either frees the slot
        (nothing was created) or adopts what Replicate created; never a slot held by nothing, never
        two trainings. None: Replicate cannot tell yet whether it created it (the reconciler will)."""
        previous_manifest = model.last_photo_manifest if model else None

        def abandon(reason: str) -> None:
            self._abandon(starts, training, previous_manifest, reason)

        params = dict(training.params or {})
        try:
            zip_url = self._upload_zip(training.user_id, training, photo_set)
        except Exception as exc:  # S3 faults included: nothing has reached Replicate
            abandon(f"could not prepare the photos: {exc}")
            raise
        try:
            return self._replicate().create_training(
                trainer_model=self._settings.trainer_model, trainer_version=self._settings.trainer_version,
                destination=destination,
                input={**params, "input_images": zip_url, "trigger_word": training.trigger_word},
                webhook=self._webhook_url(training.training_id))
        except ReplicateRejected as exc:
            abandon(f"Replicate refused the training: {exc.detail}")
            raise UpstreamRejected(f"Replicate refused the training: {exc.detail}") from exc
        except CreateOutcomeUnknown as exc:
            logger.warning("training create outcome unknown", extra={"training_id": training.training_id,
                                                                      "error": exc.message})
            try:
                found = self._replicate().find_training(training.training_id,
                                                        parse_iso(training.created_at) - CREATE_LOOKUP_MARGIN)
            except (UpstreamUnavailable, ReplicateRejected):
                return None  # the training stays `starting`, due for the reconciler's look-up
            if found is None:  # certainly absent: the user may simply try again
                abandon(f"Replicate did not create the training: {exc.message}")
                raise
            count("AdoptedTrainings")
            return found
        except Exception as exc:
            abandon(f"could not start: {exc}")
            raise

    def _abandon(self, starts: TrainingStarts, training: TrainingItem, previous_manifest: Any, reason: str) -> None:
        model = self._repository.get_model(training.user_id)
        failed = TrainingFailed(user_id=training.user_id, training_id=training.training_id,
                                status=TrainingStatus.FAILED, error=reason,
                                current_version_id=model.current_version.id if model and model.current_version
                                else None)
        outbox = starts.abandon(training, failed, previous_manifest=previous_manifest)
        if outbox is not None:
            try:
                Outbox(self._publisher).publish_leased(TrainingItem(training.training_id), outbox)
            except EventPublishFailed as exc:  # the reconciler publishes it once the lease lapses
                logger.warning("TrainingFailed left in the outbox", extra={"training_id": training.training_id,
                                                                            "error": str(exc)})

    def _expected_duration(self, steps: int) -> DurationEstimate:
        """How long trainings of this size took lately (the reconciler keeps the record)."""
        observed = (self._repository.reconciler_state().durations or {}).get(size_key(steps), [])
        return estimate_duration(steps, observed)

    # --- steps -----------------------------------------------------------------------------------
    @staticmethod
    def _check_keys(user_id: str, keys: list[str]) -> None:
        # Exactly the keys POST /uploads hands out: a prefix test alone would let user "a" name
        # the uploads of a user whose id is "a/uploads/x".
        own_upload = re.compile(re.escape(f"{user_prefix(user_id)}uploads/") + UPLOAD_NAME_PATTERN)
        foreign = [key for key in keys if not own_upload.fullmatch(key)]
        if foreign:
            raise ForbiddenImageKey(details=[{"image_key": key} for key in foreign[:20]])

    @staticmethod
    def _trigger_word(model: ModelItem | None, requested: str | None) -> str:
        if model is None:
            return requested or DEFAULT_TRIGGER_WORD
        if requested and requested != model.trigger_word:
            raise TriggerWordLocked(
                f"This model was trained with the trigger word {model.trigger_word!r}; a retrain keeps it. "
                "Leave trigger_word out, or send the same word.",
                details=[{"trigger_word": model.trigger_word}])
        return model.trigger_word

    def _photo_set(self, previous: list[PhotoEntry], keys: list[str], mode: Literal["merge", "replace"]
                   ) -> PhotoSetResult:
        media = self._media()
        inspected: list[PhotoEntry] = []
        findings: list[Finding] = []
        for key in dict.fromkeys(keys):  # the same key twice is one photo
            size = media.size(key)
            if size is None:
                findings.append(Finding(code="UNREADABLE_IMAGE", severity="error", image_key=key,
                                        message=f"{key} was not found. Upload it with the URL from POST /uploads "
                                                "before starting the training."))
                continue
            if size > MAX_IMAGE_BYTES:
                findings.append(Finding(code="IMAGE_TOO_LARGE", severity="error", image_key=key,
                                        message=f"{key} is {size / 1e6:.1f} MB; photos must be at most "
                                                f"{MAX_IMAGE_BYTES // (1024 * 1024)} MB. Export it at a smaller size."))
                continue
            result = inspect_photo_bytes(key, media.get(key))
            findings.extend(result.findings)
            if result.entry is not None:
                inspected.append(result.entry)
        photo_set = build_photo_set(previous, inspected, mode)
        return photo_set.with_findings(findings)

    @staticmethod
    def _validation_message(photo_set: PhotoSetResult, acknowledged: bool) -> str:
        if photo_set.errors:
            return f"{len(photo_set.errors)} problem(s) with the photos must be fixed before training."
        suffix = "" if acknowledged else " Send acknowledge_warnings: true to train anyway."
        return f"{len(photo_set.warnings)} warning(s) about the photos.{suffix}"

    def _ensure_destination(self, user_id: str) -> ModelName:
        """Create the user's destination model on their first training. Created straight away (one
        call); only when Replicate refuses is it looked up, e.g. left by an interrupted attempt."""
        destination = destination_name(self._settings.replicate_owner, user_id)
        gateway = self._replicate()
        try:
            gateway.create_model(destination, hardware=DESTINATION_HARDWARE,
                                 description="lorapin: a user's personal FLUX LoRA")
        except ReplicateRejected as exc:
            if not gateway.model_exists(destination):
                raise UpstreamRejected(f"Replicate refused the destination model: {exc.detail}") from exc
        return destination

    def _upload_zip(self, user_id: str, training: TrainingItem, photo_set: PhotoSetResult) -> str:
        """The trainer's input: one zip of the final photo set, built from our bucket (REQUIREMENTS §6)."""
        media = self._media()
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
            for index, entry in enumerate(photo_set.entries):
                archive.writestr(f"{index:03d}-{entry.key.rsplit('/', 1)[-1]}", media.get(entry.key))
        key = f"{user_prefix(user_id)}trainings/{training.training_id}.zip"
        media.put(key, buffer.getvalue(), "application/zip")
        return media.presigned_get(key, expires_in=TRAINING_ZIP_URL_SECONDS)


def manifest_keys(manifest: list[dict[str, Any]] | None) -> list[str]:
    return [str(entry["key"]) for entry in manifest or []]
