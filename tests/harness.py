"""One place that assembles the local world for integration tests and the local stack alike."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests

from infra.local.apigw import http_api_event
from infra.local.aws_stack import LocalAwsStack
from infra.local.dispatcher import EventDispatcher
from infra.local.functions import apply_environment
from infra.local.http_api import LocalHttpApi
from infra.local.photo_upload import send_photo
from infra.local.polling import poll_until
from infra.local.stack import LocalStack
from infra.local.template import Template
from infra.local.tokens import issue_token
from lorapin.adapters.repository import Repository
from lorapin.adapters.settings import Settings
from lorapin.http.webhook_signature import sign_webhook

UPLOAD_BATCH = 50  # POST /uploads hands out at most this many uploads at once


@dataclass
class Harness:
    local: LocalStack
    _marks: tuple[int, int, int] = (0, 0, 0)  # calls, deliveries, events seen before this test

    # --- one test at a time in a shared world ---------------------------------------------------
    def begin_test(self) -> None:
        self._marks = (len(self.emulator.api_calls()), len(self.emulator.deliveries), len(self.dispatcher.delivered))

    def end_test(self) -> None:
        """Leave nothing running for the next test: unfinished trainings and predictions are
        canceled in the emulator, webhook deliveries finish, bus events reach their function,
        and the emulator's knobs (timings, outcomes, faults) are back to their defaults."""
        self.emulator.quiesce()
        self.dispatcher.wait_drained()
        self.emulator.reset()

    def tables_snapshot(self) -> dict[str, list[str]]:
        """Every item of every table of this world, for "nothing was written" checks."""
        dynamodb = self.stack.client("dynamodb")
        snapshot = {}
        for logical_id in ("ModelsTable", "TrainingsTable", "VersionsTable", "GenerationsTable", "PhotosTable",
                           "PhotoSetsTable"):
            items = dynamodb.get_paginator("scan").paginate(TableName=self.name(logical_id)).build_full_result()
            snapshot[logical_id] = sorted(json.dumps(item, sort_keys=True) for item in items["Items"])
        return snapshot

    def replicate_calls(self) -> list[dict[str, Any]]:
        """The Replicate API calls made since this test began, oldest first."""
        return self.emulator.api_calls()[self._marks[0]:]

    def webhook_deliveries(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Webhook delivery attempts the emulator made since this test began (`kind`: training | prediction)."""
        with self.emulator._lock:
            made = list(self.emulator.deliveries[self._marks[1]:])
        return [d for d in made if kind is None or d.get("kind") == kind]

    def events(self, detail_type: str | None = None) -> list[dict[str, Any]]:
        """Bus events delivered to their function since this test began."""
        return [e for e in self.dispatcher.delivered[self._marks[2]:]
                if detail_type is None or e.get("detail-type") == detail_type]

    def quiet(self) -> None:
        """Wait until everything set in motion so far has happened: webhook deliveries (and their
        retries) answered, and the events they published delivered. Then "nothing more" is a fact."""
        self.emulator.wait_idle()
        self.dispatcher.wait_drained()

    @classmethod
    @contextlib.contextmanager
    def start(cls, endpoint_url: str | None, emulator: Any, *, prefix: str = "lorapin-local",
              template: Template | None = None) -> Iterator[Harness]:
        from aws_lambda_powertools.utilities import parameters

        saved = {key: os.environ.get(key) for key in ("AWS_ENDPOINT_URL", "PUBLIC_API_URL", "REPLICATE_BASE_URL")}
        parameters.clear_caches()  # a provider built for another endpoint must not be reused
        try:
            with LocalStack.running(aws_endpoint=endpoint_url, emulator=emulator, template=template,
                                    prefix=prefix) as local:
                yield cls(local)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    @property
    def stack(self) -> LocalAwsStack:
        return self.local.aws

    @property
    def emulator(self) -> Any:
        return self.local.emulator

    @property
    def api(self) -> LocalHttpApi:
        return self.local.api

    @property
    def dispatcher(self) -> EventDispatcher:
        return self.local.dispatcher

    # --- talking to the API as a frontend would -------------------------------------------------
    def call(self, method: str, path: str, *, user: str | None = None, body: Any = None,
             headers: dict[str, str] | None = None) -> requests.Response:
        all_headers = {"content-type": "application/json", **(headers or {})}
        if user:
            all_headers["authorization"] = f"Bearer {issue_token(user)}"
        data = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
        return requests.request(method, f"{self.api.url}{path}", data=data, headers=all_headers, timeout=30)

    # --- the data layer, as the training API would use it ---------------------------------------
    def env(self, function_id: str = "ReplicateWebhookFunction") -> dict[str, str]:
        return self.stack.function_env[function_id]

    def use_function_env(self, function_id: str = "ReplicateWebhookFunction") -> None:
        apply_environment(self.env(function_id))

    def repository(self) -> Repository:
        """The data layer on this world's tables, as the functions see it."""
        self.use_function_env()
        return Repository(Settings.from_env())

    def name(self, logical_id: str) -> str:
        return self.stack.names[logical_id]

    def signed_webhook(self, kind: str, payload: dict[str, Any], *, query: str = "", webhook_id: str | None = None,
                       at: int | None = None, secret: str | None = None) -> dict[str, Any]:
        """An API Gateway event of a webhook delivery, signed like Replicate signs it."""
        raw = json.dumps(payload)
        headers = {"content-type": "application/json", **sign_webhook(
            raw, secret or self.emulator.signing_secret, webhook_id=webhook_id or f"msg_{time.time_ns()}",
            timestamp=int(time.time()) if at is None else at)}
        return http_api_event("POST", f"/webhooks/replicate/{kind}", body=raw, headers=headers, query=query)

    def post_webhook(self, kind: str, payload: dict[str, Any], **kwargs: Any) -> requests.Response:
        event = self.signed_webhook(kind, payload, **kwargs)
        url = f"{self.api.url}/webhooks/replicate/{kind}"
        if event.get("rawQueryString"):
            url += "?" + event["rawQueryString"]
        return requests.post(url, data=event["body"], headers=event["headers"], timeout=30)


def upload_photos(world: Harness, user: str, photos: list[bytes], content_type: str = "image/jpeg", *,
                  inspected: bool = True) -> list[str]:
    """Photos sent the way a frontend sends them (POST /uploads, then each presigned form POST to
    moto's S3); `inspected`: wait until S3's notifications have reached the photo inspector."""
    keys: list[str] = []
    for start in range(0, len(photos), UPLOAD_BATCH):
        batch = photos[start:start + UPLOAD_BATCH]
        answer = world.call("POST", "/uploads", user=user, body={"count": len(batch), "content_type": content_type})
        assert answer.status_code == 201, answer.text
        for photo, slot in zip(batch, answer.json()["uploads"], strict=True):
            sent = send_photo(slot, photo, content_type=content_type)
            assert sent.status_code == 204, sent.text
            keys.append(slot["key"])
    if inspected:
        world.dispatcher.wait_drained()
    return keys


def wait_for(condition: Callable[[], Any], *, timeout: float = 30.0, interval: float | None = None,
             message: str = "condition") -> Any:
    """Poll until `condition()` is truthy; fail with `message` after `timeout` seconds."""
    value = poll_until(condition, timeout=timeout, interval=interval)
    if not value:
        raise AssertionError(f"timed out after {timeout}s waiting for {message}")
    return value


def seed_training(world: Harness, user_id: str, *, trigger_word: str = "TOK", image_count: int = 12) -> str:
    """Start a training the way the training API does (slot claimed, seq assigned, Replicate
    training created with our webhook), without photos: for tests of the core pipeline."""
    from lorapin.adapters.replicate_gateway import ReplicateGateway
    from lorapin.adapters.repository import Repository, TrainingStarts
    from lorapin.adapters.settings import Settings
    from lorapin.adapters.tables import ModelItem, PhotoSetItem, TrainingItem
    from lorapin.domain.clock import new_id, now_iso
    from lorapin.domain.versions import ModelName
    from lorapin.runtime import Runtime
    from lorapin.services.training_start import destination_name

    world.use_function_env("TrainingApiFunction" if "TrainingApiFunction" in world.stack.function_env
                           else "ReplicateWebhookFunction")
    settings = Settings.from_env()
    runtime = Runtime(settings)
    repository = Repository(settings)
    gateway = ReplicateGateway("r8_local", world.emulator.url)
    # A previous training's slot is freed just after its activation: wait for it, as a client
    # retrying a 409 would.
    def free_slot() -> tuple[ModelItem | None] | None:
        found = repository.get_model(user_id)
        return (found,) if found is None or not found.in_flight_training_id else None

    (model,) = wait_for(free_slot, message=f"{user_id}'s training slot")
    now = now_iso()
    destination = destination_name(settings.replicate_owner, user_id)  # the production naming
    new_model = None
    if model is None:
        if not gateway.model_exists(destination):
            gateway.create_model(destination)
        new_model = repository.new_model(user_id, destination=str(destination), trigger_word=trigger_word,
                                         status="training", created_at=now)
    training = TrainingItem(new_id("trn"), user_id=user_id, seq=int(model.last_seq if model else 0) + 1,
                            status="starting", mode="replace", image_count=image_count,
                            trigger_word=model.trigger_word if model else trigger_word,
                            destination=model.destination if model else str(destination),
                            trainer_model=settings.trainer_model, trainer_version=settings.trainer_version,
                            params={"steps": 1000}, created_at=now)
    TrainingStarts(repository).begin(model, training, new_model=new_model, photo_set=PhotoSetItem(
        training.user_id, training.training_id, entries=[], created_at=training.created_at))
    created = gateway.create_training(
        trainer_model=settings.trainer_model, trainer_version=settings.trainer_version,
        destination=ModelName.parse(training.destination),
        input={"input_images": "https://example.invalid/photos.zip", "trigger_word": training.trigger_word},
        webhook=runtime.training_webhook_url(training))
    TrainingStarts.attach_replicate_training(training, created.id, created.status)
    return training.training_id
