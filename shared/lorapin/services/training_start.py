"""Starting a training, first or re- (R4-R8): the one path that starts trainings.

Two steps. `start` (POST /trainings, within API Gateway's 29 s) decides everything from stored
records and decodes no photo: destination created once and reused; trigger word fixed at the first
training; photo set merged from the set of the training that made the current version (or
replaced) and validated from the photos' inspections; parameters from the photo count; the slot
claimed with the set under one transaction (I2). Then it hands the training to `submit`, which runs
after the 202 in the training submitter: it streams the zip in bounded memory and creates the
training on Replicate. Every fault in either step frees the slot or adopts what Replicate created;
never a slot held by nothing, never two trainings.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lorapin.adapters.event_bus import EventPublisher
from lorapin.adapters.functions import FunctionFailed
from lorapin.adapters.media import MediaStore, ObjectChanged, ZipMember, user_prefix
from lorapin.adapters.outbox import Outbox
from lorapin.adapters.photo_records import PhotoRecords, entry_of, findings_of
from lorapin.adapters.replicate_gateway import CreateOutcomeUnknown, ReplicateRejected
from lorapin.adapters.repository import GuardRejected, Repository, TrainingStarts
from lorapin.adapters.settings import Settings
from lorapin.adapters.tables import ModelItem, PhotoSetItem, TrainingItem
from lorapin.domain.clock import new_id, now_iso, parse_iso
from lorapin.domain.errors import (
    EventPublishFailed,
    ForbiddenImageKey,
    ImageValidationFailed,
    ModeRequired,
    PhotosPending,
    TrainingInProgress,
    TriggerWordLocked,
    UpstreamRejected,
    UpstreamUnavailable,
)
from lorapin.domain.events import TrainingFailed
from lorapin.domain.photo_set import MAX_IMAGES, Finding, PhotoEntry, PhotoSetResult, build_photo_set, name_of
from lorapin.domain.replicate_objects import ReplicateTraining
from lorapin.domain.schedule import DurationEstimate, estimate_duration, first_training_check, size_key
from lorapin.domain.statuses import ModelStatus, TrainingStatus
from lorapin.domain.training_params import training_params_for
from lorapin.domain.versions import ModelName
from lorapin.observability import count, logger
from lorapin.services.generation import CREATE_LOOKUP_MARGIN
from lorapin.services.photo_library import BaseSet, current_set
from lorapin.services.ports import Functions, Replicate
from lorapin.services.uploads import UPLOAD_NAME_PATTERN

DEFAULT_TRIGGER_WORD = "TOK"  # the trainer's own default
TRIGGER_WORD_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{1,31}$"
TRAINING_ZIP_URL_SECONDS = 6 * 3600  # the trainer may queue for a while before it downloads the zip
DESTINATION_HARDWARE = "gpu-h100"
INLINE_INSPECTIONS = 8
"""Photos POST /trainings has inspected on the spot (by the inspector, synchronously) when their
arrival notification has not been handled yet; more than that, and the caller is asked to retry."""
INLINE_INSPECTION_SECONDS = 8.0
PHOTO_CHANGED = "PHOTO_CHANGED"


class TrainingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_keys: list[str] = Field(default_factory=list, max_length=MAX_IMAGES)
    exclude_keys: list[str] = Field(default_factory=list, max_length=MAX_IMAGES)
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
                 media: Callable[[], MediaStore], webhook_url: Callable[[TrainingItem], str],
                 publisher: EventPublisher, functions: Callable[[], Functions]) -> None:
        self._settings = settings
        self._repository = repository
        self._publisher = publisher
        self._replicate = replicate
        self._media = media
        self._webhook_url = webhook_url
        self._functions = functions
        self._photos = PhotoRecords(settings)

    # --- step 1: POST /trainings -----------------------------------------------------------------
    def start(self, user_id: str, request: TrainingRequest) -> StartedTraining:
        self._check_keys(user_id, [*request.image_keys, *request.exclude_keys])  # before anything is read (I6, I7)
        model = self._repository.get_model(user_id)
        if model is not None and model.in_flight_training_id:
            raise TrainingInProgress(details=[{"training_id": model.in_flight_training_id}])
        trigger_word = self._trigger_word(model, request.trigger_word)
        base = current_set(model, self._photos)
        if base.entries is None and request.mode is None:
            raise ModeRequired(details=[{"current_version_id": model.current_version.id}]
                               if model and model.current_version else [])
        mode = request.mode or ("merge" if base.entries else "replace")
        photo_set = self._photo_set(user_id, base, request, mode)
        if photo_set.blocking(request.acknowledge_warnings):
            raise ImageValidationFailed(self._validation_message(photo_set, request.acknowledge_warnings),
                                        details=[f.to_dict() for f in photo_set.findings])

        destination = ModelName.parse(model.destination) if model else self._ensure_destination(user_id)
        now = now_iso()
        params = training_params_for(len(photo_set.entries), self._settings.training_params_overrides)
        training = TrainingItem(
            new_id("trn"), user_id=user_id, seq=int(model.last_seq or 0) + 1 if model else 1,
            status=TrainingStatus.STARTING, mode=mode, image_count=len(photo_set.entries), params=params,
            trigger_word=trigger_word, destination=str(destination),
            trainer_model=self._settings.trainer_model, trainer_version=self._settings.trainer_version,
            created_at=now)
        entries = [entry.brought_by(training.training_id) for entry in photo_set.entries]
        new_model = None if model else self._repository.new_model(
            user_id, destination=str(destination), trigger_word=trigger_word, status=ModelStatus.TRAINING,
            created_at=now)
        starts = TrainingStarts(self._repository)
        try:
            starts.begin(model, training, new_model=new_model, photo_set=PhotoSetItem(
                user_id, training.training_id, entries=[e.to_dict() for e in entries], created_at=now))
        except GuardRejected as exc:
            raise TrainingInProgress() from exc
        try:
            self._functions().start(self._settings.training_submit_function,
                                    {"submit_training": {"user_id": user_id, "training_id": training.training_id}})
        except Exception:
            self._abandon(training, "could not hand the training to the submitter")
            raise
        return StartedTraining(training, photo_set.findings)

    def _photo_set(self, user_id: str, base: BaseSet, request: TrainingRequest, mode: Literal["merge", "replace"]
                   ) -> PhotoSetResult:
        new_keys = list(dict.fromkeys(request.image_keys))  # the same key twice is one photo
        previous = list(base.entries or [])
        records = self._photos.get_many(user_id, [*new_keys, *(e.key for e in previous)])
        pending = [key for key in new_keys if key not in records]
        findings: list[Finding] = []
        if pending:
            missing, still_pending = self._inspect_pending(user_id, pending)
            records.update(self._photos.get_many(user_id, [k for k in pending if k not in missing]))
            still_pending = [k for k in still_pending if k not in records]
            if still_pending:
                raise PhotosPending(details=[{"image_key": key} for key in still_pending])
            findings += [Finding("UNREADABLE_IMAGE", "error", f"{name_of(key)} was not found. Upload it with the "
                                 "form from POST /uploads before starting the training.", key) for key in missing]
        new: list[PhotoEntry] = []
        for key in new_keys:
            if key in records:
                findings += findings_of(records[key])
                entry = entry_of(records[key])
                if entry is not None:
                    new.append(entry)
        excluded = set(request.exclude_keys) - set(new_keys)
        kept = [entry for entry in previous if entry.key not in excluded
                and not (entry.key in records and records[entry.key].excluded_from == base.training_id
                         and entry.key not in new_keys)]
        return build_photo_set(kept, new, mode, previous_count=len(previous)).with_findings(findings)

    def _inspect_pending(self, user_id: str, keys: list[str]) -> tuple[list[str], list[str]]:
        """Photos with no inspection yet: those not uploaded at all (missing), and those whose
        notification is still on its way. A few are inspected now, the rest are queued; returns
        (missing, not inspected yet)."""
        media = self._media()
        missing = [key for key in keys if media.head(key) is None]
        waiting = [key for key in keys if key not in missing]
        if not waiting:
            return missing, []
        inspector = self._settings.photo_inspector_function
        now, later = waiting[:INLINE_INSPECTIONS], waiting[INLINE_INSPECTIONS:]
        try:
            self._functions().call(inspector, {"inspect": {"user_id": user_id, "keys": now,
                                                           "budget_seconds": INLINE_INSPECTION_SECONDS}})
        except FunctionFailed as exc:
            logger.warning("inline inspection failed", extra={"user_id": user_id, "error": str(exc)})
            later = waiting
        if later:
            self._functions().start(inspector, {"inspect": {"user_id": user_id, "keys": later,
                                                            "budget_seconds": 600.0}})
        return missing, waiting

    # --- step 2: after the 202 (the training submitter) ------------------------------------------
    def submit(self, user_id: str, training_id: str) -> str:
        """Zip the training's photo set and create the training on Replicate. At least once: a
        repeated or late call finds the work done (or taken over) and does nothing. Returns what it did."""
        training = self._repository.get_training(training_id)
        if training is None or training.user_id != user_id:
            return "unknown"
        starts = TrainingStarts(self._repository)
        attempt = starts.lease_submission(training)
        if attempt is None:
            return "not_starting"
        if attempt > 1:  # an earlier attempt may have got as far as Replicate
            try:
                found = self._find_on_replicate(training)
            except (UpstreamUnavailable, ReplicateRejected):
                return "unconfirmed"  # creating again could make a second one: the reconciler looks later
            if found is not None:
                self._attach(starts, training, found)
                return "adopted"
        entries = self._photos.get_set(user_id, training_id) or []
        try:
            zip_url = self._upload_zip(training, entries)
        except ObjectChanged as exc:
            self._abandon(training, f"{name_of(exc.key)} changed after it was checked; upload it again "
                          "and start the training again.", error_code=PHOTO_CHANGED, holder=True)
            return "photo_changed"
        except Exception as exc:  # S3 faults included: nothing has reached Replicate
            logger.exception("training zip failed", extra={"training_id": training_id})
            self._abandon(training, f"could not prepare the photos: {exc}", holder=True)
            return "failed"
        created = self._create_on_replicate(training, zip_url)
        if isinstance(created, str):
            return created
        self._attach(starts, training, created)
        return "submitted"

    def _attach(self, starts: TrainingStarts, training: TrainingItem, created: ReplicateTraining) -> None:
        estimate = self._expected_duration(int((training.params or {}).get("steps", 1000)))
        starts.attach_replicate_training(training, created.id, created.status,
                                         first_check=first_training_check(parse_iso(training.created_at), estimate))

    def _find_on_replicate(self, training: TrainingItem) -> ReplicateTraining | None:
        """The training an earlier create made, if any; raises when Replicate's list cannot tell."""
        return self._replicate().find_training(training.training_id,
                                               parse_iso(training.created_at) - CREATE_LOOKUP_MARGIN)

    def _create_on_replicate(self, training: TrainingItem, zip_url: str
                             ) -> ReplicateTraining | str:
        """Replicate's training, or what happened instead: "failed" (refused, or certainly not
        created: the slot is freed) or "unconfirmed" (Replicate cannot tell yet whether it created
        it: the training stays `starting`, due for the reconciler's look-up)."""
        params = dict(training.params or {})
        try:
            return self._replicate().create_training(
                trainer_model=training.trainer_model, trainer_version=training.trainer_version,
                destination=ModelName.parse(training.destination),
                input={**params, "input_images": zip_url, "trigger_word": training.trigger_word},
                webhook=self._webhook_url(training))
        except ReplicateRejected as exc:
            self._abandon(training, f"Replicate refused the training: {exc.detail}", holder=True)
            return "failed"
        except CreateOutcomeUnknown as exc:
            logger.warning("training create outcome unknown", extra={"training_id": training.training_id,
                                                                      "error": exc.message})
            try:
                found = self._find_on_replicate(training)
            except (UpstreamUnavailable, ReplicateRejected):
                return "unconfirmed"
            if found is None:  # certainly absent: the user may simply try again
                self._abandon(training, f"Replicate did not create the training: {exc.message}", holder=True)
                return "failed"
            count("AdoptedTrainings")
            return found
        except Exception as exc:  # an outage: nothing was created
            self._abandon(training, f"could not start: {exc}", holder=True)
            return "failed"

    def _abandon(self, training: TrainingItem, reason: str, *,
                 error_code: str | None = None, holder: bool = False) -> None:
        abandon_training(self._repository, self._publisher, training, reason, error_code=error_code, holder=holder)

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

    def _upload_zip(self, training: TrainingItem, entries: list[PhotoEntry]) -> str:
        """The trainer's input: one zip of the final photo set, streamed from our bucket
        (REQUIREMENTS §6), each photo exactly as it was inspected."""
        media = self._media()
        members = [ZipMember(f"{index:03d}-{name_of(entry.object_key)}", entry.object_key,
                             None if entry.train_key else entry.etag)
                   for index, entry in enumerate(entries)]
        key = f"{user_prefix(training.user_id)}trainings/{training.training_id}.zip"
        media.write_zip(key, members)
        return media.presigned_get(key, expires_in=TRAINING_ZIP_URL_SECONDS)


@dataclass(frozen=True)
class Abandoned:
    """A training `abandon_training` ended; `announced`: its `TrainingFailed` reached EventBridge
    (False: PutEvents failed and the event waits in the outbox for the reconciler)."""

    announced: bool


def abandon_training(repository: Repository, publisher: EventPublisher, training: TrainingItem, reason: str, *,
                     status: str = TrainingStatus.FAILED, error_code: str | None = None,
                     holder: bool = False) -> Abandoned | None:
    """Record a training that never reached Replicate as ended (`status`), free its slot and
    announce it (`TrainingFailed`, from the outbox); None when a submission holds it or it moved
    on meanwhile. The training API, the submitter, a cancel and the reconciler all end such a
    training this way."""
    model = repository.get_model(training.user_id)
    failed = TrainingFailed(user_id=training.user_id, training_id=training.training_id, status=status, error=reason,
                            current_version_id=model.current_version.id if model and model.current_version else None)
    outbox = TrainingStarts(repository).abandon(training, failed, error_code=error_code, lease_holder=holder)
    if outbox is None:
        return None
    try:
        Outbox(publisher).publish_leased(TrainingItem(training.training_id), outbox)
    except EventPublishFailed as exc:  # the reconciler publishes it once the lease lapses
        logger.warning("TrainingFailed left in the outbox", extra={"training_id": training.training_id,
                                                                    "error": str(exc)})
        return Abandoned(announced=False)
    return Abandoned(announced=True)
