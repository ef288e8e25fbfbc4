"""The JSON shapes the API answers with (REQUIREMENTS §4 `Training`, `Model`, `Generation`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lorapin.adapters.tables import GenerationItem, ModelItem, TrainingItem, VersionInfo, VersionItem
from lorapin.domain.statuses import ActivationReason


def training_view(item: TrainingItem) -> dict[str, Any]:
    return {
        "id": item.training_id,
        "replicate_training_id": item.replicate_training_id,
        "status": item.status,
        "seq": int(item.seq),
        "mode": item.mode,
        "image_count": int(item.image_count or 0),
        "trigger_word": item.trigger_word,
        "destination": item.destination,
        "params": item.params or {},
        "version_id": item.version_id,
        "error": item.error,
        "created_at": item.created_at,
        "completed_at": item.completed_at,
    }


def current_version_view(info: VersionInfo | None) -> dict[str, Any] | None:
    if info is None:
        return None
    return {
        "id": info.id,
        "ref": info.ref,
        "trigger_word": info.trigger_word,
        "training_id": info.training_id,
        "seq": int(info.seq),
        "activated_at": info.activated_at,
        "reason": info.reason,
    }


def version_view(v: VersionItem, current: VersionInfo | None) -> dict[str, Any]:
    is_current = bool(current and current.id == v.version_id)
    return {
        "id": v.version_id,
        "ref": v.ref,
        "trigger_word": v.trigger_word,
        "training_id": v.training_id,
        "seq": int(v.seq),
        "activated_at": current.activated_at if current and is_current else v.created_at,
        "reason": current.reason if current and is_current else ActivationReason.TRAINING,
        "image_count": int(v.image_count or 0),
        "active": is_current,
    }


def model_view(model: ModelItem, versions: list[VersionItem], versions_next_cursor: str | None = None
               ) -> dict[str, Any]:
    """The model with (a page of) its versions, newest first; `versions_next_cursor` continues the
    list at `GET /model/versions`."""
    current = model.current_version
    return {
        "destination": model.destination,
        "trigger_word": model.trigger_word,
        "status": model.status,
        "current_version": current_version_view(current),
        "versions": [version_view(v, current) for v in versions],
        "versions_next_cursor": versions_next_cursor,
    }


def generation_view(item: GenerationItem, url_for: Callable[[str], str]) -> dict[str, Any]:
    return {
        "id": item.generation_id,
        "status": item.status,
        "prompt": item.prompt,
        "model_version_ref": item.model_version_ref,
        "seed": int(item.seed) if item.seed is not None else None,
        "replicate_prediction_id": item.replicate_prediction_id,
        "outputs": [url_for(str(key)) for key in (item.output_keys or [])],
        "error": item.error,
        "created_at": item.created_at,
        "completed_at": item.completed_at,
    }
