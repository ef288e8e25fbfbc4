"""End to end: `python -m infra.local up` in its own process on free ports, driven only over HTTP
(the local API and the emulator), then stopped with Ctrl-C as a developer would."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from infra.local.demo import Demo
from infra.local.polling import poll_until
from infra.local.template import REPO_ROOT
from tests.fixtures import free_port

STARTUP_SECONDS = 60


class RunningStack:
    def __init__(self, process: subprocess.Popen[bytes], ports: list[str], api: str, emulator: str,
                 state: Path) -> None:
        self.process, self.ports, self.api, self.emulator, self.state = process, ports, api, emulator, state


def wait_for_line(log: Path, pattern: str, process: subprocess.Popen[bytes]) -> str:
    """The first group of the first line of the stack's output matching `pattern`, once printed."""

    def printed() -> str | None:
        found = re.search(pattern, log.read_text(errors="replace"), re.MULTILINE)
        if found:
            return found.group(1)
        if process.poll() is not None:
            raise AssertionError(f"the stack exited early:\n{log.read_text(errors='replace')[-3000:]}")
        return None

    line: str | None = poll_until(printed, timeout=STARTUP_SECONDS)
    assert line is not None, f"no line matching {pattern!r} within {STARTUP_SECONDS}s"
    return line


@pytest.fixture
def running_stack(tmp_path: Path) -> Iterator[RunningStack]:
    log = tmp_path / "stack.log"
    ports = [str(free_port()) for _ in range(3)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "infra.local", "up", "--port", ports[0], "--replicate-port", ports[1],
             "--aws-port", ports[2], "--training-seconds", "0.5", "--prediction-seconds", "0.2"],
            cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
            env={**_env(), "PYTHONPATH": str(REPO_ROOT), "LORAPIN_LOCAL_STATE": str(tmp_path / "state.json")})
    try:
        api = wait_for_line(log, r"^API: (http://\S+)$", process)
        emulator = wait_for_line(log, r"^Replicate emulator: (http://\S+)$", process)
        yield RunningStack(process, ports, api, emulator, tmp_path / "state.json")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LORAPIN_", "POWERTOOLS_"))}


def test_the_retraining_story_over_http_on_a_stack_started_with_up(running_stack: RunningStack) -> None:
    stack = running_stack
    assert stack.api == f"http://127.0.0.1:{stack.ports[0]}"
    assert stack.emulator == f"http://127.0.0.1:{stack.ports[1]}"
    # the local API refuses a request without the local token, as API Gateway's JWT authorizer would
    assert requests.get(f"{stack.api}/model", timeout=10).status_code == 401
    token = subprocess.run([sys.executable, "-m", "infra.local", "token", "e2e-user"], capture_output=True,
                           text=True, check=True, cwd=REPO_ROOT).stdout.strip()
    own = requests.get(f"{stack.api}/model", headers={"authorization": f"Bearer {token}"}, timeout=10)
    assert own.status_code == 404 and own.json()["error"]["code"] == "NO_MODEL"

    demo = Demo(stack.api, stack.emulator, user="e2e-user")
    demo.run()  # raises StepFailed when any step misbehaves
    assert demo.timeline.failures == []
    assert len(demo.versions) == 2 and len(set(demo.versions.values())) == 2
    calls = requests.get(f"{stack.emulator}/_emulator/calls", timeout=10).json()
    assert all(set(call) >= {"method", "path", "status", "at"} for call in calls)
    assert sum(1 for c in calls if c["method"] == "POST" and c["path"].endswith("/trainings")) == 2

    # `invoke` (sam local invoke without Docker) runs a template function against this running stack,
    # found through its state file, re-signing the sample's stale signature: the handler answers
    # (an unknown training) instead of 401
    assert json.loads(stack.state.read_text())["api_url"] == stack.api
    env = {**_env(), "PYTHONPATH": str(REPO_ROOT), "LORAPIN_LOCAL_STATE": str(stack.state)}
    webhook = subprocess.run([sys.executable, "-m", "infra.local", "invoke", "ReplicateWebhookFunction", "-e",
                              "events/training_succeeded.json"], capture_output=True, text=True, cwd=REPO_ROOT,
                             env=env, timeout=120)
    assert webhook.returncode == 0, webhook.stderr[-2000:]
    response = json.loads(webhook.stdout[webhook.stdout.index("{\n"):])
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"outcome": "ignored_unknown"}
    unknown = subprocess.run([sys.executable, "-m", "infra.local", "invoke", "NoSuchFunction", "-e",
                              "events/training_succeeded.json"], capture_output=True, text=True, cwd=REPO_ROOT,
                             env=env, timeout=120)
    assert unknown.returncode != 0 and "ReplicateWebhookFunction" in unknown.stderr

    # Ctrl-C stops it cleanly, and it forgets its state file
    stack.process.send_signal(signal.SIGINT)
    assert stack.process.wait(timeout=20) == 0
    assert not stack.state.exists()
