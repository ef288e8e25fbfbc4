"""Counting ModelVersionActivated: as delivered to the Generation function through the template's
rule (the dispatcher's log), and per training through a rule of the bench's own on the same bus."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

from infra.local.aws_stack import ACCOUNT_ID
from infra.local.stack import LocalStack
from lorapin.domain.events import EVENT_SOURCE, MODEL_VERSION_ACTIVATED

BENCH_RULE = "lorapin-bench-activations"


def activated_delivered(stack: LocalStack) -> int:
    """ModelVersionActivated events the dispatcher delivered to a function so far."""
    return sum(1 for d in list(stack.dispatcher.delivered) if d.get("detail-type") == MODEL_VERSION_ACTIVATED)


def dead_letters(stack: LocalStack) -> int:
    return len(stack.dispatcher.dead_letters)


def wait_for_deliveries(stack: LocalStack, at_least: int, *, timeout: float = 30.0, settle: float = 1.5) -> int:
    """Wait until `at_least` activations were delivered and nothing new arrived for `settle` seconds."""
    deadline = time.monotonic() + timeout
    seen, quiet_since = activated_delivered(stack), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = activated_delivered(stack)
        if now != seen:
            seen, quiet_since = now, time.monotonic()
        elif seen >= at_least and time.monotonic() - quiet_since >= settle:
            break
    return seen


class ActivationTap:
    """A rule of the bench's own on the bus, matching what the Generation function's rule matches,
    into a queue of its own: every ModelVersionActivated put on the bus, with its detail."""

    def __init__(self, stack: LocalStack) -> None:
        self._sqs: Any = stack.aws.client("sqs")
        events: Any = stack.aws.client("events")
        region = stack.aws.region
        self.queue_url = self._sqs.create_queue(QueueName=f"{BENCH_RULE}-tap")["QueueUrl"]
        bus = stack.aws.names["EventBus"]
        pattern = {"source": [EVENT_SOURCE], "detail-type": [MODEL_VERSION_ACTIVATED]}
        events.put_rule(Name=BENCH_RULE, EventBusName=bus, EventPattern=json.dumps(pattern), State="ENABLED")
        events.put_targets(Rule=BENCH_RULE, EventBusName=bus, Targets=[
            {"Id": "bench", "Arn": f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{BENCH_RULE}-tap"}])
        self.seen: Counter[str] = Counter()  # training id → ModelVersionActivated events

    def drain(self) -> int:
        """Take every message now in the queue; how many there were."""
        taken = 0
        while True:
            messages = self._sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                                 VisibilityTimeout=300, WaitTimeSeconds=0).get("Messages", [])
            if not messages:
                return taken
            for message in messages:
                detail = json.loads(message["Body"]).get("detail") or {}
                self.seen[str(detail.get("training_id"))] += 1
            self._sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)])
            taken += len(messages)
