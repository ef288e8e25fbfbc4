"""Every function of the local stack in process containers (`infra.local.containers`), so that
concurrent requests really run in parallel, as in Lambda: what the bench measures throughput with."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import partial

from infra.local.containers import ProcessContainer
from infra.local.http_api import FunctionPool
from infra.local.stack import LocalStack
from infra.local.template import FunctionSpec


@contextlib.contextmanager
def process_containers(stack: LocalStack, size: int) -> Iterator[None]:
    """Replace the pool of every function (routes, events, schedules, or Lambda's Invoke alone, as
    the training submitter) with `size` process containers."""
    started: list[ProcessContainer] = []

    def start(spec: FunctionSpec, env: dict[str, str]) -> ProcessContainer:
        container = ProcessContainer(spec, env)
        started.append(container)
        return container

    try:
        pools: dict[str, FunctionPool] = {}
        for function_id, spec in stack.template.functions().items():
            env = {**stack.aws.function_env[function_id], "AWS_SDK_UA_APP_ID": function_id}  # see CallLog
            pools[function_id] = FunctionPool(function_id, partial(start, spec, env), size)
        for container in started:  # spawned all at once, loading in parallel
            container.wait_ready()
        stack.pools.update(pools)  # the dispatcher's pools
        stack.api.pools.update(pools)
        yield
    finally:
        for container in started:
            container.close()
