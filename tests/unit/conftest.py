"""Unit tests run without a network: no socket may connect (moto runs in-process here), and the
services are wired by the composition root with in-memory Replicate and bus fakes."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from lorapin.adapters.repository import Repository, TrainingStarts
from lorapin.adapters.settings import Settings
from lorapin.adapters.tables import PhotoSetItem, TrainingItem
from lorapin.domain.clock import new_id, now_iso, parse_iso
from lorapin.domain.schedule import estimate_duration, first_training_check
from lorapin.domain.statuses import ModelStatus, TrainingStatus
from lorapin.domain.versions import ModelName
from lorapin.runtime import Runtime
from tests.fakes import FakeReplicate, InProcessFunctions, ManualClock, RecordingBus


class SocketsAreOff(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """A unit test that reaches for the network fails loudly instead of waiting on it."""

    def refuse(_socket: socket.socket, address: Any) -> None:
        raise SocketsAreOff(f"a unit test tried to connect to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


@dataclass
class Services:
    """The services as the functions get them (`Runtime`), on in-memory AWS, Replicate and bus."""

    runtime: Runtime
    replicate: FakeReplicate
    bus: RecordingBus
    functions: InProcessFunctions
    user: str  # a user of this test's own

    @property
    def repository(self) -> Repository:
        return self.runtime.repository

    def start_training(self, user: str | None = None, *, trigger_word: str = "TOK") -> TrainingItem:
        """A training started the way the training API starts one (slot claimed, seq assigned,
        created on Replicate with our webhook), without photos."""
        user = user or self.user
        settings = self.runtime.settings
        model = self.repository.get_model(user)
        destination = ModelName.parse(model.destination) if model else ModelName(settings.replicate_owner,
                                                                                  f"lorapin-{uuid.uuid4().hex[:20]}")
        now = now_iso()
        if model is None:
            self.replicate.create_model(destination)
        new_model = None if model else self.repository.new_model(user, destination=str(destination),
                                                                 trigger_word=trigger_word,
                                                                 status=ModelStatus.TRAINING, created_at=now)
        training = TrainingItem(new_id("trn"), user_id=user, seq=int(model.last_seq) + 1 if model else 1,
                                status=TrainingStatus.STARTING, mode="replace", image_count=12,
                                trigger_word=model.trigger_word if model else trigger_word,
                                destination=str(destination), trainer_model=settings.trainer_model,
                                trainer_version=settings.trainer_version, params={"steps": 1000}, created_at=now)
        TrainingStarts(self.repository).begin(model, training, new_model=new_model, photo_set=PhotoSetItem(
            user, training.training_id, entries=[], created_at=now))
        created = self.replicate.create_training(
            trainer_model=settings.trainer_model, trainer_version=settings.trainer_version, destination=destination,
            input={"input_images": "https://example.invalid/photos.zip", "trigger_word": training.trigger_word},
            webhook=self.runtime.training_webhook_url(training))
        TrainingStarts.attach_replicate_training(
            training, created.id, created.status,
            first_check=first_training_check(parse_iso(now), estimate_duration(1000)))
        stored = self.repository.get_training(training.training_id)
        assert stored is not None
        return stored

    def train(self, user: str | None = None) -> str:
        """A training that succeeded through the completion path; the version it made current."""
        training = self.start_training(user)
        finished = self.replicate.finish_training(str(training.replicate_training_id))
        self.runtime.completion().apply(finished, training_id_hint=training.training_id)
        model = self.repository.get_model(training.user_id)
        assert model is not None and model.current_version is not None
        return str(model.current_version.id)


def services_on(stack: Any) -> Services:
    replicate, bus, functions = FakeReplicate(), RecordingBus(), InProcessFunctions()
    runtime = Runtime(Settings.from_env(stack.function_env["TrainingApiFunction"]), replicate=replicate,
                      events_client=bus, functions=functions)
    return Services(runtime, replicate, bus, functions.bind(runtime), user=f"user-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def services(shared_in_process_aws: Any) -> Services:
    """Fresh fakes for each test, on in-process AWS shared by the module (each test has its own user)."""
    return services_on(shared_in_process_aws)


@pytest.fixture
def isolated_services(in_process_aws: Any) -> Services:
    """Fresh fakes on fresh tables: for what reads across users (the reconciler's scans)."""
    return services_on(in_process_aws)


@pytest.fixture
def clock() -> Iterator[ManualClock]:
    """Time that moves only when the test says so (every timestamp and schedule follows it)."""
    from lorapin.domain import clock as lorapin_clock

    manual = ManualClock()
    previous = lorapin_clock.current()
    lorapin_clock.use(manual)
    yield manual
    lorapin_clock.use(previous)
