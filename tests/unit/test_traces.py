"""Traces without secrets: X-Ray keeps no handler response. `POST /uploads` and `GET /generations`
answer with presigned S3 URLs; stored as trace metadata, anyone who can read traces could use them.

Two guards, each checked on its own: the template turns response capture off for every function
(`POWERTOOLS_TRACER_CAPTURE_RESPONSE`), and every handler's decorator says `capture_response=False`."""

from __future__ import annotations

import ast
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.local.apigw import http_api_event
from infra.local.functions import LocalContext, load_handler
from infra.local.template import Template, load_template

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"
HANDLER_FILES = sorted(FUNCTIONS_DIR.glob("*/app.py"))


class RecordingSubsegment:
    def __init__(self) -> None:
        self.metadata: list[tuple[str, Any]] = []

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        self.metadata.append((f"{namespace}/{key}", value))

    def put_annotation(self, key: str, value: Any) -> None:
        _ = key, value


class RecordingProvider:
    """Stands in for the X-Ray recorder: keeps what the Tracer would send."""

    def __init__(self) -> None:
        self.subsegments: list[RecordingSubsegment] = []

    @contextlib.contextmanager
    def in_subsegment(self, name: str | None = None, **options: Any) -> Iterator[RecordingSubsegment]:
        _ = name, options
        subsegment = RecordingSubsegment()
        self.subsegments.append(subsegment)
        yield subsegment

    def metadata(self) -> list[tuple[str, Any]]:
        return [item for subsegment in self.subsegments for item in subsegment.metadata]


def capture_response_arguments(path: Path) -> list[Any]:
    """For each `capture_lambda_handler` decorator in `path`, its `capture_response` argument
    (the constant), or the string "absent" when the decorator leaves it to the environment."""
    found: list[Any] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            call = decorator if isinstance(decorator, ast.Call) else None
            target = call.func if call else decorator
            if isinstance(target, ast.Attribute) and target.attr == "capture_lambda_handler":
                keywords = {k.arg: k.value for k in call.keywords} if call else {}
                value = keywords.get("capture_response")
                found.append(value.value if isinstance(value, ast.Constant) else "absent")
    return found


def test_the_template_turns_response_capture_off_for_every_function() -> None:
    variables = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"
    for spec in Template().functions().values():  # no function turns it back on
        assert spec.environment["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false", spec.logical_id


@pytest.mark.parametrize("path", HANDLER_FILES, ids=lambda p: p.parent.name)
def test_every_handler_decorator_says_capture_response_false(path: Path) -> None:
    assert capture_response_arguments(path) == [False]


def test_the_decorator_check_sees_a_handler_that_captures(tmp_path: Path) -> None:
    bare = tmp_path / "bare.py"
    bare.write_text("@tracer.capture_lambda_handler\ndef lambda_handler(event, context):\n    pass\n")
    explicit = tmp_path / "explicit.py"
    explicit.write_text("@tracer.capture_lambda_handler(capture_response=True)\ndef h(event, context):\n    pass\n")
    assert capture_response_arguments(bare) == ["absent"]
    assert capture_response_arguments(explicit) == [True]


def _events() -> dict[str, dict[str, Any]]:
    claims = {"sub": "trace-user", "iss": "local", "aud": "lorapin-frontend"}
    return {
        "TrainingApiFunction": http_api_event("POST", "/uploads", route_key="POST /uploads", claims=claims,
                                              body=json.dumps({"count": 1}),
                                              headers={"content-type": "application/json"}),
        "GenerationFunction": http_api_event("GET", "/generations/gen_missing", route_key="GET /generations/{id}",
                                             path_parameters={"id": "gen_missing"}, claims=claims),
        "ReplicateWebhookFunction": http_api_event("POST", "/webhooks/replicate/training", body="{}",
                                                   route_key="POST /webhooks/replicate/training",
                                                   headers={"content-type": "application/json"}),
        "ReconcilerFunction": {"id": "schedule-1", "detail-type": "Scheduled Event", "source": "aws.events",
                               "detail": {}},
    }


@pytest.mark.parametrize("function_id", sorted(_events()))
def test_no_function_stores_its_response_in_a_trace(function_id: str, in_process_aws: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Given the handler alone (the template's environment variable removed), what it answers is
    not trace metadata."""
    from lorapin.observability import tracer

    spec = Template().functions()[function_id]
    env = {k: v for k, v in in_process_aws.function_env[function_id].items()
           if k != "POWERTOOLS_TRACER_CAPTURE_RESPONSE"}
    monkeypatch.delenv("POWERTOOLS_TRACER_CAPTURE_RESPONSE", raising=False)
    handler = load_handler(spec, env)
    monkeypatch.delenv("POWERTOOLS_TRACER_CAPTURE_RESPONSE", raising=False)
    provider = RecordingProvider()
    monkeypatch.setattr(tracer, "provider", provider)

    response = handler(_events()[function_id], LocalContext(function_id))

    assert provider.subsegments, "the handler was not traced at all"
    assert provider.metadata() == []
    if function_id == "TrainingApiFunction":  # the response did hold a presigned upload
        assert response["statusCode"] == 201
        assert json.loads(response["body"])["uploads"][0]["fields"]["policy"]
