"""Tolerant models of the objects Replicate sends (webhook bodies) and returns (GET).

The 1.0.7 client's own models reject statuses it does not know (`aborted`), so webhook bodies are
parsed here: unknown fields are ignored, unknown statuses are kept and normalised. Plain
dataclasses read by hand (`parse`), not pydantic models: the webhook function then needs no
pydantic at its cold start (~46 ms on python3.12; README, Performance).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Self

from lorapin.domain.statuses import TrainingStatus


class InvalidReplicateObject(ValueError):
    """What Replicate sent or answered is not the object it should be."""


IN_PROGRESS_STATUSES = frozenset(TrainingStatus.in_flight())


def normalise_status(status: str) -> TrainingStatus:
    """Map Replicate's status to ours: `aborted` and any unknown terminal status count as `failed`.

    Trainings and predictions share Replicate's statuses, so `GenerationStatus` accepts the result."""
    try:
        return TrainingStatus(status)
    except ValueError:
        return TrainingStatus.FAILED


@dataclass(frozen=True, kw_only=True)
class ReplicateObject:
    id: str
    status: str
    input: dict[str, Any] | None = None
    output: Any = None
    error: Any = None
    created_at: str | None = None
    completed_at: str | None = None

    LIMITS: ClassVar[dict[str, int]] = {"id": 200, "status": 50}  # required, and the longest each may be
    OPTIONAL_TEXT: ClassVar[tuple[str, ...]] = ("created_at", "completed_at")  # a string when present

    @classmethod
    def parse(cls, data: object) -> Self:
        """The object in Replicate's JSON (`data`, decoded); fields this model lacks are ignored.
        Raises InvalidReplicateObject naming what is wrong."""
        if not isinstance(data, dict):
            raise InvalidReplicateObject("not a JSON object")
        values = {field.name: data[field.name] for field in fields(cls) if data.get(field.name) is not None}
        for name, longest in cls.LIMITS.items():
            value = values.get(name)
            if not isinstance(value, str) or not 1 <= len(value) <= longest:
                raise InvalidReplicateObject(f"{name} must be a string of 1 to {longest} characters")
        if not isinstance(values.get("input", {}), dict):
            raise InvalidReplicateObject("input must be an object")
        for name in cls.OPTIONAL_TEXT:
            if not isinstance(values.get(name, ""), str):
                raise InvalidReplicateObject(f"{name} must be a string")
        try:  # what is kept is stored and logged: no lone surrogate (`"\ud800"`) in it
            json.dumps(values, ensure_ascii=False).encode("utf-8")
        except (UnicodeError, RecursionError):
            raise InvalidReplicateObject("a value is not valid Unicode, or nested too deeply") from None
        return cls(**values)

    @classmethod
    def parse_json(cls, raw: bytes | str) -> Self:
        """`raw`: UTF-8 JSON (json.loads alone would take UTF-16 too). Only the fields kept are
        checked further: a training's `logs`, often the bulk of its body, is read once and dropped."""
        try:
            data = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
        except (ValueError, UnicodeError) as exc:  # JSONDecodeError is a ValueError
            raise InvalidReplicateObject(f"not UTF-8 JSON: {exc}") from None
        except RecursionError:  # arrays or objects nested thousands deep
            raise InvalidReplicateObject("nested too deeply") from None
        return cls.parse(data)

    @property
    def normalised_status(self) -> TrainingStatus:
        return normalise_status(self.status)

    @property
    def is_terminal(self) -> bool:
        return self.status not in IN_PROGRESS_STATUSES

    @property
    def error_message(self) -> str | None:
        if self.error is None:
            return None if self.normalised_status == TrainingStatus.SUCCEEDED else f"training ended as {self.status}"
        return str(self.error)[:1000]


@dataclass(frozen=True, kw_only=True)
class ReplicateTraining(ReplicateObject):
    """A training: `model`/`version` are the *trainer's*, never the new destination version."""

    model: str | None = None
    version: str | None = None

    OPTIONAL_TEXT: ClassVar[tuple[str, ...]] = ("created_at", "completed_at", "model", "version")


@dataclass(frozen=True, kw_only=True)
class ReplicatePrediction(ReplicateObject):
    version: str | None = None

    OPTIONAL_TEXT: ClassVar[tuple[str, ...]] = ("created_at", "completed_at", "version")

    @property
    def output_urls(self) -> list[str]:
        """Image models answer a list of URLs, sometimes a single URL."""
        if isinstance(self.output, str):
            return [self.output]
        if isinstance(self.output, list):
            return [item for item in self.output if isinstance(item, str)]
        return []
