"""A local emulator of the part of Replicate's HTTP API that lorapin uses (REQUIREMENTS §7).

It speaks what the real `replicate` client expects (models, versions, trainings, predictions,
the webhook signing secret), runs trainings and predictions on timers, creates a new 64-hex version
on the destination when a training succeeds, and delivers Standard Webhooks-signed webhooks with
retries on non-2xx, like Replicate. Control endpoints under `/_emulator/` inject faults, pick
training outcomes, drop or repeat webhooks, and list the API calls received.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import io
import json
import random
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from lorapin.domain import clock

TRAINER_MODEL = "ostris/flux-dev-lora-trainer"
TRAINER_VERSION_ID = hashlib.sha256(b"ostris/flux-dev-lora-trainer@lorapin-emulator").hexdigest()
TERMINAL = ("succeeded", "failed", "canceled", "aborted")
Reply = tuple[int, Any, dict[str, str]]


def _now() -> str:
    """Replicate's timestamps (microseconds), on lorapin's clock: accelerated when the stack is."""
    return clock.utc_now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


OUTPUTS_KEPT_SECONDS = 3600  # Replicate deletes API outputs an hour after the prediction ends
PAGE_SIZE = 100  # Replicate's lists: 100 objects a page, newest first


@dataclass
class Plan:
    """What happens to one training or prediction, decided when it is created."""

    outcome: str = "succeeded"  # trainings: succeeded | failed | canceled | aborted
    seconds: float | None = None  # how long it runs, in the stack's (emulated) seconds
    lose_webhook: bool = False  # its webhook is never delivered
    output: str = "ok"  # ok | unusable_version (trainings) | missing | null (predictions)
    answer: str = "ok"  # ok | 504 (created, then a gateway timeout) | timeout (created, answered too late)


@dataclass
class Profile:
    """Random plans for a realistic day (`make bench`): each object draws its own, from one seed."""

    seed: int = 0
    training_seconds: tuple[float, float] = (15 * 60, 25 * 60)
    prediction_seconds: tuple[float, float] = (5, 20)
    lose_training_webhook: float = 0.10
    lose_prediction_webhook: float = 0.10
    unusable_version: float = 0.02
    expired_output: float = 0.02
    training_create_timeout: float = 0.0
    prediction_create_timeout: float = 0.0


def _new_id() -> str:
    """Replicate-like ids: 26 lowercase letters and digits."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(26))


def _problem(status: int, detail: str, title: str = "Error") -> Reply:
    return status, {"detail": detail, "status": status, "title": title}, {}


def sign(body: str, secret: str, webhook_id: str, timestamp: int) -> str:
    """Standard Webhooks: HMAC-SHA256 of `id.timestamp.body` with the base64-decoded secret."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{webhook_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return f"v1,{base64.b64encode(mac).decode()}"


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    remaining: int
    body: dict[str, Any] | None = None


class ReplicateEmulator:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, signing_secret: str | None = None,
                 training_seconds: float = 0.5, prediction_seconds: float = 0.2,
                 webhook_retry_delays: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0)) -> None:
        self.signing_secret = signing_secret or "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.hold_seconds = 0.0  # how long a "timeout" answer waits before it is sent (past the client's timeout)
        self.profile: Profile | None = None
        self._random = random.Random(0)
        self._scripts: dict[str, deque[Plan]] = {"training": deque(), "prediction": deque()}
        self.training_seconds = training_seconds
        self.prediction_seconds = prediction_seconds
        self.webhook_retry_delays = webhook_retry_delays
        self._defaults = (training_seconds, prediction_seconds, webhook_retry_delays)
        self.models: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[dict[str, Any]]] = {}  # model → versions, newest first
        self.trainings: dict[str, dict[str, Any]] = {}
        self.predictions: dict[str, dict[str, Any]] = {}
        self.calls: list[dict[str, Any]] = []
        self.deliveries: list[dict[str, Any]] = []
        self._private: dict[str, dict[str, Any]] = {}  # per object: webhook, filter, destination
        self._last_webhook: dict[str, tuple[str, str, str]] = {}  # object id → (url, body, webhook-id)
        self._outcomes: deque[str] = deque()
        self.protected_versions: set[str] = set()
        self._suppress = 0
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)  # notified whenever a timer or a delivery ends
        self._busy = 0  # timer callbacks running and webhook deliveries (with their retries) under way
        self._timers: list[threading.Timer] = []
        self.add_model(*TRAINER_MODEL.split("/"), version_id=TRAINER_VERSION_ID)
        emulator = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # As the local HTTP API's: an answer is written as its head, then its body, and with
            # Nagle's algorithm the body can wait for the client's delayed ACK (~40 ms on Linux).
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                emulator._serve(self)

            do_POST = do_DELETE = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), _Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True,
                                        name="replicate-emulator")

    # --- lifecycle -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ReplicateEmulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.quiesce()
        self.server.shutdown()
        self.server.server_close()

    def quiesce(self, timeout: float = 30.0) -> None:
        """Cancel every training and prediction not finished yet, then wait until no webhook is
        being delivered (retries included): after this, nothing more arrives from the emulator."""
        with self._lock:
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
        self.wait_idle(timeout)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until no timer callback runs and no webhook delivery is under way."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._busy == 0, timeout=timeout):
                raise TimeoutError(f"the emulator is still busy after {timeout}s ({self._busy} under way)")

    def reset(self) -> None:
        """Back to the behaviour it started with: timings, no queued outcomes, faults or drops."""
        with self._lock:
            self.training_seconds, self.prediction_seconds, self.webhook_retry_delays = self._defaults
            self._outcomes.clear()
            self._suppress = 0
            self._faults.clear()
            self._scripts = {"training": deque(), "prediction": deque()}
            self.profile = None
            self.protected_versions.clear()

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def __enter__(self) -> ReplicateEmulator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- control ---------------------------------------------------------------------------------
    def add_model(self, owner: str, name: str, *, version_id: str | None = None) -> dict[str, Any]:
        with self._lock:
            key = f"{owner}/{name}"
            self.models[key] = {"url": f"https://replicate.com/{key}", "owner": owner, "name": name,
                                "description": None, "visibility": "private", "github_url": None,
                                "paper_url": None, "license_url": None, "run_count": 0, "cover_image_url": None,
                                "default_example": None, "hardware": "gpu-h100"}
            self.versions.setdefault(key, [])
            if version_id:
                self._add_version(key, version_id)
            return self._model_json(key)

    def fail_next(self, method: str, path_regex: str, status: int, count: int = 1,
                  body: dict[str, Any] | None = None) -> None:
        """The next `count` API calls matching method and path answer `status` (429, 500, 503...)."""
        with self._lock:
            self._faults.append(Fault(method.upper(), re.compile(path_regex), status, count, body))

    def script(self, kind: str, **plan: Any) -> None:
        """The plan of the next `kind` ("training" or "prediction") created, e.g.
        `script("training", lose_webhook=True, output="unusable_version")`."""
        with self._lock:
            self._scripts[kind].append(Plan(**plan))

    def use_profile(self, profile: Profile) -> None:
        """From now on every object draws its plan from `profile` (what is scripted comes first)."""
        with self._lock:
            self.profile = profile
            self._random = random.Random(profile.seed)

    def _plan(self, kind: str) -> Plan:
        with self._lock:
            if self._scripts[kind]:
                return self._scripts[kind].popleft()
            if kind == "training" and self._outcomes:
                return Plan(outcome=self._outcomes.popleft())
            profile, rng = self.profile, self._random
            if profile is None:
                return Plan()
            if kind == "training":
                return Plan(seconds=rng.uniform(*profile.training_seconds),
                            lose_webhook=rng.random() < profile.lose_training_webhook,
                            output="unusable_version" if rng.random() < profile.unusable_version else "ok",
                            answer="504" if rng.random() < profile.training_create_timeout else "ok")
            return Plan(seconds=rng.uniform(*profile.prediction_seconds),
                        lose_webhook=rng.random() < profile.lose_prediction_webhook,
                        output="missing" if rng.random() < profile.expired_output else "ok",
                        answer="504" if rng.random() < profile.prediction_create_timeout else "ok")

    def _real(self, seconds: float) -> float:
        """Real seconds for `seconds` of the stack's clock (the same when it is not accelerated)."""
        return clock.current().real_seconds(seconds)

    def set_training_outcome(self, *outcomes: str) -> None:
        """Outcomes of the next trainings, in order: succeeded | failed | canceled | aborted."""
        with self._lock:
            self._outcomes.extend(outcomes)

    def suppress_webhooks(self, count: int) -> None:
        """Drop the next `count` webhooks entirely: the "lost webhook" case."""
        with self._lock:
            self._suppress += count

    def complete_training_now(self, training_id: str, outcome: str | None = None) -> None:
        """Finish a training now; `outcome` overrides the one its plan chose when it was created."""
        self._finish_training(training_id, outcome)

    def deliver_again(self, object_id: str, *, same_webhook_id: bool = True) -> dict[str, Any]:
        """Send the last webhook of a training or prediction once more: with the same webhook-id (a
        redelivery of one message) or a new one (another message about the same object, late)."""
        url, body, webhook_id = self._last_webhook[object_id]
        if not same_webhook_id:
            webhook_id = f"msg_{_new_id()}"
        self._deliver(url, body, webhook_id, kind="redelivery", object_id=object_id, retry=False)
        with self._lock:
            return dict(self.deliveries[-1])

    def deliver_payload(self, url: str, payload: dict[str, Any]) -> int | None:
        """Sign and send any body to any URL (for tests of odd deliveries)."""
        return self._send_once(url, json.dumps(payload), f"msg_{_new_id()}")[0]

    def api_calls(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.calls)

    # --- HTTP --------------------------------------------------------------------------------------
    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        length = int(request.headers.get("content-length") or 0)
        raw = request.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            body = None
        status, payload, headers = self._dispatch(request.command, parts.path, body, request.headers, parts.query)
        hold = headers.pop("x-emulator-hold", None)
        if hold:  # the object is created, but the answer comes after the client has given up
            time.sleep(float(hold))
        if parts.path.startswith("/v1/"):
            with self._lock:
                self.calls.append({"method": request.command, "path": parts.path, "status": status, "at": _now()})
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        request.send_response(status)
        content_type = "image/png" if isinstance(payload, bytes) else "application/json"
        request.send_header("content-type", headers.pop("content-type", content_type))
        for key, value in headers.items():
            request.send_header(key, value)
        request.send_header("content-length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _dispatch(self, method: str, path: str, body: Any, headers: Any, query: str = "") -> Reply:
        if path.startswith("/_emulator/"):
            return self._control(method, path, body if isinstance(body, dict) else {})
        if path.startswith("/outputs/"):
            return self._output_image(path)
        if path.startswith("/weights/"):
            return 200, b"emulated weights", {"content-type": "application/x-tar"}
        if not path.startswith("/v1/"):
            return _problem(404, "Not found")
        auth = headers.get("authorization") or ""
        if not re.fullmatch(r"(Bearer|Token) r8_\S+", auth):
            return _problem(401, "You did not pass a valid authentication token", "Unauthenticated")
        fault = self._take_fault(method, path)
        if fault is not None:
            extra = {"retry-after": "1"} if fault.status == 429 else {}
            payload = fault.body or {"detail": "Request was throttled." if fault.status == 429 else "Internal error",
                                     "status": fault.status, "title": "Injected fault"}
            return fault.status, payload, extra
        if body is None:
            return _problem(400, "The request body is not valid JSON")
        for route_method, pattern, handler in self._routes(query):
            if route_method == method:
                found = re.fullmatch(pattern, path)
                if found:
                    with self._lock:
                        return handler(body, *found.groups())
        return _problem(404, "Not found")

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.method in (method, "*") and fault.path.search(path):
                    fault.remaining -= 1
                    return fault
        return None

    def _routes(self, query: str = "") -> list[tuple[str, str, Callable[..., Reply]]]:
        name = r"([^/]+)"
        return [
            ("GET", r"/v1/webhooks/default/secret", lambda _b: (200, {"key": self.signing_secret}, {})),
            ("POST", r"/v1/models", self._create_model),
            ("GET", rf"/v1/models/{name}/{name}", self._get_model),
            ("GET", rf"/v1/models/{name}/{name}/versions", self._list_versions),
            ("GET", rf"/v1/models/{name}/{name}/versions/{name}", self._get_version),
            ("DELETE", rf"/v1/models/{name}/{name}/versions/{name}", self._delete_version),
            ("DELETE", rf"/v1/models/{name}/{name}", self._delete_model),
            ("POST", rf"/v1/models/{name}/{name}/versions/{name}/trainings", self._create_training),
            ("GET", r"/v1/trainings", lambda _b: self._list("trainings", query)),
            ("GET", rf"/v1/trainings/{name}", lambda _b, i: self._get("trainings", i)),
            ("POST", rf"/v1/trainings/{name}/cancel", lambda _b, i: self._cancel("trainings", i)),
            ("POST", r"/v1/predictions", self._create_prediction),
            ("GET", r"/v1/predictions", lambda _b: self._list("predictions", query)),
            ("GET", rf"/v1/predictions/{name}", lambda _b, i: self._get("predictions", i)),
            ("POST", rf"/v1/predictions/{name}/cancel", lambda _b, i: self._cancel("predictions", i)),
        ]

    # --- models and versions ---------------------------------------------------------------------
    def _model_json(self, key: str) -> dict[str, Any]:
        model = {k: v for k, v in self.models[key].items() if k != "hardware"}
        versions = self.versions.get(key) or []
        return {**model, "latest_version": versions[0] if versions else None}

    def _add_version(self, key: str, version_id: str) -> dict[str, Any]:
        version = {"id": version_id, "created_at": _now(), "cog_version": "0.14.0",
                   "openapi_schema": {"openapi": "3.0.2", "info": {"title": "Cog"}}}
        self.versions[key].insert(0, version)
        return version

    def _create_model(self, body: dict[str, Any]) -> Reply:
        missing = [f for f in ("owner", "name", "visibility", "hardware") if not body.get(f)]
        if missing:
            return _problem(422, f"missing required field(s): {', '.join(missing)}", "Invalid request")
        key = f"{body['owner']}/{body['name']}"
        if key in self.models:
            return _problem(409, f"A model with the name {key} already exists", "Conflict")
        self.add_model(body["owner"], body["name"])
        self.models[key]["description"] = body.get("description")
        return 201, self._model_json(key), {}

    def _get_model(self, _body: Any, owner: str, name: str) -> Reply:
        key = f"{owner}/{name}"
        if key not in self.models:
            return _problem(404, "Not found")
        return 200, self._model_json(key), {}

    def _list_versions(self, _body: Any, owner: str, name: str) -> Reply:
        key = f"{owner}/{name}"
        if key not in self.models:
            return _problem(404, "Not found")
        return 200, {"next": None, "previous": None, "results": list(self.versions[key])}, {}

    def _get_version(self, _body: Any, owner: str, name: str, version_id: str) -> Reply:
        for version in self.versions.get(f"{owner}/{name}", []):
            if version["id"] == version_id:
                return 200, version, {}
        return _problem(404, "Not found")

    def _delete_version(self, _body: Any, owner: str, name: str, version_id: str) -> Reply:
        """202 and gone (Replicate deletes asynchronously); refused for a version a deployment uses
        (`protect_version`), as Replicate refuses it."""
        key = f"{owner}/{name}"
        versions = self.versions.get(key, [])
        if not any(v["id"] == version_id for v in versions):
            return _problem(404, "Not found")
        if version_id in self.protected_versions:
            return _problem(409, "This version is used by a deployment and cannot be deleted", "Conflict")
        self.versions[key] = [v for v in versions if v["id"] != version_id]
        return 202, b"", {"content-type": "text/plain"}  # an empty answer, as Replicate's

    def _delete_model(self, _body: Any, owner: str, name: str) -> Reply:
        """204; only once every version is deleted, as Replicate requires."""
        key = f"{owner}/{name}"
        if key not in self.models:
            return _problem(404, "Not found")
        if self.versions.get(key):
            return _problem(409, "Delete all of the model's versions before deleting the model", "Conflict")
        del self.models[key]
        self.versions.pop(key, None)
        return 204, b"", {"content-type": "text/plain"}

    def protect_version(self, version_id: str) -> None:
        """Make Replicate refuse to delete this version (a deployment uses it)."""
        with self._lock:
            self.protected_versions.add(version_id)

    def _find_version(self, ref: str) -> tuple[str, str] | None:
        """(model, version id) of a bare id or an `owner/name:id` ref that exists."""
        if ":" in ref:
            key, _, version_id = ref.partition(":")
            found = any(v["id"] == version_id for v in self.versions.get(key, []))
            return (key, version_id) if found else None
        for key, versions in self.versions.items():
            if any(v["id"] == ref for v in versions):
                return key, ref
        return None

    # --- trainings -------------------------------------------------------------------------------
    def _create_training(self, body: dict[str, Any], owner: str, name: str, version_id: str) -> Reply:
        trainer = f"{owner}/{name}"
        if not any(v["id"] == version_id for v in self.versions.get(trainer, [])):
            return _problem(404, "The specified version does not exist", "Not found")
        destination = body.get("destination")
        if not isinstance(destination, str) or destination not in self.models:
            return _problem(404, "The specified training destination does not exist", "Not found")
        training_input = body.get("input")
        if not isinstance(training_input, dict) or not training_input.get("input_images"):
            return _problem(422, "input.input_images is required", "Invalid input")
        training_id = _new_id()
        urls = {"get": f"{self.url}/v1/trainings/{training_id}",
                "cancel": f"{self.url}/v1/trainings/{training_id}/cancel",
                "web": f"https://replicate.com/p/{training_id}"}
        training: dict[str, Any] = {
            "id": training_id, "model": trainer, "version": version_id, "input": training_input, "output": None,
            "logs": "", "error": None, "status": "starting", "source": "api", "created_at": _now(),
            "started_at": None, "completed_at": None, "metrics": {},
            "urls": urls,
        }
        plan = self._plan("training")
        seconds = plan.seconds if plan.seconds is not None else self.training_seconds
        self.trainings[training_id] = training
        self._private[training_id] = {"destination": destination, "webhook": body.get("webhook"),
                                      "filter": body.get("webhook_events_filter"), "kind": "training", "plan": plan,
                                      "seconds": seconds}
        self._schedule(self._real(min(0.05, seconds / 4)), self._mark_processing, "trainings", training_id)
        self._schedule(self._real(seconds), self._finish_training, training_id)
        created = dict(training)
        created["urls"] = {**urls, "get": f"{self.url}/v1/predictions/{training_id}"}  # Replicate's real quirk
        return self._answer_created(plan, created)

    def _answer_created(self, plan: Plan, created: dict[str, Any]) -> Reply:
        """The answer to a create: normally the object; per its plan, a gateway timeout after creating
        it, or the object sent too late for the client."""
        if plan.answer == "504":
            return 504, {"detail": "Gateway Timeout", "status": 504, "title": "Gateway Timeout"}, {}
        if plan.answer == "timeout":
            return 201, created, {"x-emulator-hold": str(self.hold_seconds)}
        return 201, created, {}

    def _list(self, collection: str, query: str) -> Reply:
        """Newest first, a page at a time, `next` being the full URL of the following page."""
        from urllib.parse import parse_qs

        offset = int((parse_qs(query).get("cursor") or ["0"])[0] or 0)
        with self._lock:
            newest_first = sorted(getattr(self, collection).values(), key=lambda o: o["created_at"], reverse=True)
            page = [dict(obj) for obj in newest_first[offset:offset + PAGE_SIZE]]
        more = offset + PAGE_SIZE < len(newest_first)
        next_url = f"{self.url}/v1/{collection}?cursor={offset + PAGE_SIZE}" if more else None
        return 200, {"next": next_url, "previous": None, "results": page}, {}

    def _finish_training(self, training_id: str, outcome: str | None = None) -> None:
        with self._lock:
            training = self.trainings[training_id]
            if training["status"] in TERMINAL:
                return
            plan: Plan = self._private[training_id].get("plan") or Plan()
            outcome, seconds = outcome or plan.outcome, self._private[training_id].get("seconds", self.training_seconds)
            training.update(status=outcome, completed_at=_now(), metrics={"predict_time": seconds,
                                                                          "total_time": seconds})
            if outcome == "succeeded":
                destination = self._private[training_id]["destination"]
                version = self._add_version(destination, secrets.token_hex(32))
                training["output"] = {"version": f"{destination}:{version['id']}",
                                      "weights": f"{self.url}/weights/{version['id']}.tar"}
                if plan.output == "unusable_version":  # what some apps stored: the trainer's own version
                    training["output"]["version"] = f"{training['model']}:{training['version']}"
                training["logs"] = "flux_train_replicate: 100%|##########| done"
            elif outcome == "failed":
                training["error"] = "Training failed: CUDA out of memory (emulated)"
            elif outcome == "aborted":
                training["error"] = "The training was aborted before it ran"
        self._notify(training_id)

    # --- predictions -----------------------------------------------------------------------------
    def _create_prediction(self, body: dict[str, Any]) -> Reply:
        version = body.get("version")
        if not isinstance(version, str) or not version:
            return _problem(422, "version is required", "Invalid version")
        found = self._find_version(version)
        if found is None:
            return _problem(422, "Invalid version or not permitted", "Invalid version")
        model, version_id = found
        prediction_id = _new_id()
        prediction_input = body.get("input") if isinstance(body.get("input"), dict) else {}
        self.predictions[prediction_id] = {
            "id": prediction_id, "model": model, "version": version_id, "input": prediction_input, "output": None,
            "logs": "", "error": None, "status": "starting", "data_removed": False, "created_at": _now(),
            "started_at": None, "completed_at": None, "metrics": {},
            "urls": {"get": f"{self.url}/v1/predictions/{prediction_id}",
                     "cancel": f"{self.url}/v1/predictions/{prediction_id}/cancel"},
        }
        plan = self._plan("prediction")
        self._private[prediction_id] = {"webhook": body.get("webhook"), "filter": body.get("webhook_events_filter"),
                                        "kind": "prediction", "plan": plan}
        seconds = plan.seconds if plan.seconds is not None else self.prediction_seconds
        self._schedule(self._real(seconds), self._finish_prediction, prediction_id)
        return self._answer_created(plan, dict(self.predictions[prediction_id]))

    def _finish_prediction(self, prediction_id: str) -> None:
        with self._lock:
            prediction = self.predictions[prediction_id]
            if prediction["status"] in TERMINAL:
                return
            count = int(prediction["input"].get("num_outputs") or 1)
            plan: Plan = self._private[prediction_id].get("plan") or Plan()
            output = None if plan.output == "null" else [f"{self.url}/outputs/{prediction_id}/{n}.png"
                                                        for n in range(count)]
            prediction.update(status="succeeded", completed_at=_now(), metrics={"predict_time": 1.0}, output=output)
        self._notify(prediction_id)

    def _output_image(self, path: str) -> Reply:
        found = re.fullmatch(r"/outputs/([^/]+)/(\d+)\.png", path)
        prediction = self.predictions.get(found.group(1)) if found else None
        if prediction is None or self._output_gone(prediction):
            return _problem(404, "Not found")
        from PIL import Image, ImageDraw

        image = Image.new("RGB", (384, 384), (24, 28, 40))
        draw = ImageDraw.Draw(image)
        draw.text((16, 16), "lorapin emulator", fill=(200, 200, 200))
        draw.text((16, 48), f"model {prediction['model']}", fill=(255, 255, 255))
        draw.text((16, 80), f"version {prediction['version'][:16]}", fill=(255, 220, 90))
        draw.text((16, 112), str(prediction["input"].get("prompt", ""))[:48], fill=(160, 200, 255))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return 200, buffer.getvalue(), {"content-type": "image/png"}

    def _output_gone(self, prediction: dict[str, Any]) -> bool:
        """Outputs planned missing are never served; the others are deleted an hour after the end."""
        plan: Plan = self._private.get(prediction["id"], {}).get("plan") or Plan()
        if plan.output == "missing":
            return True
        completed = prediction.get("completed_at")
        return bool(completed) and (clock.utc_now() - _parse(str(completed))).total_seconds() > OUTPUTS_KEPT_SECONDS

    # --- shared object handling ------------------------------------------------------------------
    def _get(self, collection: str, object_id: str) -> Reply:
        obj = getattr(self, collection).get(object_id)
        return (200, dict(obj), {}) if obj else _problem(404, "Not found")

    def _cancel(self, collection: str, object_id: str) -> Reply:
        obj = getattr(self, collection).get(object_id)
        if obj is None:
            return _problem(404, "Not found")
        if obj["status"] not in TERMINAL:
            obj.update(status="canceled", completed_at=_now())
            self._in_background(self._notify, object_id)
        return 200, dict(obj), {}

    def _mark_processing(self, collection: str, object_id: str) -> None:
        with self._lock:
            obj = getattr(self, collection)[object_id]
            if obj["status"] == "starting":
                obj.update(status="processing", started_at=_now())

    def _schedule(self, seconds: float, action: Callable[..., None], *args: Any) -> None:
        def run() -> None:
            with self._lock:
                if timer not in self._timers:  # canceled by quiesce() just as it fired
                    return
                self._timers.remove(timer)
                self._busy += 1
            try:
                action(*args)
            finally:
                self._done()

        timer = threading.Timer(seconds, run)
        timer.daemon = True
        with self._lock:
            self._timers.append(timer)
        timer.start()

    def _done(self) -> None:
        with self._idle:
            self._busy -= 1
            self._idle.notify_all()

    def _in_background(self, target: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        """Run `target` on its own thread, counted as busy until it returns."""
        with self._lock:
            self._busy += 1

        def run() -> None:
            try:
                target(*args, **kwargs)
            finally:
                self._done()

        threading.Thread(target=run, daemon=True).start()

    # --- webhooks --------------------------------------------------------------------------------
    def _notify(self, object_id: str) -> None:
        with self._lock:
            private = self._private[object_id]
            url, events = private.get("webhook"), private.get("filter")
            if not url or (events and "completed" not in events):
                return
            obj = self.trainings.get(object_id) or self.predictions[object_id]
            body = json.dumps(obj)
            webhook_id = f"msg_{_new_id()}"
            self._last_webhook[object_id] = (url, body, webhook_id)
            lost = bool(getattr(private.get("plan"), "lose_webhook", False))
            if self._suppress > 0 or lost:
                self._suppress -= 0 if lost else 1
                self.deliveries.append({"kind": private["kind"], "object_id": object_id, "url": url,
                                        "webhook_id": webhook_id, "attempt": 0, "status": "suppressed"})
                return
        self._in_background(self._deliver, url, body, webhook_id, kind=private["kind"], object_id=object_id)

    def _deliver(self, url: str, body: str, webhook_id: str, *, kind: str, object_id: str, retry: bool = True) -> None:
        delays = (0.0, *self.webhook_retry_delays) if retry else (0.0,)
        for attempt, delay in enumerate(delays, start=1):
            time.sleep(delay)
            status, answer = self._send_once(url, body, webhook_id)
            with self._lock:
                self.deliveries.append({"kind": kind, "object_id": object_id, "url": url, "webhook_id": webhook_id,
                                        "attempt": attempt, "status": status, "response": answer})
            if status is not None and 200 <= status < 300:
                return

    def _send_once(self, url: str, body: str, webhook_id: str) -> tuple[int | None, str]:
        """POST one signed delivery; the status (None when unreachable) and the start of the answer."""
        timestamp = int(time.time())
        request = urllib.request.Request(url, data=body.encode(), method="POST", headers={
            "content-type": "application/json", "user-agent": "Replicate-Webhook/emulator",
            "webhook-id": webhook_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(body, self.signing_secret, webhook_id, timestamp)})
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return int(response.status), response.read(2000).decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read(2000).decode("utf-8", "replace")
        except OSError as exc:
            return None, str(exc)

    # --- control endpoints -----------------------------------------------------------------------
    def _control(self, method: str, path: str, body: dict[str, Any]) -> Reply:
        action = path.removeprefix("/_emulator/")
        if method == "GET" and action == "calls":
            return 200, self.api_calls(), {}
        if method == "GET" and action == "state":
            with self._lock:
                return 200, {"models": {k: self._model_json(k) for k in self.models},
                             "trainings": self.trainings, "predictions": self.predictions,
                             "deliveries": self.deliveries}, {}
        if method != "POST":
            return _problem(404, "Not found")
        target = action.split("/", 1)[1] if "/" in action else ""
        if action == "reset-calls":
            with self._lock:
                self.calls.clear()
        elif action == "fail-next":
            self.fail_next(body.get("method", "*"), body.get("path", ".*"), int(body.get("status", 500)),
                           int(body.get("count", 1)), body.get("body"))
        elif action == "training-outcome":
            self.set_training_outcome(*([body["outcome"]] if isinstance(body.get("outcome"), str)
                                        else body.get("outcomes", [])))
        elif action == "suppress-webhooks":
            self.suppress_webhooks(int(body.get("count", 1)))
        elif action == "config":
            self.training_seconds = float(body.get("training_seconds", self.training_seconds))
            self.prediction_seconds = float(body.get("prediction_seconds", self.prediction_seconds))
        elif action.startswith("deliver-again/") and target in self._last_webhook:
            return 200, self.deliver_again(target, same_webhook_id=bool(body.get("same_webhook_id", True))), {}
        elif action.startswith("complete-training/") and target in self.trainings:
            self._in_background(self._finish_training, target)
        else:
            return _problem(404, f"unknown emulator action {action!r}")
        return 202, {"ok": True}, {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the Replicate emulator on its own.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument("--training-seconds", type=float, default=5.0)
    parser.add_argument("--prediction-seconds", type=float, default=1.0)
    args = parser.parse_args(argv)
    emulator = ReplicateEmulator(args.host, args.port, training_seconds=args.training_seconds,
                                 prediction_seconds=args.prediction_seconds).start()
    print(f"Replicate emulator: {emulator.url}\nsigning secret: {emulator.signing_secret}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        emulator.stop()
    return 0
