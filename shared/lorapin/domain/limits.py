"""Per-user generation limits (REQUIREMENTS §4): so one user cannot queue thousands of generations
and starve everyone else. A fixed one-minute window of requests and a count of generations in
flight, both kept on the user's model item and checked in the write that records a generation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

IN_FLIGHT_RETRY_SECONDS = 30  # a prediction usually ends within this


@dataclass(frozen=True)
class GenerationLimits:
    per_minute: int = 20
    in_flight: int = 50


@dataclass(frozen=True)
class Admission:
    """Whether one more generation may start now; if so, the window values to write."""

    allowed: bool
    window: str  # the minute this request falls in, e.g. "2026-12-07T01:47"
    window_count: int  # requests in that minute, this one included
    retry_after_seconds: int = 0
    reason: str = ""


def window_of(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M")


def admit(now: datetime, *, window: str | None, window_count: int, in_flight: int,
          limits: GenerationLimits) -> Admission:
    """Decide on the values read from the model item (pure)."""
    current = window_of(now)
    used = window_count if window == current else 0
    if used >= limits.per_minute:
        return Admission(False, current, used, 60 - now.second,
                         f"at most {limits.per_minute} generations a minute")
    if in_flight >= limits.in_flight:
        return Admission(False, current, used, IN_FLIGHT_RETRY_SECONDS,
                         f"at most {limits.in_flight} generations in flight")
    return Admission(True, current, used + 1)
