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

from infra.bench.table import Row, median, ratio_row
from infra.build.invoke import Invocation, invoke_built, run_handler
from infra.build.python312 import find_python312
from infra.build.runtime import runtime_boto3
from infra.build.sam import sam_build

TARGET = 1.2
BARE_HANDLER = '''\
import boto3

dynamodb, events = boto3.client("dynamodb"), boto3.client("events")


def lambda_handler(event, context):
    return None
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
    """Median init of each built function and of the bare handler, rounds interleaved so that noise
    on the shared cores hits every probe alike; one discarded run each first (the OS's file cache)."""
    python312 = find_python312()
    built = sam_build("x86_64")
    runtime = runtime_boto3(python312)
    with tempfile.TemporaryDirectory(prefix="lorapin-bare-handler-") as bare:
        (Path(bare) / "app.py").write_text(BARE_HANDLER, encoding="utf-8")
        floor_env = as_in_lambda(next(iter(function_env.values())))
        floor = Probe("bare handler", lambda: run_handler(python312, Path(bare), [], runtime, "app.lambda_handler",
                                                          "BareHandler", floor_env))

        def built_function(function_id: str) -> Callable[[], Invocation]:
            return lambda: invoke_built(python312, built, function_id, runtime, as_in_lambda(function_env[function_id]))

        handlers = [Probe(f"{spec.code_dir.name}/{spec.handler.rpartition('.')[0]}.py", built_function(function_id))
                    for function_id, spec in sorted(built.functions().items())]
        probes = [floor, *handlers]
        for probe in probes:
            probe.run()
        for _ in range(runs):
            for probe in probes:
                invocation = probe.run()
                probe.samples.append(invocation.init_ms / 1000)
                probe.compiled = invocation.compiled
    bare_median = median(floor.samples)
    rows = [Row(f"cold start floor, built artifact: a bare handler (import boto3 + a DynamoDB and an EventBridge "
                f"client), python3.12 as Lambda runs it (median of {runs} fresh processes)",
                f"{bare_median * 1000:.0f} ms")]
    for probe in handlers:
        rows.append(ratio_row(f"cold start, built artifact: {probe.label} (median of {runs})", median(probe.samples),
                              bare_median, TARGET))
        rows.append(Row("  of its modules, compiled from source at each cold start (no bytecode shipped)",
                        f"{len(probe.compiled)}: {_summary(probe.compiled, built.folder.resolve())}"))
    return rows


def _summary(files: list[str], artifact: Path) -> str:
    """How many of `files` sit in each function's or layer's folder of the built `artifact`."""
    counts: dict[str, int] = {}
    for file in files:
        path = Path(file).resolve()
        where = path.relative_to(artifact).parts[0] if path.is_relative_to(artifact) else "elsewhere"
        counts[where] = counts.get(where, 0) + 1
    return ", ".join(f"{where} {count}" for where, count in sorted(counts.items())) or "none"
