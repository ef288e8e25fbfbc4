"""REQUIREMENTS §10 correctness under load: mixed webhooks (new versions across many users, duplicates, late
deliveries, forgeries) from concurrent senders; then wrong current versions, lost events, forged
answers and throughput.

Each user gets several trainings whose slot is released as soon as each starts, so their successes
race out of order (a harder case than production, where I2 keeps one in flight): the seq guard (I1)
alone must leave the highest-seq successful training's version current.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass

import requests

from infra.bench.deliveries import FORGERIES, Delivery, forged, genuine, send
from infra.bench.events import ActivationTap, activated_delivered, dead_letters, wait_for_deliveries
from infra.bench.seeding import SeededTraining, Seeder
from infra.bench.table import Row
from infra.local.stack import LocalStack

TRAININGS_PER_USER = 3


@dataclass
class MixedResult:
    """What the run found; `failed` is true when the bench must exit non-zero."""

    rows: list[Row]
    failed: bool


def _outcomes(n: int) -> list[str]:
    """Outcomes of user n's trainings, by seq: mostly successes, some newest ones failing."""
    outcomes = ["succeeded"] * TRAININGS_PER_USER
    if n % 5 == 0:
        outcomes[-1] = "failed"
    if n % 7 == 0:
        outcomes[-2] = "canceled"
    if n % 11 == 0:
        outcomes[0] = "failed"
    return outcomes


def _expected_version(trainings: list[SeededTraining]) -> str | None:
    """The version of the user's highest-seq successful training (None: none succeeded)."""
    succeeded = [t for t in trainings if t.outcome == "succeeded"]
    return max(succeeded, key=lambda t: t.seq).version_id if succeeded else None


def plan_deliveries(by_user: dict[str, list[SeededTraining]], total: int, secret: str,
                    rng: random.Random) -> list[Delivery]:
    """Every training's own delivery, plus duplicates (same webhook-id), late ones (an older training
    again, new webhook-id, near the end) and forgeries (a tenth), in a shuffled send order."""
    trainings = [t for ts in by_user.values() for t in ts]
    forgeries = total // 10
    rest = total - len(trainings) - forgeries
    if rest < 0:
        raise ValueError(f"{total} webhooks cannot cover {len(trainings)} trainings plus {forgeries} forgeries")
    timed: list[tuple[float, Delivery]] = []
    primaries = [(rng.uniform(0.0, 0.6), genuine("primary", t, secret)) for t in trainings]
    timed += primaries
    for _ in range(rest // 2):
        at, original = rng.choice(primaries)
        assert original.training is not None
        timed.append((at + rng.uniform(0.0, 0.2), genuine("duplicate", original.training, secret,
                                                          webhook_id=original.webhook_id)))
    for _ in range(rest - rest // 2):
        older = [t for t in by_user[rng.choice(list(by_user))] if t.seq < TRAININGS_PER_USER]
        timed.append((rng.uniform(0.6, 1.0), genuine("late", rng.choice(older), secret)))
    for n in range(forgeries):
        newest = by_user[rng.choice(list(by_user))][-1]
        timed.append((rng.uniform(0.0, 1.0), forged(FORGERIES[n % len(FORGERIES)], newest, secret)))
    timed.sort(key=lambda item: item[0])
    return [delivery for _, delivery in timed]


def _send_all(deliveries: list[Delivery], senders: int) -> float:
    """Send with `senders` concurrent threads, each taking the next delivery; wall seconds."""
    work: queue.Queue[Delivery] = queue.Queue()
    for delivery in deliveries:
        work.put(delivery)

    def sender() -> None:
        with requests.Session() as session:
            while True:
                try:
                    delivery = work.get_nowait()
                except queue.Empty:
                    return
                send(session, delivery)

    threads = [threading.Thread(target=sender, name=f"bench-sender-{n}", daemon=True) for n in range(senders)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def _current_versions(stack: LocalStack, users: list[str]) -> dict[str, str | None]:
    """Each user's current version id, read consistently from the models table."""
    dynamodb = stack.aws.client("dynamodb")
    table = stack.aws.names["ModelsTable"]
    found: dict[str, str | None] = {}
    for user_id in users:
        item = dynamodb.get_item(TableName=table, Key={"user_id": {"S": user_id}}, ConsistentRead=True).get("Item")
        current = (item or {}).get("current_version", {}).get("M")
        found[user_id] = current["id"]["S"] if current else None
    return found


@dataclass
class Tally:
    """What the senders were answered."""

    activated: Counter[str]  # training id → deliveries answered `activated`
    outcomes: Counter[str]
    not_2xx: int
    retries: int
    misrouted: int  # answered ignored_unknown: every delivery here is for a training of ours
    forged: int
    forged_401: int
    forged_accepted: int

    @classmethod
    def of(cls, deliveries: list[Delivery]) -> Tally:
        genuine_ones = [d for d in deliveries if not d.forged]
        forgeries = [d for d in deliveries if d.forged]
        answered = [d for d in genuine_ones if d.final_status is not None and 200 <= d.final_status < 300]
        outcomes = Counter(str((d.answer or {}).get("outcome")) for d in answered)
        activated = Counter(d.training.training_id for d in answered
                            if d.training and (d.answer or {}).get("outcome") == "activated")
        return cls(activated=activated, outcomes=outcomes, not_2xx=len(genuine_ones) - len(answered),
                   retries=sum(len(d.statuses) - 1 for d in genuine_ones), misrouted=outcomes["ignored_unknown"],
                   forged=len(forgeries), forged_401=sum(1 for d in forgeries if d.final_status == 401),
                   forged_accepted=sum(1 for d in forgeries
                                       if d.final_status is not None and 200 <= d.final_status < 300))


def _collect_events(stack: LocalStack, tap: ActivationTap, activated: Counter[str], delivered_before: int) -> int:
    """Wait for the activations' events on the bench's queue and at the Generation function; how many
    the dispatcher delivered to it."""
    delivered = wait_for_deliveries(stack, delivered_before + len(activated)) - delivered_before
    deadline = time.monotonic() + 10
    while sum(1 for t in activated if tap.seen[t]) < len(activated) and time.monotonic() < deadline:
        tap.drain()
        time.sleep(0.2)
    tap.drain()
    return delivered


def run_mixed(stack: LocalStack, seeder: Seeder, *, users: int, total: int, senders: int, seed: int = 7) -> MixedResult:
    """Seed, send, let the events settle, then check the models and the events."""
    plan = {f"bench-mixed-{n:04d}": _outcomes(n) for n in range(users)}
    trainings = seeder.start_many(plan)
    seeder.finish(trainings)
    by_user: dict[str, list[SeededTraining]] = {user: [] for user in plan}
    for training in sorted(trainings, key=lambda t: t.seq):
        by_user[training.user_id].append(training)
    deliveries = plan_deliveries(by_user, total, stack.emulator.signing_secret, random.Random(seed))

    tap = ActivationTap(stack)
    delivered_before, dead_before = activated_delivered(stack), dead_letters(stack)
    seconds = _send_all(deliveries, senders)
    tally = Tally.of(deliveries)
    delivered = _collect_events(stack, tap, tally.activated, delivered_before)
    dead = dead_letters(stack) - dead_before

    ours = {t.training_id for t in trainings}
    lost = max(sum(1 for t in tally.activated if tap.seen[t] == 0), len(tally.activated) - delivered)
    extra = (sum(max(0, tap.seen[t] - 1) for t in tally.activated)
             + sum(n for t, n in tap.seen.items() if t in ours and t not in tally.activated))
    twice = sum(n - 1 for n in tally.activated.values() if n > 1)
    current = _current_versions(stack, list(by_user))
    wrong = sum(1 for user, user_trainings in by_user.items() if current[user] != _expected_version(user_trainings))

    kinds = Counter(d.kind.split(":")[0] for d in deliveries)
    mix = ", ".join(f"{kinds[k]} {k}" for k in ("primary", "duplicate", "late", "forged"))
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(tally.outcomes.items()))
    rows = [
        Row(f"mixed webhooks: {len(deliveries)} ({mix}), {users} users x {TRAININGS_PER_USER} trainings, "
            f"{senders} senders: throughput", f"{len(deliveries) / seconds:.1f} webhooks/s"),
        Row("  wrong current versions (vs highest-seq successful training)", str(wrong), target="0", ok=wrong == 0),
        Row("  lost events (activation without its ModelVersionActivated)", str(lost), target="0", ok=lost == 0),
        Row("  duplicate events (beyond one per activation)", str(extra), target="0", ok=extra == 0),
        Row("  activations / events delivered to GenerationFunction", f"{len(tally.activated)} / {delivered}",
            target="equal", ok=len(tally.activated) == delivered),
        Row("  forged webhooks answered 401", f"{tally.forged_401} / {tally.forged}", target="all",
            ok=tally.forged_401 == tally.forged),
        Row("  genuine webhooks not 2xx after retries", f"{tally.not_2xx} ({tally.retries} retries)", target="0",
            ok=tally.not_2xx == 0),
        Row("  genuine webhooks answered ignored_unknown (all are ours)", str(tally.misrouted), target="0",
            ok=tally.misrouted == 0),
        Row("  trainings answered 'activated' twice", str(twice), target="0", ok=twice == 0),
        Row("  event deliveries dead-lettered", str(dead), target="0", ok=dead == 0),
        Row("  genuine answers", outcomes),
    ]
    failed = bool(wrong or lost or extra or twice or tally.forged_accepted or tally.misrouted)
    return MixedResult(rows, failed)
