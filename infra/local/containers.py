"""Function containers as separate processes, like Lambda's.

The local stack runs every "container" of a function as a thread of one process, taking turns
(`infra.local.http_api`): Powertools keeps per-invocation state on classes (`BaseRouter.current_event`,
log keys, metrics), safe in Lambda, where a process runs one invocation at a time, but not across
threads. A container here is its own process with its function's module imported from
`template.yaml`'s handler and code directory, so its invocations are isolated and run in parallel
with the rest: the bench uses them for every function, the local stack for a function that another
function calls synchronously (the photo inspector), which could otherwise never take its turn.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

from infra.local.functions import Handler
from infra.local.template import FunctionSpec


class InvocationFailed(Exception):
    """The function raised: the local API answers 500 and the dispatcher retries, as for Lambda."""


def _load(spec: FunctionSpec, env: dict[str, str]) -> Handler:
    """Import the handler module as Lambda does: under its own name (`app`), from its code directory.

    Not through `load_handler`, whose per-container module names would change Powertools'
    idempotency keys (they include the function's `__module__`) from one container to the next.
    """
    from infra.local.functions import apply_environment

    module_name, _, function_name = spec.handler.rpartition(".")
    apply_environment(env)
    sys.path.insert(0, str(spec.code_dir))
    handler: Handler = getattr(importlib.import_module(module_name), function_name)
    return handler


def _serve(spec: FunctionSpec, env: dict[str, str], conn: Connection) -> None:
    """The container's process: load the function once (cold start), then run invocations in turn."""
    sys.stdout = sys.stderr  # the functions' logs and metrics stay off the bench's table
    from infra.local.functions import LocalContext

    try:
        handler = _load(spec, env)
        from lorapin.observability import logger

        logger.setLevel(logging.ERROR)  # e.g. each forged webhook logs a warning, by design
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        event, function_name = message
        try:
            conn.send(("ok", handler(event, LocalContext(function_name))))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class ProcessContainer:
    """A callable handler whose invocations run in a process of its own."""

    isolated = True  # its invocations need not take turns with the other functions'

    def __init__(self, spec: FunctionSpec, env: dict[str, str]) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(spec, env, child), daemon=True,
                                        name=f"container-{spec.logical_id}")
        self._process.start()
        child.close()
        self._ready = False
        self._lock = threading.Lock()  # one invocation at a time, as in Lambda

    def wait_ready(self) -> None:
        """Wait for the cold start (the first invocation waits for it anyway)."""
        with self._lock:
            self._wait_ready()

    def _wait_ready(self) -> None:
        if self._ready:
            return
        kind, value = self._conn.recv()
        if kind != "ready":
            raise RuntimeError(f"container failed to start: {value}")
        self._ready = True

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        with self._lock:
            self._wait_ready()
            self._conn.send((event, context.function_name))
            kind, value = self._conn.recv()
        if kind == "error":
            raise InvocationFailed(value)
        return value

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(None)
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.terminate()


