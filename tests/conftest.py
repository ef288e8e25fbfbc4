"""Test-wide set-up. moto is imported before any boto3 client exists, and every test runs with
fake credentials and a region so that nothing can reach real AWS."""

from __future__ import annotations

import os

os.environ.update({
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "Lorapin",
    "POWERTOOLS_SERVICE_NAME": "lorapin",
    "POWERTOOLS_DEV": "false",
})
os.environ.pop("AWS_ENDPOINT_URL", None)

import moto  # noqa: F401  - must come before any boto3 client
import pytest

pytest_plugins = ["tests.fixtures"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test is marked by its folder (unit, integration, e2e, artifact), so `pytest -m "not e2e"` works."""
    for item in items:
        layer = item.path.parent.name
        if layer in ("unit", "integration", "e2e", "artifact"):
            item.add_marker(layer)
