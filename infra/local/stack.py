"""The embedded local stack: moto's server, the Replicate emulator, every resource of
`template.yaml`, the functions behind a local HTTP API, and bus events delivered to them."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from infra.local.aws_stack import LOCAL_CREDENTIALS, LocalAwsStack, provision
from infra.local.dispatcher import EventDispatcher
from infra.local.functions import Handler, load_handler
from infra.local.http_api import CorsConfig, FunctionPool, LocalHttpApi
from infra.local.scheduler import Scheduler, rate_seconds
from infra.local.template import FunctionSpec, Template
from lorapin.domain import clock

LOCAL_OWNER = "lorapin-local"
CALLED_SYNCHRONOUSLY = frozenset({"PhotoInspectorFunction"})
"""Functions another function calls and waits for (the training API calls the photo inspector):
their containers are processes of their own, since thread containers take turns and the caller
holds the turn while it waits (`infra.local.containers`)."""
LOCAL_API_TOKEN = "r8_local"


@dataclass
class LocalStack:
    aws: LocalAwsStack
    emulator: Any
    api: LocalHttpApi
    dispatcher: EventDispatcher
    pools: dict[str, FunctionPool]
    template: Template
    aws_endpoint: str | None
    scheduler: Scheduler | None = None

    @classmethod
    @contextlib.contextmanager
    def running(cls, *, host: str = "127.0.0.1", port: int = 0, replicate_port: int = 0, aws_port: int = 0,
                training_seconds: float = 2.0, prediction_seconds: float = 1.0, aws_endpoint: str | None = None,
                emulator: Any = None, template: Template | None = None, prefix: str = "lorapin-local",
                pool_size: int = 1, quiet: bool = False, schedules: bool = False,
                clock_rate: float = 1.0, env_overrides: dict[str, str] | None = None,
                cors_origins: list[str] | None = None) -> Iterator[LocalStack]:
        """Start everything (or reuse a given moto endpoint / emulator) and stop it on exit.

        `quiet` keeps the functions' logs and metrics off stdout (for the demo's timeline).
        `schedules` runs the template's `Schedule` events (the reconciler) at their rate.
        `clock_rate` runs the stack's clock that many times faster than real time (every function,
        the reconciler's schedule and the emulator's trainings follow it: `make bench`'s day).
        `cors_origins` are the browser origins the API allows (default: its own URL, where the
        console is served).
        """
        from infra.emulator import TRAINER_VERSION_ID, ReplicateEmulator

        os.environ.update(LOCAL_CREDENTIALS)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request
        function_overrides: dict[str, str] = {"POWERTOOLS_LOG_LEVEL": "WARNING"} if quiet else {}
        function_overrides.update(env_overrides or {})
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        stack_clock = clock.Clock.accelerated(clock_rate) if clock_rate != 1.0 else clock.Clock()
        if clock_rate != 1.0:
            function_overrides["LORAPIN_CLOCK"] = stack_clock.spec
        previous_clock = clock.current()
        clock.use(stack_clock)
        with contextlib.ExitStack() as stack:
            stack.callback(clock.use, previous_clock)
            if aws_endpoint is None:
                from infra.local.moto_server import AtomicMotoServer

                server = AtomicMotoServer(ip_address=host, port=aws_port)
                server.start()
                stack.callback(server.stop)
                moto_host, moto_port = server.get_host_and_port()
                aws_endpoint = f"http://{moto_host}:{moto_port}"
            if emulator is None:
                emulator = stack.enter_context(ReplicateEmulator(
                    host=host, port=replicate_port, training_seconds=training_seconds,
                    prediction_seconds=prediction_seconds))
            template = template or Template()
            api = LocalHttpApi(template.routes(), {}, host=host, port=port)
            stack.callback(api.stop)
            aws = provision(template, endpoint_url=aws_endpoint, prefix=prefix, api_url=api.url,
                            parameters={"TrainerVersion": TRAINER_VERSION_ID, "ReplicateOwner": LOCAL_OWNER,
                                        "Stage": "dev",
                                        # outputs come from the emulator, over http: allowed explicitly
                                        "DownloadAllowedHosts": emulator.url,
                                        "CorsAllowedOrigins": [api.url] if cors_origins is None else cors_origins},
                            secret_value={"api_token": LOCAL_API_TOKEN,
                                          "webhook_signing_secret": emulator.signing_secret},
                            env_overrides={**function_overrides, "REPLICATE_BASE_URL": emulator.url})
            pools = {function_id: FunctionPool(function_id, partial(_container, spec, aws.function_env[function_id],
                                                                    stack), pool_size, quiet=quiet)
                     for function_id, spec in template.functions().items()}
            api.pools.update(pools)
            api.cors = CorsConfig.from_template(template, aws.resolver)
            api.start()
            dispatcher = EventDispatcher(aws, pools).start()
            stack.callback(dispatcher.stop)
            api.function_names.update(aws.function_names)
            api.invoke_async = dispatcher.invoke_async
            scheduler = None
            if schedules:
                periods = {rule.function_id: rate_seconds(str(aws.resolver.resolve(rule.expression)))
                           for spec in template.functions().values() for rule in spec.schedules}
                scheduler = Scheduler(periods, lambda function_id, event: pools[function_id].invoke(event)).start()
                stack.callback(scheduler.stop)
            yield cls(aws, emulator, api, dispatcher, pools, template, aws_endpoint, scheduler)

    def serve_forever(self) -> None:
        """Serve until SIGINT or SIGTERM. The handlers are installed here rather than relied upon:
        a process started from a shell script or a test runner may inherit SIGINT as ignored."""
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            stop.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _container(spec: FunctionSpec, env: dict[str, str], stack: contextlib.ExitStack) -> Handler:
    """One warm container of a function: a thread of this process, or a process of its own."""
    if spec.logical_id not in CALLED_SYNCHRONOUSLY:
        return load_handler(spec, env)
    from infra.local.containers import ProcessContainer

    container = ProcessContainer(spec, env)  # its cold start runs while the stack starts
    stack.callback(container.close)
    return container
