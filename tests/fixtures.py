"""Shared fixtures: moto (in-process and over HTTP), the Replicate emulator, the resources of
`template.yaml`, and the functions loaded from it."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import Harness


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's server on 127.0.0.1: a real HTTP connection, shared by the session."""
    from infra.local.moto_server import AtomicMotoServer

    server = AtomicMotoServer(ip_address="127.0.0.1", port=free_port())
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def emulator() -> Iterator[Any]:
    from infra.emulator import ReplicateEmulator

    with ReplicateEmulator(training_seconds=0.2, prediction_seconds=0.1) as running:
        yield running


@pytest.fixture
def harness(moto_server: str, emulator: Any) -> Iterator[Harness]:
    """The integration world: template resources on moto's server (a fresh prefix per test), the
    emulator over HTTP, and the functions behind a local HTTP API that the emulator's webhooks reach."""
    with Harness.start(moto_server, emulator, prefix=f"t{uuid.uuid4().hex[:10]}") as world:
        yield world


@pytest.fixture
def in_process_aws() -> Iterator[Any]:
    """moto in-process with every resource of template.yaml, and the functions' environment set."""
    from aws_lambda_powertools.utilities import parameters
    from moto import mock_aws

    from infra.local.aws_stack import provision
    from infra.local.functions import apply_environment
    from infra.local.template import Template

    saved = dict(os.environ)
    parameters.clear_caches()  # Powertools keeps one provider (and its endpoint) per process
    with mock_aws():
        stack = provision(Template(), endpoint_url=None, parameters={"ReplicateOwner": "acme"},
                          secret_value={"api_token": "r8_unit", "webhook_signing_secret": UNIT_SIGNING_SECRET},
                          env_overrides={"REPLICATE_BASE_URL": "http://127.0.0.1:9"})
        apply_environment(stack.function_env["ReplicateWebhookFunction"])
        yield stack
    parameters.clear_caches()
    os.environ.clear()
    os.environ.update(saved)


UNIT_SIGNING_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
