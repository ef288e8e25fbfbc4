"""What the services need from the outside world, as protocols: the Replicate gateway
(`lorapin.adapters.replicate_gateway`) and Lambda (`lorapin.adapters.functions`) are one
implementation, the tests' in-memory fakes another."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from lorapin.domain.replicate_objects import ReplicatePrediction, ReplicateTraining
from lorapin.domain.versions import ModelName, VersionRef


class Functions(Protocol):
    """lorapin's own functions, invoked by name (`lorapin.adapters.functions`)."""

    def call(self, function_name: str, payload: dict[str, Any]) -> Any: ...

    def start(self, function_name: str, payload: dict[str, Any]) -> None: ...


class Replicate(Protocol):
    """Replicate's API as the services use it. A refusal (4xx but 429) raises `ReplicateRejected`;
    an outage raises `UpstreamUnavailable`, and a create that may have happened anyway (a timeout,
    a 5xx) `CreateOutcomeUnknown`: the `find_*` methods then say whether it exists."""

    def create_prediction(self, version: VersionRef, input: dict[str, Any], webhook: str) -> ReplicatePrediction: ...

    def get_prediction(self, prediction_id: str) -> ReplicatePrediction: ...

    def cancel_prediction(self, prediction_id: str) -> None: ...

    def create_training(self, *, trainer_model: str, trainer_version: str, destination: ModelName,
                        input: dict[str, Any], webhook: str) -> ReplicateTraining: ...

    def get_training(self, training_id: str) -> ReplicateTraining: ...

    def cancel_training(self, training_id: str) -> None: ...

    def create_model(self, model: ModelName, *, hardware: str = ..., description: str = ...) -> None: ...

    def model_exists(self, model: ModelName) -> bool: ...

    def latest_version_id(self, model: ModelName) -> str | None: ...

    def version_ids(self, model: ModelName) -> list[str]: ...

    def delete_version(self, model: ModelName, version_id: str) -> None: ...

    def delete_model(self, model: ModelName) -> None: ...

    def download(self, url: str) -> tuple[bytes, str]: ...

    def recent(self, kind: str, since: datetime, *, max_pages: int) -> tuple[list[dict[str, Any]], bool]: ...

    def find_training(self, training_id: str, since: datetime, *, max_pages: int = ...) -> ReplicateTraining | None:
        ...

    def find_prediction(self, version: VersionRef, input: dict[str, Any], since: datetime, *,
                        max_pages: int = ...) -> ReplicatePrediction | None: ...
