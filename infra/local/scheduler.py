"""The template's `Schedule` events, run locally: each function with a `rate(...)` schedule is
invoked with a Scheduled Event at that rate, on the stack's clock (accelerated in `make bench`),
as EventBridge Scheduler would invoke it."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lorapin.domain import clock
from lorapin.domain.clock import iso, utc_now

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_SECONDS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


def rate_seconds(expression: str) -> float:
    """`rate(5 minutes)` → 300. Cron expressions are not run locally (none is used)."""
    found = _RATE.match(expression.strip())
    if not found:
        raise ValueError(f"the local stack runs rate(...) schedules only, not {expression!r}")
    return int(found.group(1)) * _SECONDS[found.group(2)]


@dataclass
class ScheduledRun:
    function_id: str
    started_at: str  # on the stack's clock
    finished_at: str
    result: Any


@dataclass
class Scheduler:
    """Invokes `invoke(function_id, event)` for each schedule, every `period` of the stack's clock."""

    schedules: dict[str, float]  # function id → period in seconds (stack clock)
    invoke: Callable[[str, dict[str, Any]], Any]
    runs: list[ScheduledRun] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Scheduler:
        for function_id, period in self.schedules.items():
            thread = threading.Thread(target=self._loop, args=(function_id, period), daemon=True,
                                      name=f"schedule-{function_id}")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self, function_id: str, period: float) -> None:
        next_run = time.monotonic() + clock.current().real_seconds(period)
        while not self._stop.wait(max(0.0, next_run - time.monotonic())):
            next_run += clock.current().real_seconds(period)
            started = iso(utc_now())
            event = {"id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
                     "time": started, "detail": {}}
            try:
                result = self.invoke(function_id, event)
            except Exception as exc:  # a failed run is retried by the next one, as on AWS
                result = {"error": repr(exc)}
            self.runs.append(ScheduledRun(function_id, started, iso(utc_now()), result))
