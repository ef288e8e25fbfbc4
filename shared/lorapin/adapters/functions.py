"""Invoking lorapin's own functions (Lambda `Invoke`): the photo inspector, synchronously within a
time budget, and the training submitter, asynchronously (Lambda queues the event, retries it, and
hands it to the function's on-failure destination when it keeps failing)."""

from __future__ import annotations

import json
from typing import Any

from lorapin.domain.errors import DependencyUnavailable


class FunctionFailed(Exception):
    """The invoked function raised, or did not answer within the budget."""


class LambdaFunctions:
    def __init__(self, sync_client: Any, async_client: Any) -> None:
        self._sync = sync_client  # one attempt, with a read timeout: the caller has a budget
        self._async = async_client

    def call(self, function_name: str, payload: dict[str, Any]) -> Any:
        """Run `function_name` and return what it returned; `FunctionFailed` if it raised or timed out."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._sync.invoke(FunctionName=function_name, InvocationType="RequestResponse",
                                         Payload=json.dumps(payload).encode())
        except (BotoCoreError, ClientError) as exc:
            raise FunctionFailed(f"{function_name}: {exc}") from exc
        body = response["Payload"].read()
        if response.get("FunctionError"):
            raise FunctionFailed(f"{function_name}: {body[:500]!r}")
        return json.loads(body) if body else None

    def start(self, function_name: str, payload: dict[str, Any]) -> None:
        """Queue an invocation of `function_name` (Lambda's asynchronous invocation: at least once)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._async.invoke(FunctionName=function_name, InvocationType="Event",
                               Payload=json.dumps(payload).encode())
        except (BotoCoreError, ClientError) as exc:
            raise DependencyUnavailable(f"Could not start {function_name}; retry shortly.") from exc
