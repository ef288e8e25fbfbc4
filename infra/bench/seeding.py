"""Trainings started the way the training API starts them (as `tests/harness.py` `seed_training`
does: slot claimed, seq assigned, a real training created on the Replicate emulator with our
webhook URL), then finished on the emulator with the webhook held back, so the bench holds the
exact signed delivery Replicate would have sent and decides when, how often and in what order."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from infra.local.functions import apply_environment
from infra.local.stack import LOCAL_API_TOKEN, LocalStack

if TYPE_CHECKING:
    from lorapin.adapters.replicate_gateway import ReplicateGateway

FUNCTION_ID = "TrainingApiFunction"
TRIGGER_WORD = "TOK"


@dataclass
class SeededTraining:
    """One training of ours, its Replicate twin, and (once finished) the webhook it would send."""

    user_id: str
    training_id: str
    seq: int
    replicate_id: str
    destination: str
    webhook_url: str
    outcome: str  # what the emulator finishes it with: succeeded | failed | canceled
    body: str = ""  # the training object the webhook carries
    version_id: str | None = None  # the destination's new version, when it succeeded


class Seeder:
    """Starts and finishes trainings against a running local stack, from the bench's own thread(s)."""

    def __init__(self, stack: LocalStack) -> None:
        from lorapin.adapters.repository import Repository
        from lorapin.adapters.settings import Settings
        from lorapin.runtime import Runtime

        apply_environment(stack.aws.function_env[FUNCTION_ID])
        self.settings = Settings.from_env()
        self.runtime = Runtime(self.settings)
        self.repository = Repository(self.settings)
        self.emulator = stack.emulator
        self._local = threading.local()

    def _gateway(self) -> ReplicateGateway:
        from lorapin.adapters.replicate_gateway import ReplicateGateway

        gateway: ReplicateGateway | None = getattr(self._local, "gateway", None)
        if gateway is None:
            gateway = self._local.gateway = ReplicateGateway(LOCAL_API_TOKEN, self.emulator.url)
        return gateway

    def start(self, user_id: str, outcome: str, *, release_slot: bool = False) -> SeededTraining:
        """Start the user's next training; `release_slot` frees the user's one training slot (I2)
        at once, so that several trainings of one user can be in flight and their webhooks race."""
        from lorapin.adapters.repository import TrainingStarts
        from lorapin.adapters.tables import PhotoSetItem, TrainingItem
        from lorapin.domain.clock import new_id, now_iso
        from lorapin.domain.versions import ModelName
        from lorapin.services.training_start import destination_name

        settings, gateway = self.settings, self._gateway()
        model = self.repository.get_model(user_id)
        now = now_iso()
        destination = model.destination if model else str(destination_name(settings.replicate_owner, user_id))
        trigger_word = model.trigger_word if model else TRIGGER_WORD
        new_model = None
        if model is None:
            if not gateway.model_exists(ModelName.parse(destination)):
                gateway.create_model(ModelName.parse(destination))
            new_model = self.repository.new_model(user_id, destination=destination, trigger_word=trigger_word,
                                                  status="training", created_at=now)
        training = TrainingItem(new_id("trn"), user_id=user_id, seq=int(model.last_seq if model else 0) + 1,
                                status="starting", mode="replace", image_count=12, trigger_word=trigger_word,
                                destination=destination, trainer_model=settings.trainer_model,
                                trainer_version=settings.trainer_version, params={"steps": 1000}, created_at=now)
        TrainingStarts(self.repository).begin(model, training, new_model=new_model, photo_set=PhotoSetItem(
            user_id, training.training_id, entries=[], created_at=now))
        webhook_url = self.runtime.training_webhook_url(training)
        created = gateway.create_training(
            trainer_model=settings.trainer_model, trainer_version=settings.trainer_version,
            destination=ModelName.parse(training.destination),
            input={"input_images": "https://example.invalid/photos.zip", "trigger_word": training.trigger_word},
            webhook=webhook_url)
        TrainingStarts.attach_replicate_training(training, created.id, created.status)
        if release_slot:
            self.repository.settle_model_after_training(user_id, training.training_id)
        return SeededTraining(user_id, training.training_id, int(training.seq), created.id, training.destination,
                              webhook_url, outcome)

    def start_many(self, plan: dict[str, list[str]], *, threads: int = 4) -> list[SeededTraining]:
        """`plan`: user → outcomes of that user's trainings, in seq order (users seeded in parallel)."""

        def one_user(item: tuple[str, list[str]]) -> list[SeededTraining]:
            user_id, outcomes = item
            return [self.start(user_id, outcome, release_slot=n < len(outcomes) - 1)
                    for n, outcome in enumerate(outcomes)]

        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bench-seed") as pool:
            return [training for trainings in pool.map(one_user, plan.items()) for training in trainings]

    def finish(self, trainings: list[SeededTraining]) -> None:
        """Finish each training on the emulator with its planned outcome (a new version on success),
        its webhook held back; keep the body it would have carried. (The emulator's queue of
        outcomes is taken at creation, by whichever training is created next: naming the outcome
        here is what ties it to this training.)"""
        for training in trainings:
            self.emulator.suppress_webhooks(1)
            self.emulator.complete_training_now(training.replicate_id, training.outcome)
            replicate_object = self.emulator.trainings[training.replicate_id]
            training.body = json.dumps(replicate_object)
            if training.outcome == "succeeded":
                training.version_id = str(replicate_object["output"]["version"]).split(":", 1)[1]
