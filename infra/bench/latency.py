"""REQUIREMENTS §10 webhook handling: signed training-success deliveries through the local HTTP API, each taking
the full path (signature → idempotency record → guarded transaction → PutEvents → outbox cleared →
slot freed → idempotency record completed), against a bare UpdateItem + PutEvents with boto3 on
the same moto server. One of each in turn, so both see the same machine."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import requests

from infra.bench.deliveries import genuine, send
from infra.bench.events import activated_delivered, wait_for_deliveries
from infra.bench.seeding import Seeder
from infra.bench.table import Row, median, ms, p95, ratio_row
from infra.local.moto_server import CallLog
from infra.local.stack import LocalStack

TARGET = 1.5
WEBHOOK_FUNCTION = "ReplicateWebhookFunction"
WARM_UP = 5  # first requests of each container (clients, secret cache) are not timed


class Floor:
    """The bare writes the webhook's work boils down to, with clients that stay warm."""

    def __init__(self, stack: LocalStack) -> None:
        self.dynamodb: Any = stack.aws.client("dynamodb")
        self.events: Any = stack.aws.client("events")
        self.table = stack.aws.names["ModelsTable"]
        self.bus = stack.aws.names["EventBus"]

    def once(self) -> float:
        started = time.perf_counter()
        now = str(time.time())
        self.dynamodb.update_item(TableName=self.table, Key={"user_id": {"S": "bench-floor"}},
                                  UpdateExpression="SET updated_at = :now",
                                  ExpressionAttributeValues={":now": {"S": now}})
        self.events.put_events(Entries=[{"Source": "lorapin.bench", "DetailType": "BenchFloor",
                                         "EventBusName": self.bus, "Detail": json.dumps({"at": now})}])
        return time.perf_counter() - started


def _per_request(before: Counter[str], after: Counter[str], count: int) -> Row:
    """The AWS requests one timed webhook made, by operation: what the ratio is made of."""
    made = after - before
    detail = ", ".join(f"{op} {n / count:g}" for op, n in made.most_common())
    total = sum(made.values()) / count
    return Row(f"  AWS requests per timed webhook, by {WEBHOOK_FUNCTION}", f"{total:g}: {detail}", "2",
               f"{total / 2:.2f}x")


def measure_webhook_latency(stack: LocalStack, seeder: Seeder, count: int, calls: CallLog | None = None) -> list[Row]:
    """`count` users with one seeded training each; each success delivered once, answered `activated`.
    With `calls` (the atomic moto's log), also what AWS requests one webhook made."""
    delivered_before = activated_delivered(stack)
    trainings = seeder.start_many({f"bench-latency-{n:04d}": ["succeeded"] for n in range(count + WARM_UP)})
    seeder.finish(trainings)
    floor = Floor(stack)
    webhook_times: list[float] = []
    floor_times: list[float] = []
    not_activated = 0
    before: Counter[str] = Counter()
    with requests.Session() as session:
        for n, training in enumerate(trainings):
            if n == WARM_UP and calls:
                before = calls.of(WEBHOOK_FUNCTION)
            floor_seconds = floor.once()
            delivery = genuine("primary", training, stack.emulator.signing_secret)
            seconds = send(session, delivery, retry=False)
            if (delivery.answer or {}).get("outcome") != "activated":
                not_activated += 1
            if n >= WARM_UP:
                webhook_times.append(seconds)
                floor_times.append(floor_seconds)
    after = calls.of(WEBHOOK_FUNCTION) if calls else Counter()
    wait_for_deliveries(stack, delivered_before + len(trainings))
    what = f"webhook: signed success -> guarded activation + PutEvents, local HTTP API (n={count})"
    rows = [
        Row(f"floor: bare UpdateItem + PutEvents, boto3 -> same moto (n={count})",
            f"median {ms(median(floor_times))}, p95 {ms(p95(floor_times))}"),
        ratio_row(f"{what}: median", median(webhook_times), median(floor_times), TARGET),
        ratio_row(f"{what}: p95", p95(webhook_times), p95(floor_times), TARGET),
        Row("  of those, not answered 200 activated", str(not_activated), target="0", ok=not_activated == 0),
    ]
    if calls:
        rows.append(_per_request(before, after, count))
    return rows
