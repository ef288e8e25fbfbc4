"""Waiting for something asynchronous (a webhook, an event, a training) to happen."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

FIRST_INTERVAL = 0.02
MAX_INTERVAL = 0.25


def poll_until(condition: Callable[[], Any], *, timeout: float, interval: float | None = None) -> Any:
    """Call `condition` until it returns something truthy, and return that; None after `timeout` s.

    Checks come quickly at first and then further apart (each one is a request through the whole
    local stack), unless a fixed `interval` is given."""
    deadline = time.monotonic() + timeout
    wait = interval or FIRST_INTERVAL
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(wait)
        if interval is None:
            wait = min(wait * 1.5, MAX_INTERVAL)
