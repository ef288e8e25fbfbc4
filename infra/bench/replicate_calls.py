"""REQUIREMENTS §10 Replicate API calls per completed training, from the emulator's own log (`GET /_emulator/calls`),
for the whole story over HTTP: POST /uploads, photos sent by form POST, POST /trainings, Replicate trains and
sends its webhook, the version becomes current. A first training, then a retrain (merge)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import requests

from infra.bench.events import activated_delivered, wait_for_deliveries
from infra.bench.table import Row
from infra.local.photo_upload import send_photo, start_training
from infra.local.photos_fixture import make_photo
from infra.local.polling import poll_until
from infra.local.stack import LocalStack
from infra.local.tokens import issue_token

TARGET = 2
USER = "bench-flow-user"
TRAINING_SECONDS = 0.3


class FlowFailed(Exception):
    """The training flow itself misbehaved (not a measurement)."""


class Flow:
    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.session = requests.Session()
        self.session.headers.update({"authorization": f"Bearer {issue_token(USER)}"})

    def call(self, method: str, path: str, body: Any = None) -> requests.Response:
        return self.session.request(method, f"{self.stack.api.url}{path}", json=body, timeout=30)

    def replicate_calls(self) -> list[dict[str, Any]]:
        return list(requests.get(f"{self.stack.emulator.url}/_emulator/calls", timeout=10).json())

    def upload(self, seeds: range) -> list[str]:
        response = self.call("POST", "/uploads", {"count": len(seeds), "content_type": "image/jpeg"})
        if response.status_code != 201:
            raise FlowFailed(f"POST /uploads answered {response.status_code}: {response.text[:300]}")
        uploads = response.json()["uploads"]
        for seed, upload in zip(seeds, uploads, strict=True):
            sent = send_photo(upload, make_photo(seed))
            if sent.status_code != 204:
                raise FlowFailed(f"photo upload answered {sent.status_code}")
        return [str(u["key"]) for u in uploads]

    def train(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """Start a training and wait until its version is current; the Replicate calls it made."""
        before = len(self.replicate_calls())
        delivered_before = activated_delivered(self.stack)
        response = start_training(lambda: self.call("POST", "/trainings", body))
        if response.status_code != 202:
            raise FlowFailed(f"POST /trainings answered {response.status_code}: {response.text[:300]}")
        training_id = response.json()["training"]["id"]
        done = _wait(lambda: (t := self.call("GET", f"/trainings/{training_id}").json()["training"])["status"]
                     in ("succeeded", "failed", "canceled") and t, "the training to finish")
        if done["status"] != "succeeded":
            raise FlowFailed(f"training {training_id} ended {done['status']}")
        _wait(lambda: (self.call("GET", "/model").json()["model"]["current_version"] or {}).get("id")
              == done["version_id"], "the new version to become current")
        wait_for_deliveries(self.stack, delivered_before + 1, settle=0.5)  # and its event consumed
        return self.replicate_calls()[before:]


def _wait(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    value = poll_until(condition, timeout=timeout)
    if not value:
        raise FlowFailed(f"timed out waiting for {what}")
    return value


OPERATIONS = (  # Replicate's API by method and path, as the Python client names it
    ("POST", re.compile(r"/v1/models"), "models.create"),
    ("GET", re.compile(r"/v1/models/[^/]+/[^/]+"), "models.get"),
    ("GET", re.compile(r"/v1/models/[^/]+/[^/]+/versions(/[^/]+)?"), "models.versions"),
    ("POST", re.compile(r"/v1/models/[^/]+/[^/]+/versions/[^/]+/trainings"), "trainings.create"),
    ("GET", re.compile(r"/v1/trainings(/[^/]+)?"), "trainings.get/list"),
    ("POST", re.compile(r"/v1/predictions"), "predictions.create"),
    ("GET", re.compile(r"/v1/predictions/[^/]+"), "predictions.get"),
    ("GET", re.compile(r"/v1/webhooks/default/secret"), "webhooks.default.secret"),
)


def _describe(calls: list[dict[str, Any]]) -> str:
    def name(call: dict[str, Any]) -> str:
        for method, path, operation in OPERATIONS:
            if call["method"] == method and path.fullmatch(call["path"]):
                return operation
        return f"{call['method']} {call['path']}"

    return ", ".join(name(c) for c in calls) or "none"


def measure_replicate_calls(stack: LocalStack) -> list[Row]:
    stack.emulator.training_seconds = TRAINING_SECONDS
    flow = Flow(stack)
    first = flow.train({"image_keys": flow.upload(range(0, 12)), "trigger_word": "ZQXBENCH"})
    retrain = flow.train({"image_keys": flow.upload(range(100, 103)), "mode": "merge"})
    per_training = (len(first) + len(retrain)) / 2
    return [
        Row("Replicate API calls per completed training (uploads, photos, POST /trainings -> webhook -> current; "
            "mean of 2)", f"{per_training:g}", target=f"<= {TARGET}", ok=per_training <= TARGET),
        Row("  first training", f"{len(first)}: {_describe(first)}", target=f"<= {TARGET}", ok=len(first) <= TARGET),
        Row("  retrain (merge)", f"{len(retrain)}: {_describe(retrain)}", target=f"<= {TARGET}",
            ok=len(retrain) <= TARGET),
    ]
