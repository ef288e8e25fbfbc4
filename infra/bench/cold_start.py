"""REQUIREMENTS §10 cold start, measured on what ships: `sam build` of the template (retargeted to
x86_64 so that it runs here, infra/build/sam.py), each function's handler imported in a fresh
`python3.12 -I -S -B` process the way Lambda's runtime does (its folder, its layers' python/ and the
runtime's boto3 alone; nothing written, as /var/task and /opt are read-only; `AWS_LAMBDA_RUNTIME_API`
set and tracing on, so the X-Ray SDK runs in its Lambda mode), against a bare handler run the same
way: a function whose module imports boto3 and makes a DynamoDB and an EventBridge client.

Imports from the repository would not do: there Python's bytecode cache is always warm, while in
Lambda whatever ships without bytecode is compiled at every cold start (the layer was, until it
shipped bytecode: 564 ms of init for the training API instead of 228)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from infra.bench.table import Row, median, ms, ratio_row
from infra.build.invoke import Invocation, invoke_built, run_handler
from infra.build.python312 import find_python312
from infra.build.runtime import runtime_boto3
from infra.build.sam import BuiltStack, sam_build

TARGET = 1.2
BARE_HANDLER = '''\
import boto3

dynamodb, events = boto3.client("dynamodb"), boto3.client("events")


def lambda_handler(event, context):
    return None
'''
RECORDER = '''\
import sys

before = set(sys.modules)
import botocore.session

services = []
create_client = botocore.session.Session.create_client


def recording(self, service_name, *args, **kwargs):
    services.append(service_name)
    return create_client(self, service_name, *args, **kwargs)


botocore.session.Session.create_client = recording
import {module}  # the function's handler module, from its folder: its init runs

loaded = [name for name in sys.modules if name not in before]  # in the order their imports began


def lambda_handler(event, context):
    files = {{name: getattr(sys.modules[name], "__file__", None) for name in loaded}}
    return {{"modules": files, "services": services}}
'''
LIBRARIES_ALONE = '''\
import gc
import importlib

import botocore.session

gc.disable()  # as lorapin's init runs (collecting_later)
failed = []
for name in {modules!r}:
    try:
        importlib.import_module(name)
    except Exception as error:
        failed.append(f"{{name}}: {{error!r}}")
session = botocore.session.Session()
clients = [session.create_client(service, region_name={region!r}) for service in {services!r}]
gc.enable()


def lambda_handler(event, context):
    return failed
'''


@dataclass
class Probe:
    """One handler to import in fresh processes, and what each run measured."""

    label: str
    run: Callable[[], Invocation]
    samples: list[float] = field(default_factory=list)
    compiled: list[str] = field(default_factory=list)  # source files compiled at its last cold start


def as_in_lambda(env: dict[str, str]) -> dict[str, str]:
    """A function's template environment with tracing on, as deployed."""
    return {key: value for key, value in env.items() if key != "POWERTOOLS_TRACE_DISABLED"}


def measure_cold_starts(function_env: dict[str, dict[str, str]], runs: int = 5) -> list[Row]:
    """Median init of each built function, of its libraries alone (`libraries_alone`) and of the
    bare handler, rounds interleaved so that noise on the shared cores hits every probe alike; one
    discarded run each first (the OS's file cache)."""
    python312 = find_python312()
    built = sam_build("x86_64")
    runtime = runtime_boto3(python312)
    with tempfile.TemporaryDirectory(prefix="lorapin-cold-start-") as scratch:
        bare = Path(scratch) / "bare"
        bare.mkdir()
        (bare / "app.py").write_text(BARE_HANDLER, encoding="utf-8")
        floor_env = as_in_lambda(next(iter(function_env.values())))
        floor = Probe("bare handler", lambda: run_handler(python312, bare, [], runtime, "app.lambda_handler",
                                                          "BareHandler", floor_env))

        def built_function(function_id: str) -> Callable[[], Invocation]:
            return lambda: invoke_built(python312, built, function_id, runtime, as_in_lambda(function_env[function_id]))

        functions = sorted(built.functions().items())
        handlers = [Probe(f"{spec.code_dir.name}/{spec.handler.rpartition('.')[0]}.py", built_function(function_id))
                    for function_id, spec in functions]
        libraries = [Probe(f"{function_id}'s libraries alone",
                           libraries_alone(python312, built, function_id, runtime,
                                           as_in_lambda(function_env[function_id]), Path(scratch) / function_id))
                     for function_id, _ in functions]
        probes = [floor, *handlers, *libraries]
        for probe in probes:
            if failed := probe.run().response:
                raise RuntimeError(f"{probe.label}: could not import {failed}")
        for _ in range(runs):
            for probe in probes:
                invocation = probe.run()
                probe.samples.append(invocation.init_ms / 1000)
                probe.compiled = invocation.compiled
    bare_median = median(floor.samples)
    rows = [Row(f"cold start floor, built artifact: a bare handler (import boto3 + a DynamoDB and an EventBridge "
                f"client), python3.12 as Lambda runs it (median of {runs} fresh processes)",
                f"{bare_median * 1000:.0f} ms")]
    for probe, alone in zip(handlers, libraries, strict=True):
        rows.append(ratio_row(f"cold start, built artifact: {probe.label} (median of {runs})", median(probe.samples),
                              bare_median, TARGET))
        lowest = median(alone.samples)
        rows.append(Row("  its third-party modules and AWS clients alone, none of lorapin's code run: the least its "
                        "init can take with these libraries", ms(lowest), ms(bare_median),
                        f"{lowest / bare_median:.2f}x"))
        rows.append(Row("  of its modules, compiled from source at each cold start (no bytecode shipped)",
                        f"{len(probe.compiled)}: {_summary(probe.compiled, built.folder.resolve())}"))
    return rows


def libraries_alone(python312: Path, built: BuiltStack, function_id: str, runtime: Path, env: dict[str, str],
                    folder: Path) -> Callable[[], Invocation]:
    """What runs, in a fresh process, a handler (written into `folder`) that does what the init of
    `function_id` does without lorapin: it imports the third-party modules that init loads (from
    the function's folder, its layers and the runtime's boto3, in the order their imports began;
    the standard library is left to them, as lorapin's own uses of it are lorapin's cost) and makes
    the same AWS clients from one botocore session: the least the function's init can take while
    it loads those libraries and makes those clients at init. The invocation's response lists the
    modules it failed to import (none, or the figure would be too low)."""
    spec = built.functions()[function_id]
    layers = [layer / "python" for layer in built.layer_folders(function_id)]
    handler_module = spec.handler.rpartition(".")[0]
    recorder = folder / "recorder"
    recorder.mkdir(parents=True)
    (recorder / "lorapin_recorder.py").write_text(RECORDER.format(module=handler_module), encoding="utf-8")
    recorded = run_handler(python312, recorder, [spec.code_dir, *layers], runtime, "lorapin_recorder.lambda_handler",
                           function_id, env, event={}).response
    roots = tuple(f"{root.resolve()}/" for root in (spec.code_dir, *layers, runtime))
    third_party = [name for name, file in recorded["modules"].items()
                   if file and name.split(".")[0] not in ("lorapin", handler_module)
                   and str(Path(file).resolve()).startswith(roots)]
    task = folder / "libraries_alone"
    task.mkdir()
    (task / "app.py").write_text(LIBRARIES_ALONE.format(modules=third_party, services=recorded["services"],
                                                        region=env["AWS_REGION"]), encoding="utf-8")
    # the function's folder after the task's (for the packages it ships, Pillow's), then its layers
    return lambda: run_handler(python312, task, [spec.code_dir, *layers], runtime, "app.lambda_handler", function_id,
                               env, event={})  # (the handler answers what it could not import)


def _summary(files: list[str], artifact: Path) -> str:
    """How many of `files` sit in each function's or layer's folder of the built `artifact`."""
    counts: dict[str, int] = {}
    for file in files:
        path = Path(file).resolve()
        where = path.relative_to(artifact).parts[0] if path.is_relative_to(artifact) else "elsewhere"
        counts[where] = counts.get(where, 0) + 1
    return ", ".join(f"{where} {count}" for where, count in sorted(counts.items())) or "none"
