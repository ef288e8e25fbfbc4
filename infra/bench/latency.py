"""REQUIREMENTS §10 webhook handling: signed training-success deliveries, each taking the full path
(signature → one TransactGetItems for training and model → the guarded activation transaction,
slot freed and outbox stored → PutEvents), against a bare UpdateItem + PutEvents with boto3 on the
same moto server. One of each in turn, so both see the same machine. Measured twice: through the
local HTTP API (a process container behind it), and in-process (the handler called directly, which
is what Lambda bills)."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import requests
from botocore.config import Config

from infra.bench.deliveries import Delivery, genuine, send
from infra.bench.events import activated_delivered, wait_for_deliveries
from infra.bench.seeding import Seeder
from infra.bench.table import Row, median, ms, p95, ratio_row
from infra.local.moto_server import CallLog
from infra.local.stack import LocalStack

TARGET = 1.5
WEBHOOK_FUNCTION = "ReplicateWebhookFunction"
GENERATION_FUNCTION = "GenerationFunction"
WARM_UP = 5  # first requests of each container (clients, secret cache) are not timed
LATENCY_USERS = "bench-latency"
ROUTED_SOURCE = "lorapin.bench-routed"
FLOOR_CALLER = "BenchFloor"  # the floor's SDK app id, so that moto's log tells its requests apart
ROUTED_FLOOR_CALLER = "BenchFloorRouted"  # the routed floor's
TIMED_CALLERS = (WEBHOOK_FUNCTION, FLOOR_CALLER, ROUTED_FLOOR_CALLER)
IN_PROCESS_CALLER = "WebhookInProcess"  # the in-process handler's
APP_ID_VARIABLE = "AWS_SDK_UA_APP_ID"  # botocore's; moto's log reads it from the user agent


class Floor:
    """The bare writes the webhook's work boils down to, with clients that stay warm; the plain and
    the routed floor's clients carry SDK app ids of their own (`FLOOR_CALLER`, `ROUTED_FLOOR_CALLER`)."""

    def __init__(self, stack: LocalStack) -> None:
        self.clients: dict[bool, tuple[Any, Any]] = {
            routed: (self.client(stack, "dynamodb", caller), self.client(stack, "events", caller))
            for routed, caller in ((False, FLOOR_CALLER), (True, ROUTED_FLOOR_CALLER))}
        self.table = stack.aws.names["ModelsTable"]
        self.bus = stack.aws.names["EventBus"]
        self._route_to_a_queue(stack)

    @staticmethod
    def client(stack: LocalStack, service: str, caller: str = FLOOR_CALLER) -> Any:
        """A client whose requests moto's log counts as `caller`'s (botocore's stubs lack the option)."""
        return boto3.client(service, region_name=stack.aws.region,  # type: ignore[call-overload]
                            endpoint_url=stack.aws.endpoint_url,
                            config=Config(user_agent_appid=caller))  # type: ignore[call-arg]

    def _route_to_a_queue(self, stack: LocalStack) -> None:
        """A rule with a queue target for `once(routed=True)`'s events, as the webhook's event has
        (moto delivers to matched targets inside PutEvents; EventBridge does so after answering)."""
        sqs: Any = stack.aws.client("sqs")
        queue = sqs.create_queue(QueueName="lorapin-bench-floor-routed")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = stack.aws.client("events")
        events.put_rule(Name="lorapin-bench-floor-routed", EventBusName=self.bus, State="ENABLED",
                        EventPattern=json.dumps({"source": [ROUTED_SOURCE]}))
        events.put_targets(Rule="lorapin-bench-floor-routed", EventBusName=self.bus,
                           Targets=[{"Id": "queue", "Arn": arn}])

    def once(self, *, routed: bool = False) -> float:
        dynamodb, events = self.clients[routed]
        started = time.perf_counter()
        now = str(time.time())
        dynamodb.update_item(TableName=self.table, Key={"user_id": {"S": "bench-floor"}},
                             UpdateExpression="SET updated_at = :now",
                             ExpressionAttributeValues={":now": {"S": now}})
        events.put_events(Entries=[{"Source": ROUTED_SOURCE if routed else "lorapin.bench",
                                    "DetailType": "BenchFloor", "EventBusName": self.bus,
                                    "Detail": json.dumps({"at": now})}])
        return time.perf_counter() - started


def _per_request(before: Counter[str], after: Counter[str], count: int) -> Row:
    """The AWS requests one timed webhook made, by operation: what the ratio is made of."""
    made = after - before
    detail = ", ".join(f"{op} {n / count:g}" for op, n in made.most_common())
    total = sum(made.values()) / count
    return Row(f"  AWS requests per timed webhook, by {WEBHOOK_FUNCTION}", f"{total:g}: {detail}", "2",
               f"{total / 2:.2f}x")


def _in_moto(calls: CallLog | None, caller: str) -> float:
    """Seconds moto has spent on `caller`'s requests so far (0 without a log)."""
    return sum(calls.seconds_of(caller).values()) if calls else 0.0


def _by_operation(caller: str, before: dict[str, float], after: dict[str, float], count: int) -> str:
    """moto's time for `caller`'s requests between two snapshots, by operation, per timed request."""
    spent = {op: seconds - before.get(op, 0.0) for op, seconds in after.items() if seconds > before.get(op, 0.0)}
    return f"{caller}: " + ", ".join(f"{op} {seconds * 1000 / count:.1f} ms"
                                     for op, seconds in sorted(spent.items(), key=lambda item: -item[1]))


@dataclass
class Timed:
    """Each timed request (a webhook's delivery, a POST /generations) beside the floor measured just
    before it (warm-up excluded); with moto's call log, also how much of each was moto's own
    handling of its AWS requests (`CallLog.seconds_of`)."""

    request: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)
    routed_floor: list[float] = field(default_factory=list)
    request_in_moto: list[float] = field(default_factory=list)
    floor_in_moto: list[float] = field(default_factory=list)
    not_activated: int = 0

    def rows(self, what: str) -> list[Row]:
        routed = median(self.routed_floor)
        rows = [ratio_row(f"{what}: median", median(self.request), median(self.floor), TARGET),
                ratio_row(f"{what}: p95", p95(self.request), p95(self.floor), TARGET),
                Row("  the median against the floor with its event routed to a queue, as the webhook's is",
                    ms(median(self.request)), ms(routed), f"{median(self.request) / routed:.2f}x")]
        return [*rows, *self.split_by_moto(),
                Row("  of those, not answered 200 activated", str(self.not_activated), target="0",
                    ok=self.not_activated == 0)]

    def split_by_moto(self) -> list[Row]:
        """Each request's and each floor's time in moto, and the rest, when moto's log timed them."""
        if not self.request_in_moto:
            return []
        if not all(self.request_in_moto) or not all(self.floor_in_moto):  # a request moto's log did not see
            return [Row("  moto's share of each", "not measured: the function's AWS requests carry no SDK app id "
                        "(--stock-stack runs it in threads)")]
        inside, floor_inside = median(self.request_in_moto), median(self.floor_in_moto)
        rest = median([total - moto for total, moto in zip(self.request, self.request_in_moto, strict=True)])
        floor_rest = median([total - moto for total, moto in zip(self.floor, self.floor_in_moto, strict=True)])
        return [Row("  of each, moto's own handling of its AWS requests (median)", ms(inside), ms(floor_inside),
                    f"{inside / floor_inside:.2f}x"),
                Row("  the rest: the function's work, the SDK's and the HTTP exchanges (median of each less its "
                    "moto time)", ms(rest), ms(floor_rest), f"{rest / floor_rest:.2f}x")]


def _timed(stack: LocalStack, seeder: Seeder, users: str, count: int,
           deliver: Callable[[Delivery], tuple[float, dict[str, Any]]], *,
           on_warm: Callable[[], None] = lambda: None, calls: CallLog | None = None,
           caller: str = WEBHOOK_FUNCTION) -> Timed:
    """`count` users (plus the warm-up's) with one seeded success each, delivered once by `deliver`
    (its seconds and its answer), in turn with the floor; then every activation's event delivered.
    With `calls`, moto's time for each delivery's requests (made as `caller`) and the floor's."""
    delivered_before = activated_delivered(stack)
    trainings = seeder.start_many({f"{users}-{n:04d}": ["succeeded"] for n in range(count + WARM_UP)})
    seeder.finish(trainings)
    floor = Floor(stack)
    timed = Timed()
    for n, training in enumerate(trainings):
        if n == WARM_UP:
            on_warm()
        floor_began = _in_moto(calls, FLOOR_CALLER)
        floor_seconds = floor.once()
        floor_in_moto = _in_moto(calls, FLOOR_CALLER) - floor_began
        routed_seconds = floor.once(routed=True)
        webhook_began = _in_moto(calls, caller)
        seconds, answer = deliver(genuine("primary", training, stack.emulator.signing_secret))
        webhook_in_moto = _in_moto(calls, caller) - webhook_began
        if answer.get("outcome") != "activated":
            timed.not_activated += 1
        if n >= WARM_UP:
            timed.request.append(seconds)
            timed.floor.append(floor_seconds)
            timed.routed_floor.append(routed_seconds)
            if calls:
                timed.request_in_moto.append(webhook_in_moto)
                timed.floor_in_moto.append(floor_in_moto)
    wait_for_deliveries(stack, delivered_before + len(trainings))
    return timed


def measure_in_process(stack: LocalStack, seeder: Seeder, count: int, calls: CallLog | None = None) -> list[Row]:
    """The handler imported into this process and called with the API Gateway event each delivery
    makes: no HTTP hop, no process boundary."""
    from urllib.parse import urlsplit

    from infra.local.apigw import http_api_event
    from infra.local.functions import LocalContext, load_handler
    from lorapin.adapters import aws, tables

    def new_clients() -> None:  # the next ones made by lorapin in this process (the seeder's too)
        tables.forget_connections()
        aws.forget_session()

    spec = stack.template.functions()[WEBHOOK_FUNCTION]
    previous_app_id = os.environ.get(APP_ID_VARIABLE)
    new_clients()  # the handler's, made at its import, carry its app id
    try:
        handler = load_handler(spec, {**stack.aws.function_env[WEBHOOK_FUNCTION], APP_ID_VARIABLE: IN_PROCESS_CALLER})

        def call_handler(delivery: Delivery) -> tuple[float, dict[str, Any]]:
            url = urlsplit(delivery.url)
            event = http_api_event("POST", url.path, body=delivery.body, headers=delivery.headers(), query=url.query)
            started = time.perf_counter()
            response = handler(event, LocalContext(WEBHOOK_FUNCTION))
            return time.perf_counter() - started, json.loads(response.get("body") or "{}")

        timed = _timed(stack, seeder, "bench-inproc", count, call_handler, calls=calls, caller=IN_PROCESS_CALLER)
    finally:  # what this process makes next is not the handler's
        if previous_app_id is None:
            os.environ.pop(APP_ID_VARIABLE, None)
        else:
            os.environ[APP_ID_VARIABLE] = previous_app_id
        new_clients()
    return timed.rows(f"webhook: the same, handler called in-process (n={count})")


def measure_webhook_latency(stack: LocalStack, seeder: Seeder, count: int, calls: CallLog | None = None) -> list[Row]:
    """`count` users with one seeded training each; each success delivered once, answered `activated`.
    With `calls` (the atomic moto's log), also what AWS requests one webhook made and how long moto
    took to answer them."""
    before: Counter[str] = Counter()
    seconds_before: dict[str, dict[str, float]] = {}

    def count_from_here() -> None:
        nonlocal before
        before = calls.of(WEBHOOK_FUNCTION) if calls else Counter()
        seconds_before.update({who: calls.seconds_of(who) for who in TIMED_CALLERS} if calls else {})

    with requests.Session() as session:
        def post(delivery: Delivery) -> tuple[float, dict[str, Any]]:
            return send(session, delivery, retry=False), delivery.answer or {}

        timed = _timed(stack, seeder, LATENCY_USERS, count, post, on_warm=count_from_here, calls=calls)
    rows = [Row(f"floor: bare UpdateItem + PutEvents, boto3 -> same moto (n={count})",
                f"median {ms(median(timed.floor))}, p95 {ms(p95(timed.floor))}"),
            *timed.rows(f"webhook: signed success -> guarded activation + PutEvents, local HTTP API (n={count})")]
    if calls:
        rows.append(_per_request(before, calls.of(WEBHOOK_FUNCTION), count))
        rows.append(Row("  moto's handling per timed webhook, by operation (mean), and per floor (plain; routed)",
                        "; ".join(_by_operation(who, seconds_before[who], calls.seconds_of(who), count)
                                  for who in TIMED_CALLERS)))
    return rows + measure_in_process(stack, seeder, count, calls)


def latency_users(count: int) -> list[str]:
    """The users `measure_webhook_latency` leaves with a current version (for POST /generations)."""
    return [f"{LATENCY_USERS}-{n:04d}" for n in range(count)]


def measure_generation_latency(stack: LocalStack, users: list[str], count: int,
                               calls: CallLog | None = None) -> list[Row]:
    """`POST /generations` (warm, through the local HTTP API) for users with a current version,
    against its own floor: a consistent GetItem of the model, a PutItem of a generation and the
    replicate client's `predictions.create` on the emulator, made directly in turn. With `calls`,
    also moto's share of each (the emulator's is in the rest, on both sides)."""
    import replicate

    from infra.local.stack import LOCAL_API_TOKEN
    from infra.local.tokens import issue_token

    dynamodb: Any = Floor.client(stack, "dynamodb")
    models, generations = stack.aws.names["ModelsTable"], stack.aws.names["GenerationsTable"]
    client = replicate.Client(api_token=LOCAL_API_TOKEN, base_url=stack.emulator.url)
    timed = Timed()
    answers: Counter[int] = Counter()
    stack.dispatcher.wait_drained()  # the function also takes activations: none may land in a timed request
    with requests.Session() as session:
        for n in range(count + WARM_UP):
            user = users[n % len(users)]
            model = dynamodb.get_item(TableName=models, Key={"user_id": {"S": user}}, ConsistentRead=True)["Item"]
            version_id = model["current_version"]["M"]["id"]["S"]
            floor_began, started = _in_moto(calls, FLOOR_CALLER), time.perf_counter()
            dynamodb.get_item(TableName=models, Key={"user_id": {"S": user}}, ConsistentRead=True)
            dynamodb.put_item(TableName=generations, Item={"generation_id": {"S": f"bench-floor-{n}-{time.time_ns()}"},
                                                            "user_id": {"S": "bench-floor"}})
            client.predictions.create(version=version_id, input={"prompt": "TOK a portrait", "seed": n})
            floor_seconds, floor_in_moto = time.perf_counter() - started, _in_moto(calls, FLOOR_CALLER) - floor_began
            began, started = _in_moto(calls, GENERATION_FUNCTION), time.perf_counter()
            response = session.post(f"{stack.api.url}/generations", json={"prompt": "a portrait", "seed": n},
                                    headers={"authorization": f"Bearer {issue_token(user)}"}, timeout=30)
            seconds, seconds_in_moto = time.perf_counter() - started, _in_moto(calls, GENERATION_FUNCTION) - began
            answers[response.status_code] += 1
            if n >= WARM_UP:
                timed.request.append(seconds)
                timed.floor.append(floor_seconds)
                if calls:
                    timed.request_in_moto.append(seconds_in_moto)
                    timed.floor_in_moto.append(floor_in_moto)
    what = f"POST /generations (warm, pinned to the current version), local HTTP API (n={count})"
    return [
        Row(f"floor: consistent GetItem + PutItem + predictions.create, direct (n={count})",
            f"median {ms(median(timed.floor))}, p95 {ms(p95(timed.floor))}"),
        ratio_row(f"{what}: median", median(timed.request), median(timed.floor), TARGET),
        *timed.split_by_moto(),
        Row("  of those, not answered 202", str(sum(n for code, n in answers.items() if code != 202)), target="0",
            ok=set(answers) == {202}),
    ]
