"""Replicate's objects as lorapin reads them: tolerant of what it may add, strict about what it
relies on, and never more than a 400 (`InvalidReplicateObject`) for what is not one."""

from __future__ import annotations

import json

import pytest

from lorapin.domain.replicate_objects import InvalidReplicateObject, ReplicatePrediction, ReplicateTraining
from lorapin.domain.statuses import TrainingStatus


def test_unknown_fields_are_ignored_and_unknown_statuses_kept_as_failed() -> None:
    training = ReplicateTraining.parse_json(json.dumps({
        "id": "r8t", "status": "aborted", "model": "ostris/flux-dev-lora-trainer", "version": "v" * 64,
        "output": None, "logs": "...", "metrics": {"predict_time": 3.2}, "urls": {"get": "https://x"}}))
    assert (training.id, training.status, training.model) == ("r8t", "aborted", "ostris/flux-dev-lora-trainer")
    assert training.normalised_status == TrainingStatus.FAILED and training.is_terminal
    assert training.error_message == "training ended as aborted"


def test_nulls_are_absent_values() -> None:
    prediction = ReplicatePrediction.parse({"id": "p1", "status": "processing", "input": None, "output": None,
                                            "created_at": None, "version": None})
    assert prediction.input is None and prediction.output_urls == [] and not prediction.is_terminal


@pytest.mark.parametrize("data", [
    [], "text", {"status": "succeeded"}, {"id": "", "status": "succeeded"}, {"id": "x" * 201, "status": "ok"},
    {"id": 7, "status": "succeeded"}, {"id": "r8", "status": None}, {"id": "r8", "status": "s", "input": [1]},
    {"id": "r8", "status": "s", "created_at": 1700000000}, {"id": "r8", "status": "s", "model": {"name": "x"}},
])
def test_what_is_not_a_training_is_refused(data: object) -> None:
    with pytest.raises(InvalidReplicateObject):
        ReplicateTraining.parse(data)


@pytest.mark.parametrize("raw", ["", "{", b"\xff\xfe", "[" * 100_000 + "]" * 100_000,
                                 '{"id": "p1", "status": "ok"}'.encode("utf-16"),  # JSON, but not UTF-8
                                 b'\xef\xbb\xbf{"id": "p1", "status": "ok"}',  # a byte order mark
                                 '{"id": "p1", "status": "ok", "error": "\\ud800"}',  # an escaped lone surrogate
                                 '{"id": "p1\ud800", "status": "ok"}'])  # and one in the text
def test_what_is_not_json_is_refused(raw: str | bytes) -> None:
    with pytest.raises(InvalidReplicateObject):
        ReplicatePrediction.parse_json(raw)
