"""`make demo`: the retraining story on a fresh local stack, over HTTP only, as a timeline.

first training → generate → retrain with few photos (warning) → retrain (merge) → generate →
a late duplicate webhook → rollback → generate. Exits non-zero when any step misbehaves.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from infra.local.photo_upload import send_photo, start_training
from infra.local.photos_fixture import make_photo
from infra.local.polling import poll_until
from infra.local.stack import LocalStack
from infra.local.tokens import issue_token

USER = "demo-user"
TRIGGER_WORD = "ZQXPERSON"


class StepFailed(Exception):
    pass


@dataclass
class Timeline:
    rows: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def add(self, step: str, answer: str, current: str, used: str, calls: str) -> None:
        self.rows.append((step, answer, current, used, calls))
        print(f"  {step:<44} {answer:<40} {current:<10} {used:<10} {calls:>5}", flush=True)

    def header(self) -> None:
        print(f"  {'step':<44} {'API answered':<40} {'current':<10} {'gen used':<10} {'calls':>5}")
        print("  " + "-" * 113)


class Demo:
    """The story, told to a running stack only over HTTP: its API and the emulator's."""

    def __init__(self, api_url: str, emulator_url: str, *, user: str = USER) -> None:
        self.api = api_url
        self.emulator = emulator_url
        self.headers = {"authorization": f"Bearer {issue_token(user)}", "content-type": "application/json"}
        self.timeline = Timeline()
        self.versions: dict[str, str] = {}  # label → version id

    # --- HTTP helpers ----------------------------------------------------------------------------
    def call(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(method, f"{self.api}{path}", json=body, headers=self.headers, timeout=30)

    def replicate_calls(self) -> list[dict[str, Any]]:
        return list(requests.get(f"{self.emulator}/_emulator/calls", timeout=5).json())

    def expect(self, condition: bool, message: str) -> None:
        if not condition:
            self.timeline.failures.append(message)
            raise StepFailed(message)

    def wait(self, condition: Callable[[], Any], what: str, timeout: float = 30) -> Any:
        value = poll_until(condition, timeout=timeout)
        self.expect(bool(value), f"timed out waiting for {what}")
        return value

    def label(self, version_id: str | None) -> str:
        for name, vid in self.versions.items():
            if vid == version_id:
                return name
        return (version_id or "-")[:8]

    def current(self) -> str | None:
        response = self.call("GET", "/model")
        if response.status_code != 200:
            return None
        current = response.json()["model"]["current_version"]
        return current["id"] if current else None

    # --- steps -----------------------------------------------------------------------------------
    def upload(self, seeds: range) -> list[str]:
        response = self.call("POST", "/uploads", {"count": len(seeds), "content_type": "image/jpeg"})
        self.expect(response.status_code == 201, f"uploads answered {response.status_code}: {response.text}")
        uploads = response.json()["uploads"]
        for seed, upload in zip(seeds, uploads, strict=True):
            sent = send_photo(upload, make_photo(seed))
            self.expect(sent.status_code == 204, f"photo upload answered {sent.status_code}")
        return [u["key"] for u in uploads]

    def train(self, step: str, body: dict[str, Any], label: str) -> dict[str, Any]:
        response = start_training(lambda: self.call("POST", "/trainings", body))
        self.expect(response.status_code == 202, f"{step}: {response.status_code} {response.text}")
        training = response.json()["training"]
        done = self.wait(lambda: (t := self.call("GET", f"/trainings/{training['id']}").json()["training"])
                         ["status"] in ("succeeded", "failed") and t, f"{step} to finish")
        self.expect(done["status"] == "succeeded", f"{step}: training {done['status']}")
        self.wait(lambda: self.current() == done["version_id"], f"{step}: activation")
        self.versions[label] = done["version_id"]
        self.timeline.add(step, f"202 seq={training['seq']} {training['image_count']} photos {training['mode']}",
                          label, "", str(len(self.replicate_calls())))
        return dict(done)

    def generate(self, step: str, expected_label: str) -> dict[str, Any]:
        response = self.call("POST", "/generations", {"prompt": "a portrait on a snowy mountain"})
        self.expect(response.status_code == 202, f"{step}: {response.status_code} {response.text}")
        generation = response.json()["generation"]
        done = self.wait(lambda: (g := self.call("GET", f"/generations/{generation['id']}").json()["generation"])
                         ["status"] == "succeeded" and g, f"{step} to finish")
        used = done["model_version_ref"].split(":")[1]
        self.expect(used == self.versions[expected_label],
                    f"{step}: generation used {self.label(used)}, expected {expected_label}")
        self.expect(done["prompt"].startswith(TRIGGER_WORD), f"{step}: prompt lacks the trigger word")
        self.expect(len(done["outputs"]) == 1, f"{step}: outputs were not copied to our bucket")
        image = requests.get(done["outputs"][0], timeout=10)
        self.expect(image.content[:4] == b"\x89PNG", f"{step}: the stored output is not the image")
        self.timeline.add(step, f"202 → succeeded, {len(done['outputs'])} image in S3", self.label(self.current()),
                          self.label(used), str(len(self.replicate_calls())))
        return dict(done)

    def run(self) -> None:
        self.timeline.header()
        first_keys = self.upload(range(0, 12))
        first = self.train("1. first training (12 photos, ZQXPERSON)",
                           {"image_keys": first_keys, "trigger_word": TRIGGER_WORD}, "v1")
        self.generate("2. generate", "v1")

        few = self.upload(range(100, 103))
        response = start_training(lambda: self.call("POST", "/trainings", {"image_keys": few, "mode": "replace"}))
        codes = sorted({f["code"] for f in response.json().get("error", {}).get("details", [])})
        self.expect(response.status_code == 422 and "LOW_IMAGE_COUNT" in codes,
                    f"3. few photos should warn: {response.status_code} {response.text}")
        self.timeline.add("3. retrain, replace with 3 photos", f"422 {' '.join(codes)}",
                          self.label(self.current()), "", str(len(self.replicate_calls())))

        second = self.train("4. retrain, merge 3 new photos", {"image_keys": few}, "v2")
        self.expect(second["image_count"] == 15, f"4. merge should train on 15 photos, got {second['image_count']}")
        self.expect(second["trigger_word"] == TRIGGER_WORD, "4. the trigger word changed on retrain")
        self.expect(second["destination"] == first["destination"], "4. a new destination was created")
        creates = [c for c in self.replicate_calls() if c["method"] == "POST" and c["path"] == "/v1/models"]
        self.expect(len(creates) == 1, f"4. models.create was called {len(creates)} times")
        self.generate("5. generate", "v2")

        # Replicate sends training 1's completion again, late, as a new message (new webhook-id).
        late = requests.post(f"{self.emulator}/_emulator/deliver-again/{first['replicate_training_id']}",
                             json={"same_webhook_id": False}, timeout=30)
        self.expect(late.status_code == 200, f"6. could not redeliver: {late.status_code}")
        delivery = late.json()
        outcome = json.loads(delivery["response"]).get("outcome") if delivery["status"] == 200 else None
        self.expect(outcome in ("duplicate", "stale"), f"6. the late webhook was answered {delivery}")
        self.expect(self.current() == self.versions["v2"], "6. a late webhook moved the model back")
        self.timeline.add("6. late duplicate webhook of training 1", f"{delivery['status']} {outcome} (ignored)",
                          self.label(self.current()), "", str(len(self.replicate_calls())))

        response = self.call("POST", "/model/rollback", {"version_id": self.versions["v1"]})
        self.expect(response.status_code == 200, f"7. rollback: {response.status_code} {response.text}")
        pinned = response.json()["model"]["current_version"]
        self.timeline.add("7. roll back to v1", f"200 current={self.label(pinned['id'])} ({pinned.get('reason')})",
                          self.label(self.current()), "", str(len(self.replicate_calls())))
        self.generate("8. generate", "v1")


def run_demo(*, training_seconds: float = 1.0, prediction_seconds: float = 0.3) -> int:
    started = time.monotonic()
    print("Starting the local stack (moto + Replicate emulator + functions from template.yaml)...", flush=True)
    with LocalStack.running(training_seconds=training_seconds, prediction_seconds=prediction_seconds,
                            quiet=True) as stack:
        print(f"API: {stack.api.url}\nReplicate emulator: {stack.emulator.url}\n", flush=True)
        demo = Demo(stack.api.url, stack.emulator.url)
        try:
            demo.run()
        except StepFailed as exc:
            print(f"\nFAILED: {exc}")
            return 1
        versions = ", ".join(f"{name}={vid[:12]}" for name, vid in demo.versions.items())
        trainings = [c for c in demo.replicate_calls() if c["path"].endswith("/trainings")]
        print(f"\nversions: {versions}")
        print(f"Replicate calls: {len(demo.replicate_calls())} in all, {len(trainings)} trainings created")
        print(f"OK: every generation used the version it should, in {time.monotonic() - started:.1f}s")
    print("\nTo try it yourself in the reference console: `make run`, then open the API URL it prints "
          "(the console is served at /; sign in with any user name).")
    return 0
