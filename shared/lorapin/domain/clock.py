"""Time and identifiers, in one place so that records sort and compare the same everywhere.

Deployed, time is the system clock. The local stack and `make bench` can run an accelerated clock
(a 20-minute training lasting seconds): every process that is given the same spec
(`LORAPIN_CLOCK`, e.g. `accelerated:1795830000.0:120`) computes the same emulated time, so the
functions, the reconciler and the Replicate emulator agree on it. Signatures and presigned URLs
keep using real time; only lorapin's own timestamps and schedules follow this clock.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

SYSTEM = "system"


@dataclass(frozen=True)
class Clock:
    """Real time, or real time running `rate` times faster from the moment `start` (Unix seconds)."""

    start: float = 0.0
    rate: float = 1.0

    @classmethod
    def parse(cls, spec: str) -> Clock:
        """`system`, or `accelerated:<start>:<rate>`."""
        if spec in ("", SYSTEM):
            return cls()
        kind, _, rest = spec.partition(":")
        start, _, rate = rest.partition(":")
        try:
            clock = cls(float(start), float(rate))
        except ValueError as exc:
            raise ValueError(f"not a clock: {spec!r} (use 'system' or 'accelerated:<start>:<rate>')") from exc
        if kind != "accelerated" or clock.rate <= 0:
            raise ValueError(f"not a clock: {spec!r} (use 'system' or 'accelerated:<start>:<rate>')")
        return clock

    @classmethod
    def accelerated(cls, rate: float) -> Clock:
        return cls(time.time(), rate)

    @property
    def spec(self) -> str:
        return SYSTEM if self.rate == 1.0 else f"accelerated:{self.start!r}:{self.rate!r}"

    def now(self) -> datetime:
        if self.rate == 1.0:
            return datetime.now(tz=UTC)
        return datetime.fromtimestamp(self.start + (time.time() - self.start) * self.rate, tz=UTC)

    def real_seconds(self, seconds: float) -> float:
        """How long `seconds` of this clock's time last in real time."""
        return seconds / self.rate

    def clock_seconds(self, real_seconds: float) -> float:
        """How much of this clock's time passes in `real_seconds`."""
        return real_seconds * self.rate


class TimeSource(Protocol):
    def now(self) -> datetime: ...

    def real_seconds(self, seconds: float) -> float: ...

    def clock_seconds(self, real_seconds: float) -> float: ...


_clock: TimeSource = Clock()


def use(clock: TimeSource) -> None:
    """Make `clock` the process's clock (a function's cold start, the local stack, the bench, a test)."""
    global _clock
    _clock = clock


def current() -> TimeSource:
    return _clock


def utc_now() -> datetime:
    return _clock.now()


def processing_time(real: timedelta) -> timedelta:
    """A span that bounds how long *processing* may take (a lease, a request in progress), in this
    clock's time: it lasts `real` in real time, however fast the clock runs."""
    return timedelta(seconds=_clock.clock_seconds(real.total_seconds()))


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a `Z`: sorts lexicographically in time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def now_iso() -> str:
    return iso(utc_now())


def new_id(prefix: str) -> str:
    """`trn_…`, `gen_…`: a time-ordered, unguessable id."""
    return f"{prefix}_{utc_now().strftime('%Y%m%d%H%M%S')}{secrets.token_hex(8)}"


def is_our_id(value: str, prefix: str) -> bool:
    """Whether `value` has the shape `new_id(prefix)` gives."""
    return re.fullmatch(rf"{re.escape(prefix)}_\d{{14}}[0-9a-f]{{16}}", value) is not None
