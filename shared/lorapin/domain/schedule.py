"""When the reconciler should look at something again (I8 at a bounded cost on Replicate).

Everything in flight carries a `due_at`: the reconciler reads only what is due, most overdue first,
and each look moves `due_at` on. A webhook that arrives takes the item off the schedule altogether.

- A training is first looked at when it could plausibly have finished: the *earliest* duration the
  deployment has seen for trainings of that size (or a guess from its steps before there is any
  history). From then on it is due at every run until it is *late*; each run looks all due
  trainings up together in Replicate's list of recent trainings (one call for up to 100), so a lost
  webhook is recovered within one schedule period and a webhook that arrives costs no call. A late
  training is looked at alone, with a growing interval, and canceled past the maximum age.
- A generation's prediction takes seconds: it is first looked at after `PREDICTION_FIRST_CHECK`
  (its webhook has normally come by then), then with a doubling interval.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

SECONDS_PER_STEP = 1.2
"""Without history, a FLUX LoRA training is guessed at 1.2 s per step (1000 steps: 20 minutes)."""
MIN_SAMPLES = 5  # observed durations of one size before they replace the guess
KEPT_SAMPLES = 50  # the most recent durations kept per size
LATE_FACTOR = 1.5  # a training is late past 1.5 x the longest duration seen (or guessed: 2 x)
FIRST_LATE_INTERVAL = timedelta(minutes=10)
MAX_INTERVAL = timedelta(hours=1)
MAX_TRAINING_AGE = timedelta(hours=6)  # then it is canceled: "training forever" ends here

PREDICTION_FIRST_CHECK = timedelta(minutes=2)
FIRST_PREDICTION_INTERVAL = timedelta(minutes=2)
MAX_PREDICTION_INTERVAL = timedelta(minutes=15)
MAX_GENERATION_AGE = timedelta(minutes=30)  # then a prediction still running is canceled
OUTPUTS_KEPT = timedelta(hours=1)  # Replicate deletes API outputs an hour after the prediction ends

RETRY_AFTER_FAILURE = timedelta(minutes=5)  # an item whose look failed is due again after this


@dataclass(frozen=True)
class DurationEstimate:
    """How long trainings of one size take, from recent history or, lacking it, a guess."""

    earliest: timedelta  # no sooner than this is it worth looking
    typical: timedelta
    late: timedelta  # past this, something is off: look alone, less often
    samples: int

    @property
    def from_history(self) -> bool:
        return self.samples >= MIN_SAMPLES


def size_key(steps: int) -> str:
    """Trainings are compared by their step count: it sets their duration."""
    return f"steps={int(steps)}"


def estimate_duration(steps: int, observed_seconds: Sequence[float] = ()) -> DurationEstimate:
    from statistics import median  # here: with fractions, ~1.5 ms of every cold start that imports this module

    recent = sorted(s for s in observed_seconds[-KEPT_SAMPLES:] if s > 0)
    if len(recent) >= MIN_SAMPLES:
        earliest = recent[0] * 0.9  # a little before the fastest seen: a lost webhook is not waited on
        return DurationEstimate(timedelta(seconds=earliest), timedelta(seconds=median(recent)),
                                timedelta(seconds=recent[-1] * LATE_FACTOR), len(recent))
    guess = max(60.0, steps * SECONDS_PER_STEP)
    return DurationEstimate(timedelta(seconds=guess * 0.5), timedelta(seconds=guess),
                            timedelta(seconds=guess * 2), len(recent))


def first_training_check(created_at: datetime, estimate: DurationEstimate) -> datetime:
    return created_at + estimate.earliest


def next_training_check(now: datetime, created_at: datetime, estimate: DurationEstimate,
                        last_interval: timedelta | None) -> tuple[datetime, timedelta | None]:
    """After a look that found the training still running: when to look again, and the interval
    used (None while the training is not late: it is due at every run)."""
    if now - created_at < estimate.late:
        return now, None
    interval = min(MAX_INTERVAL, (last_interval or FIRST_LATE_INTERVAL / 2) * 2)
    return now + interval, interval


def next_prediction_check(now: datetime, last_interval: timedelta | None) -> tuple[datetime, timedelta]:
    interval = min(MAX_PREDICTION_INTERVAL, last_interval * 2 if last_interval else FIRST_PREDICTION_INTERVAL)
    return now + interval, interval


def shard_of(item_id: str, shards: int) -> int:
    """Which of the `shards` partition keys an item lives under: stable, and spread evenly."""
    return int.from_bytes(hashlib.sha256(item_id.encode("utf-8")).digest()[:4], "big") % shards
