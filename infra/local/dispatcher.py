"""Deliver bus events to functions: moto's rule (with the template's pattern) puts each matching
event on a queue; this drains the queues and invokes the function with the EventBridge envelope.
A failing invocation is retried (the message becomes visible again), up to `max_attempts`.

Lambda's asynchronous invocations (`InvocationType=Event`, e.g. the training API starting the
training submitter) are run here too, each in a thread of its own, with Lambda's two retries."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from infra.local.aws_stack import LocalAwsStack, RuleDelivery
from infra.local.http_api import FunctionPool

ASYNC_ATTEMPTS = 3  # Lambda retries a failed asynchronous invocation twice
ASYNC_RETRY_SECONDS = 0.2


class EventDispatcher:
    def __init__(self, stack: LocalAwsStack, pools: dict[str, FunctionPool], *, max_attempts: int = 5,
                 visibility_timeout: int = 1) -> None:
        self._stack = stack
        self._pools = pools
        self._max_attempts = max_attempts
        self._visibility_timeout = visibility_timeout
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._delivering = 0  # invocations under way
        self._changed = threading.Condition()
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
        """Stop draining. Each thread ends when its current long poll (at most a second) returns;
        nobody waits for that, as nothing is delivered once the flag is set."""
        self._stop.set()

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
                if self._stop.is_set():
                    return
                self._deliver(sqs, delivery, message)

    def invoke_async(self, function_id: str, payload: dict[str, Any]) -> None:
        """Queue an invocation as Lambda's asynchronous invocation does: run it soon, retry a failure twice."""
        with self._changed:
            self._delivering += 1
        threading.Thread(target=self._run_async, args=(function_id, payload), daemon=True,
                         name=f"async-{function_id}").start()

    def _run_async(self, function_id: str, payload: dict[str, Any]) -> None:
        try:
            for attempt in range(1, ASYNC_ATTEMPTS + 1):
                if self._stop.is_set():
                    return
                try:
                    result = self._pools[function_id].invoke(payload)
                except Exception as exc:
                    if attempt == ASYNC_ATTEMPTS:
                        self.dead_letters.append({"function": function_id, "event": payload, "error": repr(exc)})
                    else:
                        self._stop.wait(ASYNC_RETRY_SECONDS * attempt)
                    continue
                self.delivered.append({"function": function_id, "event": payload, "result": result})
                return
        finally:
            with self._changed:
                self._delivering -= 1
                self._changed.notify_all()

    def wait_drained(self, timeout: float = 30.0) -> None:
        """Wait until every rule's queue is empty (no message waiting or in flight) and no
        invocation is under way (asynchronous ones included): every event published so far has
        reached its function."""
        deadline = time.monotonic() + timeout
        sqs = self._stack.client("sqs")
        while True:
            waiting = sum(self._queued(sqs, delivery) for delivery in self._stack.deliveries)
            with self._changed:
                if waiting == 0 and self._delivering == 0:
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"events still undelivered after {timeout}s ({waiting} queued)")
                self._changed.wait(min(remaining, 0.05))  # woken at once when an invocation ends

    @staticmethod
    def _queued(sqs: Any, delivery: RuleDelivery) -> int:
        attributes = sqs.get_queue_attributes(
            QueueUrl=delivery.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def _deliver(self, sqs: Any, delivery: RuleDelivery, message: dict[str, Any]) -> None:
        with self._changed:
            self._delivering += 1
        try:
            self._invoke(sqs, delivery, message)
        finally:
            with self._changed:
                self._delivering -= 1
                self._changed.notify_all()

    def _invoke(self, sqs: Any, delivery: RuleDelivery, message: dict[str, Any]) -> None:
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
