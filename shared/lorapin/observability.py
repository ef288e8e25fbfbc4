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
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

# A duplicate webhook or a read-only request legitimately records no metric; Powertools warns on
# every such invocation, which would drown real warnings in the logs.
warnings.filterwarnings("ignore", message="No application metrics to publish")

__all__ = ["MetricUnit", "count", "logger", "metrics", "milliseconds", "tracer"]


def count(name: str, value: float = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def milliseconds(name: str, value: float) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=value)
