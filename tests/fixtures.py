"""Shared fixtures: moto (in-process and over HTTP), the Replicate emulator, the resources of
`template.yaml`, and the functions loaded from it."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
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


@pytest.fixture(scope="module")
def world(moto_server: str) -> Iterator[Harness]:
    """The integration world, one per test module: template resources on moto's server (a prefix
    of its own), the emulator over HTTP, and the functions behind a local HTTP API that the
    emulator's webhooks reach. Tests of a module share it, each with users of its own."""
    from infra.emulator import ReplicateEmulator

    with ReplicateEmulator(training_seconds=0.2, prediction_seconds=0.1) as emulator, \
            Harness.start(moto_server, emulator, prefix=f"t{uuid.uuid4().hex[:10]}") as started:
        yield started


@pytest.fixture
def harness(world: Harness) -> Iterator[Harness]:
    """The module's world for one test: what the test sees of calls, deliveries and events starts
    empty, and when it ends nothing it set in motion is left running (see `Harness.end_test`)."""
    world.begin_test()
    yield world
    world.end_test()


@contextlib.contextmanager
def _dynamodb_one_request_at_a_time() -> Iterator[None]:
    """moto's DynamoDB requests, one at a time, as `AtomicMotoServer` runs them: the reconciler
    works items on threads, and moto's in-process query reads items' attributes while another
    thread's update changes them ("dictionary keys changed during iteration", seen once in a run)."""
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.Lock()
    unserialised = DynamoHandler.call_action

    def call_action(handler: Any) -> Any:
        with lock:
            return unserialised(handler)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    try:
        yield
    finally:
        DynamoHandler.call_action = unserialised  # type: ignore[method-assign]


@contextlib.contextmanager
def moto_in_process() -> Iterator[Any]:
    """moto in-process with every resource of template.yaml, and the functions' environment set."""
    from aws_lambda_powertools.utilities import parameters
    from moto import mock_aws

    from infra.local.aws_stack import provision
    from infra.local.functions import apply_environment
    from infra.local.template import Template

    saved = dict(os.environ)
    parameters.clear_caches()  # Powertools keeps one provider (and its endpoint) per process
    with mock_aws(), _dynamodb_one_request_at_a_time():
        # moto drops boto3's default session on every start, and with it botocore's cache of
        # service models: keep one for the whole run (moto patches clients of any session).
        boto3.DEFAULT_SESSION = _shared_boto3_session()
        stack = provision(Template(), endpoint_url=None, parameters={"ReplicateOwner": "acme"},
                          secret_value={"api_token": "r8_unit", "webhook_signing_secret": UNIT_SIGNING_SECRET},
                          env_overrides={"REPLICATE_BASE_URL": "http://127.0.0.1:9"})
        apply_environment(stack.function_env["ReplicateWebhookFunction"])
        yield stack
    parameters.clear_caches()
    os.environ.clear()
    os.environ.update(saved)


@functools.lru_cache(maxsize=1)
def _shared_boto3_session() -> Any:
    return boto3.session.Session()


@pytest.fixture
def in_process_aws() -> Iterator[Any]:
    """Fresh in-process AWS for one test."""
    with moto_in_process() as stack:
        yield stack


@pytest.fixture(scope="module")
def shared_in_process_aws() -> Iterator[Any]:
    """In-process AWS shared by a module's tests (which then use ids of their own)."""
    with moto_in_process() as stack:
        yield stack


UNIT_SIGNING_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
