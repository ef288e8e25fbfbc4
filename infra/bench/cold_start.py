"""REQUIREMENTS §10 cold start: each handler module imported the way Lambda (and `load_handler`) does, in a fresh
interpreter with the function's template environment and what Lambda adds to it (`LAMBDA_TASK_ROOT`,
`AWS_LAMBDA_RUNTIME_API`, tracing on: the X-Ray SDK then runs in its Lambda mode), against a bare handler's
init: `import boto3` and a DynamoDB and an EventBridge client."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from infra.bench.table import Row, median, ratio_row
from infra.local.template import REPO_ROOT, FunctionSpec

TARGET = 1.2
# The clock starts after interpreter start-up, in both probes, so only the import itself is timed.
HANDLER_PROBE = """\
import importlib.util, sys, time
start = time.perf_counter()
spec = importlib.util.spec_from_file_location(sys.argv[1], sys.argv[2])
module = importlib.util.module_from_spec(spec)
sys.modules[sys.argv[1]] = module
spec.loader.exec_module(module)
getattr(module, sys.argv[3])
print(time.perf_counter() - start)
"""
BARE_HANDLER_PROBE = """\
import time
start = time.perf_counter()
import boto3
dynamodb, events = boto3.client("dynamodb"), boto3.client("events")
print(time.perf_counter() - start)
"""
LAMBDA_RUNTIME_API = "127.0.0.1:9001"  # set in every Lambda execution environment (`lorapin.cold_start`)
BASE_ENV_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


@dataclass
class Probe:
    """One thing to import in fresh processes, and the seconds each run took."""

    label: str
    args: list[str]
    env: dict[str, str]
    samples: list[float]


def _run(probe: Probe) -> float:
    done = subprocess.run([sys.executable, "-c", *probe.args], env=probe.env, cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"cold-start probe {probe.label} failed: {done.stderr.strip()[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def _handler_probe(spec: FunctionSpec, env: dict[str, str]) -> Probe:
    module_file, _, function_name = spec.handler.rpartition(".")
    path = spec.code_dir / f"{module_file.replace('.', '/')}.py"
    name = f"lorapin_function_{spec.logical_id}"
    as_in_lambda = {key: value for key, value in env.items() if key != "POWERTOOLS_TRACE_DISABLED"}
    as_in_lambda |= {"LAMBDA_TASK_ROOT": str(spec.code_dir), "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id,
                     "_HANDLER": spec.handler, "AWS_LAMBDA_RUNTIME_API": LAMBDA_RUNTIME_API}
    return Probe(f"{spec.code_dir.name}/{path.name}", [HANDLER_PROBE, name, str(path), function_name], as_in_lambda,
                 [])


def measure_cold_starts(functions: dict[str, FunctionSpec], function_env: dict[str, dict[str, str]],
                        runs: int = 5) -> list[Row]:
    """Median import time of each handler and of a bare handler's init, rounds interleaved so that
    noise on the shared cores hits every probe alike; one discarded warm-up run each fills the .pyc cache."""
    base = {key: os.environ[key] for key in BASE_ENV_KEYS if key in os.environ}
    floor_env = {**base, **next(iter(function_env.values()))}
    floor = Probe("bare handler", [BARE_HANDLER_PROBE], floor_env, [])
    handlers = [_handler_probe(spec, {**base, **function_env[function_id]})
                for function_id, spec in functions.items()]
    probes = [floor, *handlers]
    for probe in probes:
        _run(probe)
    for _ in range(runs):
        for probe in probes:
            probe.samples.append(_run(probe))
    bare_median = median(floor.samples)
    rows = [Row(f"cold start floor: import boto3 + a DynamoDB and an EventBridge client (median of {runs} fresh "
                "processes)", f"{bare_median * 1000:.0f} ms")]
    for probe in handlers:
        row = ratio_row(f"cold start: import {probe.label} (median of {runs})", median(probe.samples),
                        bare_median, TARGET)
        rows.append(row)
    return rows
