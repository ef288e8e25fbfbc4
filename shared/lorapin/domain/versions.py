"""Replicate version references (R2).

A version id is 64 lowercase hex characters. The UI's 8-character form is an abbreviation and is
never accepted. `output.version` of a training is `owner/name:<id>`; anything else is rejected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lorapin.domain.errors import InvalidVersionRef

VERSION_ID_PATTERN = re.compile(r"^[0-9a-f]{64}$")
# Replicate model owners and names: letters, digits, dashes, underscores and dots.
MODEL_PART_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def is_version_id(value: str) -> bool:
    return bool(VERSION_ID_PATTERN.fullmatch(value))


@dataclass(frozen=True, slots=True)
class ModelName:
    """A Replicate model, `owner/name`."""

    owner: str
    name: str

    @classmethod
    def parse(cls, value: str) -> ModelName:
        if not isinstance(value, str) or value.count("/") != 1:
            raise InvalidVersionRef(f"not an owner/name model: {value!r}")
        owner, name = value.split("/")
        if not (MODEL_PART_PATTERN.fullmatch(owner) and MODEL_PART_PATTERN.fullmatch(name)):
            raise InvalidVersionRef(f"not an owner/name model: {value!r}")
        return cls(owner, name)

    def __str__(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass(frozen=True, slots=True)
class VersionRef:
    """One version of one model: renders as `owner/name:id`, the form predictions are pinned with."""

    owner: str
    name: str
    id: str

    @property
    def model(self) -> ModelName:
        return ModelName(self.owner, self.name)

    @property
    def ref(self) -> str:
        return f"{self.owner}/{self.name}:{self.id}"

    def __str__(self) -> str:
        return self.ref

    @classmethod
    def of(cls, model: ModelName | str, version_id: str) -> VersionRef:
        model = ModelName.parse(model) if isinstance(model, str) else model
        if not is_version_id(version_id):
            raise InvalidVersionRef(f"not a 64-character version id: {version_id!r}")
        return cls(model.owner, model.name, version_id)

    @classmethod
    def parse(cls, value: object, *, default_model: ModelName | str | None = None) -> VersionRef:
        """Parse `owner/name:id`, or a bare id when `default_model` says whose version it is."""
        if not isinstance(value, str) or not value:
            raise InvalidVersionRef(f"version must be a non-empty string, got {value!r}")
        value = value.strip()
        if ":" in value:
            model_part, _, version_id = value.partition(":")
            return cls.of(ModelName.parse(model_part), version_id)
        if default_model is None:
            raise InvalidVersionRef(f"bare version id without a model: {value!r}")
        return cls.of(default_model, value)


def parse_training_output_version(
    output: object, *, destination: ModelName | str, trainer_version_id: str | None
) -> VersionRef:
    """Turn a training's `output.version` into the destination's new version, or raise (R2).

    Accepts `owner/name:id` (what Replicate sends) and a bare id (older clients stored that),
    but the model must be the recorded destination and the id must not be the trainer's version.
    """
    destination = ModelName.parse(destination) if isinstance(destination, str) else destination
    if not isinstance(output, dict):
        raise InvalidVersionRef("training output is missing")
    raw = output.get("version")
    ref = VersionRef.parse(raw, default_model=destination)
    if ref.model != destination:
        raise InvalidVersionRef(f"version {ref.ref} belongs to {ref.model}, not the destination {destination}")
    if trainer_version_id and ref.id == trainer_version_id:
        raise InvalidVersionRef("output.version is the trainer's version, not a new version of the destination")
    return ref
