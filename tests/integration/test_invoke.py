"""`python -m infra.local invoke` without a running stack: a fresh one is started for the call."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from infra.local.invoke import invoke_function
from infra.local.template import REPO_ROOT


def test_invoke_starts_a_fresh_stack_when_none_runs_and_re_signs_the_sample(
        moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORAPIN_LOCAL_STATE", str(tmp_path / "no-stack.json"))
    saved = dict(os.environ)
    event = json.loads((REPO_ROOT / "events" / "training_succeeded.json").read_text(encoding="utf-8"))
    try:
        response = invoke_function("ReplicateWebhookFunction", event, aws_endpoint=moto_server)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert response["statusCode"] == 200  # re-signed with the fresh stack's secret: not 401
    assert json.loads(response["body"]) == {"outcome": "ignored_unknown"}
    with pytest.raises(SystemExit, match="ReplicateWebhookFunction"):
        invoke_function("NoSuchFunction", event, aws_endpoint=moto_server)
