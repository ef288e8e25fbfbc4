"""In-memory stand-ins for the outside world, for the services' unit tests: Replicate (the
`lorapin.services.ports.Replicate` protocol), the EventBridge bus (an `EventsClient`) and Lambda's
Invoke of our own functions (`lorapin.services.ports.Functions`, run in-process).

Storage is not faked by hand: the unit tests run the real repository on moto's in-memory DynamoDB
(`mock_aws`, no sockets), so the guards they exercise are the DynamoDB conditions that ship, not
a re-implementation of them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lorapin.adapters.replicate_gateway import CreateOutcomeUnknown, ReplicateRejected
from lorapin.domain.clock import iso, parse_iso, utc_now
from lorapin.domain.errors import UpstreamUnavailable
from lorapin.domain.replicate_objects import ReplicatePrediction, ReplicateTraining
from lorapin.domain.versions import ModelName, VersionRef

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
TRAINER_VERSION = hashlib.sha256(b"fake trainer").hexdigest()
_ids = itertools.count(1)


def new_replicate_id() -> str:
    return f"fake{next(_ids):022d}"


class FakeReplicate:
    """Replicate's API in memory. Objects stay `starting` until a test finishes them; each method
    can be made to fail next (`fail_next`), and every call is logged by name (`calls`)."""

    def __init__(self) -> None:
        self.trainings: dict[str, dict[str, Any]] = {}
        self.predictions: dict[str, dict[str, Any]] = {}
        self.models: dict[str, list[str]] = {}  # "owner/name" -> version ids, newest first
        self.files: dict[str, tuple[bytes, str]] = {}  # output URL -> (bytes, content type); absent: 404
        self.calls: list[str] = []
        self.protected_versions: set[str] = set()  # versions Replicate refuses to delete (a deployment uses them)
        self._failures: dict[str, list[Exception]] = defaultdict(list)
        self._create_then_fail: dict[str, int] = defaultdict(int)
        self._broken: dict[str, Exception] = {}

    # --- scripting -----------------------------------------------------------------------------
    def fail_next(self, method: str, *errors: Exception) -> None:
        """The next calls of `method` raise these errors, in order."""
        self._failures[method].extend(errors)

    def break_object(self, object_id: str, error: Exception) -> None:
        """Every look at this training or prediction raises `error` (one item a run cannot read)."""
        self._broken[object_id] = error

    def create_then_time_out(self, method: str, times: int = 1) -> None:
        """The next `times` creates (`create_training`, `create_prediction`) create the object on
        Replicate, but their answer is lost: the caller sees a timeout."""
        self._create_then_fail[method] += times

    def _call(self, method: str) -> None:
        self.calls.append(method)
        if self._failures[method]:
            raise self._failures[method].pop(0)

    def _answer_lost(self, method: str) -> bool:
        if self._create_then_fail[method] > 0:
            self._create_then_fail[method] -= 1
            return True
        return False

    def finish_training(self, training_id: str, status: str = "succeeded", *,
                        output: Any = "new version") -> ReplicateTraining:
        """End a training as Replicate would; a success adds a version to its destination."""
        training = self.trainings[training_id]
        training["status"] = status
        if status == "succeeded" and output == "new version":
            version_id = hashlib.sha256(training_id.encode()).hexdigest()
            self.models.setdefault(training["destination"], []).insert(0, version_id)
            output = {"version": f"{training['destination']}:{version_id}", "weights": "https://fake/w.tar"}
        training["output"] = output if status == "succeeded" else None
        training["error"] = None if status == "succeeded" else f"training {status}"
        training["completed_at"] = iso(utc_now())
        return ReplicateTraining.parse(training)

    def finish_prediction(self, prediction_id: str, status: str = "succeeded", *, outputs: int = 1,
                          served: bool = True) -> ReplicatePrediction:
        """End a prediction; its output files are served (or answer 404 when `served` is False)."""
        prediction = self.predictions[prediction_id]
        urls = [f"https://replicate.delivery/fake/{prediction_id}/{n}.png" for n in range(outputs)]
        prediction.update(status=status, output=urls if status == "succeeded" else None,
                          error=None if status == "succeeded" else f"prediction {status}",
                          completed_at=iso(utc_now()))
        if served:
            self.files.update(dict.fromkeys(urls, (PNG, "image/png")))
        return ReplicatePrediction.parse(prediction)

    # --- the Replicate port ----------------------------------------------------------------------
    def create_prediction(self, version: VersionRef, input: dict[str, Any], webhook: str) -> ReplicatePrediction:
        self._call("create_prediction")
        prediction_id = new_replicate_id()
        self.predictions[prediction_id] = {"id": prediction_id, "status": "starting", "version": version.id,
                                           "model": str(version.model), "input": dict(input), "webhook": webhook,
                                           "output": None, "error": None, "created_at": iso(utc_now())}
        if self._answer_lost("create_prediction"):
            raise CreateOutcomeUnknown("Replicate did not answer: ReadTimeout")
        return ReplicatePrediction.parse(self.predictions[prediction_id])

    def get_prediction(self, prediction_id: str) -> ReplicatePrediction:
        self._call("get_prediction")
        if prediction_id not in self.predictions:
            raise ReplicateRejected(404, "Not found")
        return ReplicatePrediction.parse(self.predictions[prediction_id])

    def cancel_prediction(self, prediction_id: str) -> None:
        self._call("cancel_prediction")
        if self.predictions[prediction_id]["status"] in ("starting", "processing"):
            self.predictions[prediction_id]["status"] = "canceled"

    def create_training(self, *, trainer_model: str, trainer_version: str, destination: ModelName,
                        input: dict[str, Any], webhook: str) -> ReplicateTraining:
        self._call("create_training")
        if str(destination) not in self.models:
            raise ReplicateRejected(404, "The specified training destination does not exist")
        training_id = new_replicate_id()
        self.trainings[training_id] = {"id": training_id, "status": "starting", "model": trainer_model,
                                       "version": trainer_version, "input": dict(input), "webhook": webhook,
                                       "destination": str(destination), "output": None, "error": None,
                                       "created_at": iso(utc_now())}
        if self._answer_lost("create_training"):
            raise CreateOutcomeUnknown("Replicate did not answer: ReadTimeout")
        return ReplicateTraining.parse(self.trainings[training_id])

    def get_training(self, training_id: str) -> ReplicateTraining:
        self._call("get_training")
        if training_id in self._broken:
            raise self._broken[training_id]
        if training_id not in self.trainings:
            raise ReplicateRejected(404, "Not found")
        return ReplicateTraining.parse(self.trainings[training_id])

    def cancel_training(self, training_id: str) -> None:
        self._call("cancel_training")
        if self.trainings[training_id]["status"] in ("starting", "processing"):
            self.finish_training(training_id, "canceled")

    def create_model(self, model: ModelName, *, hardware: str = "gpu-h100", description: str = "") -> None:
        self._call("create_model")
        assert hardware and description is not None  # what the real call requires
        if str(model) in self.models:
            raise ReplicateRejected(409, f"A model with the name {model} already exists")
        self.models[str(model)] = []

    def model_exists(self, model: ModelName) -> bool:
        self._call("model_exists")
        return str(model) in self.models

    def version_ids(self, model: ModelName) -> list[str]:
        self._call("version_ids")
        if str(model) not in self.models:
            raise ReplicateRejected(404, "Not found")
        return list(self.models[str(model)])

    def delete_version(self, model: ModelName, version_id: str) -> None:
        self._call("delete_version")
        versions = self.models.get(str(model), [])
        if version_id not in versions:
            raise ReplicateRejected(404, "Not found")
        if version_id in self.protected_versions:
            raise ReplicateRejected(409, "This version is used by a deployment and cannot be deleted")
        versions.remove(version_id)

    def delete_model(self, model: ModelName) -> None:
        self._call("delete_model")
        if str(model) not in self.models:
            raise ReplicateRejected(404, "Not found")
        if self.models[str(model)]:
            raise ReplicateRejected(409, "Delete the model's versions before the model")
        del self.models[str(model)]

    def latest_version_id(self, model: ModelName) -> str | None:
        self._call("latest_version_id")
        versions = self.models.get(str(model))
        if versions is None:
            raise ReplicateRejected(404, "Not found")
        return versions[0] if versions else None

    def download(self, url: str) -> tuple[bytes, str]:
        self._call("download")
        if url not in self.files:
            raise UpstreamUnavailable(f"could not download output {url}: 404")
        return self.files[url]

    def recent(self, kind: str, since: datetime, *, max_pages: int) -> tuple[list[dict[str, Any]], bool]:
        """Like Replicate's list: newest first, 100 a page, each page one call."""
        objects = sorted((self.trainings if kind == "trainings" else self.predictions).values(),
                         key=lambda o: o["created_at"], reverse=True)
        found: list[dict[str, Any]] = []
        for page in range(max_pages):
            self._call(f"list_{kind}")
            for item in objects[page * 100:(page + 1) * 100]:
                if parse_iso(item["created_at"]) < since:
                    return found, True
                found.append(dict(item))
            if (page + 1) * 100 >= len(objects):
                return found, True
        return found, False

    def find_training(self, training_id: str, since: datetime, *, max_pages: int = 3) -> ReplicateTraining | None:
        items, complete = self.recent("trainings", since, max_pages=max_pages)
        for item in items:
            if training_id in str(item["input"].get("input_images", "")):
                return ReplicateTraining.parse(item)
        if not complete:
            raise UpstreamUnavailable("could not confirm")
        return None

    def find_prediction(self, version: VersionRef, input: dict[str, Any], since: datetime, *,
                        max_pages: int = 3) -> ReplicatePrediction | None:
        items, complete = self.recent("predictions", since, max_pages=max_pages)
        for item in items:
            if item["version"] == version.id and all(item["input"].get(k) == v for k, v in input.items()):
                return ReplicatePrediction.parse(item)
        if not complete:
            raise UpstreamUnavailable("could not confirm")
        return None


class InProcessFunctions:
    """Our functions as Lambda's Invoke would run them, in this process: the photo inspector (a
    payload with "inspect") and the training submitter ("submit_training"). An asynchronous start
    runs at once unless `hold_starts` is set, when it waits for `run_held()` (Lambda's queue).
    `fail_next_start` makes the next start fail as Lambda's API would."""

    def __init__(self) -> None:
        self.runtime: Any = None  # bound once the Runtime exists (`bind`)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.invoked: list[str] = []  # the function names, as the settings give them
        self.results: list[Any] = []
        self._submitted: list[Any] = []
        self.held: list[dict[str, Any]] = []
        self.hold_starts = False
        self.fail_next_start: Exception | None = None

    def bind(self, runtime: Any) -> InProcessFunctions:
        self.runtime = runtime
        return self

    def call(self, function_name: str, payload: dict[str, Any]) -> Any:
        self.invoked.append(function_name)
        self.calls.append(("call", payload))
        return self._run(payload)

    def start(self, function_name: str, payload: dict[str, Any]) -> None:
        self.invoked.append(function_name)
        self.calls.append(("start", payload))
        if self.fail_next_start is not None:
            error, self.fail_next_start = self.fail_next_start, None
            raise error
        if self.hold_starts:
            self.held.append(payload)
        else:
            self._run(payload)

    def run_held(self) -> list[Any]:
        held, self.held = self.held, []
        return [self._run(payload) for payload in held]

    def _run(self, payload: dict[str, Any]) -> Any:
        if "inspect" in payload:
            request = payload["inspect"]
            result: Any = {"inspected": self.runtime.photo_inspections().inspect_keys(
                request["user_id"], request["keys"], budget_seconds=float(request["budget_seconds"]))}
        else:
            request = payload["submit_training"]
            result = self.runtime.trainings().submit(request["user_id"], request["training_id"])
            self._submitted.append(result)
        self.results.append(result)
        return result

    def submissions(self) -> list[Any]:
        """What each submission that ran did ("submitted", "failed", ...), in order."""
        return list(self._submitted)


class RecordingBus:
    """An EventBridge client that keeps what it was given; `reject_next` makes it refuse entries
    (as `PutEvents` does with `FailedEntryCount`)."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self._rejections = 0

    def reject_next(self, count: int = 1) -> None:
        self._rejections += count

    def put_events(self, *, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        if self._rejections:
            self._rejections -= 1
            return {"FailedEntryCount": len(Entries), "Entries": [{"ErrorCode": "InternalFailure"}] * len(Entries)}
        self.entries.extend(Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": str(next(_ids))} for _ in Entries]}

    def events(self, detail_type: str | None = None) -> list[dict[str, Any]]:
        """The details of the events published so far, oldest first."""
        return [json.loads(e["Detail"]) for e in self.entries if detail_type in (None, e["DetailType"])]


@dataclass
class ManualClock:
    """A clock a test moves by hand (`lorapin.domain.clock.use(...)`)."""

    moment: datetime = field(default_factory=lambda: datetime(2026, 11, 28, 12, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.moment

    def real_seconds(self, seconds: float) -> float:
        return seconds

    def clock_seconds(self, real_seconds: float) -> float:
        return real_seconds

    def advance(self, by: timedelta) -> datetime:
        self.moment += by
        return self.moment
