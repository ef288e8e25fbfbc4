"""Generations: every prediction is pinned to the model's current version, read at request time
(R1), with the trigger word that version was trained with (R4), or to an earlier version of the
caller's own model when the request names one (to compare versions like for like, same prompt and
seed). A generation asked for while the first training runs waits, and the
`ModelVersionActivated` consumer releases it."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from lorapin.adapters.guards import GuardRejected
from lorapin.adapters.media import MediaStore, extension_for, generation_output_key
from lorapin.adapters.replicate_gateway import CreateOutcomeUnknown, ReplicateRejected
from lorapin.adapters.repository import Admitted, Repository
from lorapin.adapters.tables import GenerationItem, ModelItem, VersionInfo, VersionItem
from lorapin.domain.clock import new_id, now_iso, parse_iso, utc_now
from lorapin.domain.completion import Outcome
from lorapin.domain.errors import (
    GenerationNotFound,
    NoModelToGenerateWith,
    NotYetRecorded,
    RateLimited,
    UnknownVersion,
    UpstreamRejected,
    UpstreamUnavailable,
)
from lorapin.domain.limits import GenerationLimits, admit
from lorapin.domain.prompts import ensure_trigger_word
from lorapin.domain.replicate_objects import ReplicatePrediction
from lorapin.domain.schedule import OUTPUTS_KEPT
from lorapin.domain.statuses import GenerationStatus
from lorapin.domain.versions import VersionRef
from lorapin.observability import count, logger, milliseconds
from lorapin.services.ports import Replicate

if TYPE_CHECKING:  # the request model is the API's: the webhook function completes predictions without it
    from lorapin.services.generation_request import GenerationRequest

ADMISSION_ATTEMPTS = 3
MAX_SEED = 2**31 - 1
"""Every prediction is sent a seed (the caller's, or a random one) and records it: an image can be
made again, two versions compared like for like, and a prediction found by its exact input."""

class Generations:
    def __init__(self, repository: Repository, replicate: Callable[[], Replicate],
                 media: Callable[[], MediaStore], webhook_url: Callable[[str], str],
                 limits: GenerationLimits | None = None) -> None:
        self._repository = repository
        self._replicate = replicate
        self._media = media
        self._webhook_url = webhook_url
        self._limits = limits or GenerationLimits()

    # --- the API ---------------------------------------------------------------------------------
    def request(self, user_id: str, request: GenerationRequest) -> GenerationItem:
        """A new generation, admitted under the user's limits (429 `RATE_LIMITED` otherwise). The
        limits are counted in the write that records it, conditioned on what was read: a request
        that raced another is decided again on fresh values."""
        for _ in range(ADMISSION_ATTEMPTS):
            try:
                return self._request_once(user_id, request)
            except GuardRejected:
                continue
        raise RateLimited("Too many generations at once: try again.", retry_after_seconds=1)

    def _request_once(self, user_id: str, request: GenerationRequest) -> GenerationItem:
        model = self._repository.get_model(user_id)  # strongly consistent (R1)
        version: VersionInfo | VersionItem | None = None
        if request.version_id is not None:
            version = self._repository.get_version(user_id, request.version_id)
            if version is None or model is None:  # another user's, or an id never made (I7)
                raise UnknownVersion()
        if model is None:
            raise NoModelToGenerateWith("No model yet: start a training first.")
        admitted = self._admit(model)
        generation = self._new_generation(user_id, request)
        version = version or model.current_version
        if version is not None:
            return self._start(generation, version, admitted)
        if not model.in_flight_training_id:
            raise NoModelToGenerateWith("Your model has no version: its training failed. Start a new training.")
        generation.status = GenerationStatus.WAITING_FOR_MODEL
        generation.waiting_user_id = user_id
        self._repository.put_generation(generation, admitted)
        # The first version may have been activated between our read and our write, and its event
        # consumer may have looked for waiting generations before ours existed: check once more.
        model = self._repository.get_model(user_id)
        if model is not None and model.current_version is not None:
            self._release_one(generation, model.current_version)
        return self._repository.get_generation(generation.generation_id) or generation

    def _admit(self, model: ModelItem) -> Admitted:
        admission = admit(utc_now(), window=model.generation_window,
                          window_count=int(model.generation_window_count or 0),
                          in_flight=int(model.generations_in_flight or 0), limits=self._limits)
        if not admission.allowed:
            count("GenerationsRateLimited")
            raise RateLimited(f"Too many generations: {admission.reason}.",
                              retry_after_seconds=admission.retry_after_seconds)
        return Admitted(model, admission.window, admission.window_count, self._limits.in_flight)

    def _new_generation(self, user_id: str, request: GenerationRequest) -> GenerationItem:
        seed = request.seed if request.seed is not None else secrets.randbelow(MAX_SEED + 1)
        return GenerationItem(new_id("gen"), user_id=user_id, request=request.model_dump(), seed=seed,
                              prompt=request.prompt, created_at=now_iso())

    def get(self, user_id: str, generation_id: str) -> GenerationItem:
        generation = self._repository.get_generation(generation_id)
        if generation is None or generation.user_id != user_id:  # I7: same answer as "absent"
            raise GenerationNotFound()
        return generation

    # --- the consumer of ModelVersionActivated and TrainingFailed --------------------------------
    def release_waiting(self, user_id: str, version_id: str) -> int:
        """Start every generation of `user_id` waiting for a model, if `version_id` is still current.

        Safe under duplicate events: each generation is claimed by a conditional write. Each is
        handled on its own: one Replicate refuses is failed and the others go on; one that could
        not be created yet goes back to waiting, and the event is retried for it."""
        model = self._repository.get_model(user_id)
        if model is None or model.current_version is None or model.current_version.id != version_id:
            return 0
        released, retry_later = 0, []
        for generation in self._repository.waiting_generations(user_id):
            try:
                released += self._release_one(generation, model.current_version)
            except UpstreamRejected:
                continue  # recorded failed by _submit: nothing more to do for it
            except UpstreamUnavailable as exc:
                retry_later.append(f"{generation.generation_id}: {exc.message}")
        if retry_later:
            raise UpstreamUnavailable(f"could not release {len(retry_later)} generation(s): {retry_later}")
        return released

    def fail_waiting(self, user_id: str) -> int:
        """A training failed: if the user now has no version and none training, what waited for the
        first version will never get one. Fails those generations; how many."""
        model = self._repository.get_model(user_id)
        if model is None or model.current_version is not None or model.in_flight_training_id:
            return 0
        failed = 0
        for generation in self._repository.waiting_generations(user_id):
            failed += self._repository.fail_generation(
                generation, error="The model's training failed: there is no version to generate with.",
                error_code=TRAINING_FAILED, completed_at=now_iso())
        return failed

    def _release_one(self, generation: GenerationItem, version: VersionInfo) -> int:
        prompt = ensure_trigger_word(generation.request["prompt"], version.trigger_word)
        if not self._repository.claim_waiting_generation(generation, version_ref=version.ref, prompt=prompt):
            return 0
        try:
            self._submit(generation, version.ref)
        except UpstreamRejected:
            raise
        except UpstreamUnavailable:
            self._repository.return_to_waiting(generation)  # a no-op if it was failed meanwhile
            raise
        return 1

    # --- creating the prediction -----------------------------------------------------------------
    def _start(self, generation: GenerationItem, version: VersionInfo | VersionItem, admitted: Admitted
               ) -> GenerationItem:
        generation.status = GenerationStatus.STARTING
        generation.model_version_ref = version.ref
        generation.prompt = ensure_trigger_word(generation.request["prompt"], version.trigger_word)
        self._repository.put_generation(generation, admitted)  # before the call, so its webhook finds it
        try:
            self._submit(generation, version.ref)
        except UpstreamRejected:
            raise
        except UpstreamUnavailable as exc:
            self._repository.fail_generation(generation, error=exc.message, completed_at=now_iso())
            raise
        return generation  # as stored: the attach wrote it back (UpdateItem returns the item), no re-read

    def prediction_input(self, generation: GenerationItem) -> dict[str, Any]:
        request = generation.request
        return {"prompt": generation.prompt, "num_outputs": request["num_outputs"],
                "aspect_ratio": request["aspect_ratio"], "output_format": "png", "seed": int(generation.seed)}

    def _submit(self, generation: GenerationItem, version_ref: str) -> None:
        """Create the prediction. Refused: the generation fails (`UpstreamRejected`). Certainly not
        created: `UpstreamUnavailable`, the caller decides. Maybe created (a timeout, a 5xx): it is
        looked up and adopted, never created twice; when that cannot be told yet, the generation
        stays `starting` without a prediction and the reconciler finds out (I8)."""
        version, inputs = VersionRef.parse(version_ref), self.prediction_input(generation)
        try:
            prediction = self._replicate().create_prediction(version, inputs,
                                                             self._webhook_url(generation.generation_id))
        except ReplicateRejected as exc:
            self._repository.fail_generation(generation, error=exc.detail, completed_at=now_iso())
            raise UpstreamRejected(f"Replicate refused the prediction: {exc.detail}") from exc
        except CreateOutcomeUnknown as exc:
            logger.warning("prediction create outcome unknown", extra={"generation_id": generation.generation_id,
                                                                        "error": exc.message})
            try:
                found = self.look_up_prediction(generation)
            except (UpstreamUnavailable, ReplicateRejected):
                return  # Replicate cannot tell now: the generation stays `starting`, the reconciler looks later
            if found is None:  # certainly never created: safe to say "try again"
                raise
            prediction = found
        status = prediction.normalised_status if not prediction.is_terminal else GenerationStatus.PROCESSING
        self._repository.attach_prediction(generation, prediction.id, status)

    def look_up_prediction(self, generation: GenerationItem) -> ReplicatePrediction | None:
        """The prediction a timed-out create may have made for `generation`, found by its exact
        version and input; None when certainly absent. Raises `UpstreamUnavailable` when Replicate
        cannot tell now."""
        version = VersionRef.parse(str(generation.model_version_ref))
        since = parse_iso(generation.created_at) - CREATE_LOOKUP_MARGIN
        return self._replicate().find_prediction(version, self.prediction_input(generation), since)

    # --- the prediction webhook ------------------------------------------------------------------
    def complete_prediction(self, prediction: ReplicatePrediction, generation_id: str | None) -> Outcome:
        generation = self._repository.get_generation(generation_id) if generation_id else None
        if generation is None:
            return Outcome.IGNORED_UNKNOWN
        if generation.replicate_prediction_id is None and generation.status == GenerationStatus.STARTING:
            raise NotYetRecorded(f"Generation {generation.generation_id} is still being created; deliver again.")
        if generation.replicate_prediction_id != prediction.id:
            return Outcome.IGNORED_UNKNOWN
        if generation.status in GenerationStatus.terminal():
            return Outcome.DUPLICATE
        if not prediction.is_terminal:
            return Outcome.RECORDED
        status = prediction.normalised_status
        if status != GenerationStatus.SUCCEEDED:
            return self._record(generation, status=status, keys=[], error=prediction.error_message)
        if not prediction.output_urls:
            return self._fail(generation, NO_OUTPUT, "Replicate reported success but no image.")
        try:
            keys = self._copy_outputs(generation, prediction)
        except UpstreamUnavailable:
            if not outputs_expired(prediction):
                raise  # Replicate still keeps them for a while: the redelivery or the reconciler tries again
            return self._fail(generation, OUTPUTS_EXPIRED,
                              "The images could not be copied before Replicate deleted them (after an hour).")
        return self._record(generation, status=status, keys=keys, error=None)

    def _record(self, generation: GenerationItem, *, status: str, keys: list[str], error: str | None) -> Outcome:
        completed_at = now_iso()
        recorded = self._repository.complete_generation(generation, status=status, output_keys=keys, error=error,
                                                        completed_at=completed_at)
        if recorded:
            seconds = (datetime.fromisoformat(completed_at) - datetime.fromisoformat(generation.created_at))
            milliseconds(f"Generation{status.title()}Latency", seconds.total_seconds() * 1000)
        return Outcome.RECORDED if recorded else Outcome.DUPLICATE

    def _fail(self, generation: GenerationItem, code: str, message: str) -> Outcome:
        count(f"Generation{code.title().replace('_', '')}")
        logger.warning("generation failed", extra={"generation_id": generation.generation_id, "code": code})
        failed = self._repository.fail_generation(generation, error=message, error_code=code, completed_at=now_iso())
        return Outcome.RECORDED if failed else Outcome.DUPLICATE

    def _copy_outputs(self, generation: GenerationItem, prediction: ReplicatePrediction) -> list[str]:
        """Replicate deletes outputs after an hour: keep our own copies before saying `succeeded`."""
        keys = []
        for index, url in enumerate(prediction.output_urls):
            data, content_type = self._replicate().download(url)
            key = generation_output_key(generation.user_id, generation.generation_id, index,
                                        extension_for(content_type, url))
            self._media().put(key, data, content_type)
            keys.append(key)
        return keys


CREATE_LOOKUP_MARGIN = timedelta(minutes=1)  # our clock and Replicate's need not agree to the second
TRAINING_FAILED = "TRAINING_FAILED"
NO_OUTPUT = "NO_OUTPUT"
OUTPUTS_EXPIRED = "OUTPUTS_EXPIRED"


def outputs_expired(prediction: ReplicatePrediction) -> bool:
    """Whether Replicate has deleted the prediction's outputs (an hour after it completed)."""
    completed = prediction.completed_at
    return completed is not None and utc_now() - parse_iso(completed) >= OUTPUTS_KEPT
