"""Waiting for something asynchronous (a webhook, an event, a training) to happen."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def poll_until(condition: Callable[[], Any], *, timeout: float, interval: float = 0.05) -> Any:
    """Call `condition` until it returns something truthy, and return that; None after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)
