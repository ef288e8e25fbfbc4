"""Logger, Tracer and Metrics, set up once and shared by every function.

Every handler is decorated in the same order: context (logger) → metrics → tracer.
"""

from __future__ import annotations

import os
import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "lorapin")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Lorapin")

logger = Logger(service=SERVICE)
# Patch botocore only: by default the Tracer patches every library it supports that is installed,
# and patching httpx (the replicate client's) imports it at cold start, ~40 ms, in every function.
tracer = Tracer(service=SERVICE, patch_modules=["botocore"])
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

# A duplicate webhook or a read-only request legitimately records no metric; Powertools warns on
# every such invocation, which would drown real warnings in the logs.
warnings.filterwarnings("ignore", message="No application metrics to publish")

__all__ = ["MetricUnit", "count", "logger", "metrics", "milliseconds", "trace_replicate_calls", "tracer"]


def trace_replicate_calls() -> None:
    """Patch httpx (the replicate client's transport) for X-Ray, on the first path that calls
    Replicate rather than at every function's cold start."""
    tracer.patch(["httpx"])


def count(name: str, value: float = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def milliseconds(name: str, value: float) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=value)
