"""Deliver bus events to functions: moto's rule (with the template's pattern) puts each matching
event on a queue; this drains the queues and invokes the function with the EventBridge envelope.
A failing invocation is retried (the message becomes visible again), up to `max_attempts`."""

from __future__ import annotations

import json
import threading
from typing import Any

from infra.local.aws_stack import LocalAwsStack, RuleDelivery
from infra.local.http_api import FunctionPool


class EventDispatcher:
    def __init__(self, stack: LocalAwsStack, pools: dict[str, FunctionPool], *, max_attempts: int = 5,
                 visibility_timeout: int = 1) -> None:
        self._stack = stack
        self._pools = pools
        self._max_attempts = max_attempts
        self._visibility_timeout = visibility_timeout
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.delivered: list[dict[str, Any]] = []
        self.dead_letters: list[dict[str, Any]] = []

    def start(self) -> EventDispatcher:
        for delivery in self._stack.deliveries:
            thread = threading.Thread(target=self._drain, args=(delivery,), daemon=True,
                                      name=f"dispatch-{delivery.rule_name}")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _drain(self, delivery: RuleDelivery) -> None:
        sqs = self._stack.client("sqs")
        while not self._stop.is_set():
            try:
                messages = sqs.receive_message(QueueUrl=delivery.queue_url, MaxNumberOfMessages=10,
                                               WaitTimeSeconds=1, VisibilityTimeout=self._visibility_timeout,
                                               AttributeNames=["ApproximateReceiveCount"]).get("Messages", [])
            except Exception:
                if self._stop.is_set():
                    return
                self._stop.wait(0.5)
                continue
            for message in messages:
                self._deliver(sqs, delivery, message)

    def _deliver(self, sqs: Any, delivery: RuleDelivery, message: dict[str, Any]) -> None:
        event = json.loads(message["Body"])
        attempts = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        try:
            result = self._pools[delivery.function_id].invoke(event)
        except Exception as exc:
            if attempts < self._max_attempts:
                return  # becomes visible again: EventBridge/Lambda would retry
            self.dead_letters.append({"rule": delivery.rule_name, "event": event, "error": repr(exc)})
        else:
            self.delivered.append({"rule": delivery.rule_name, "detail-type": event.get("detail-type"),
                                   "detail": event.get("detail"),
                                   "result": result})
        sqs.delete_message(QueueUrl=delivery.queue_url, ReceiptHandle=message["ReceiptHandle"])
