"""Where a cold start goes beyond the bare handler's: each import's own cost, one after another, in
fresh `python3.12 -I -S -B` processes on the x86_64 build of the layer with the runtime's boto3
(as `cold_start.py` runs a function), collector paused as lorapin's init runs, median of `runs`.
Each step's figure is what it adds to the steps before it, so the order matters: the first step is
the bare handler's own work. The README's account of the cold-start misses comes from this:

    .venv/bin/python -m infra.bench.import_costs [runs]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from infra.build.invoke import LAMBDA_ENV
from infra.build.python312 import find_python312
from infra.build.runtime import runtime_boto3
from infra.build.sam import sam_build

STEPS = (
    ("the bare handler: boto3 + a DynamoDB and an EventBridge client",
     "import boto3; boto3.client('dynamodb'); boto3.client('events')"),
    ("Powertools' Logger", "from aws_lambda_powertools import Logger; Logger()"),
    ("the X-Ray SDK (Tracer)", "from aws_lambda_powertools import Tracer; Tracer(patch_modules=['botocore'])"),
    ("pydantic and its models (`import pydantic` alone defers most of it)", "from pydantic import BaseModel"),
    ("PynamoDB", "import pynamodb.models"),
    ("Powertools' data_classes (every event class)", "import aws_lambda_powertools.utilities.data_classes"),
    ("Powertools' event_handler (every resolver), beyond data_classes",
     "import aws_lambda_powertools.event_handler.api_gateway"),
)
PROGRAM = """
import gc, json, sys, time
gc.disable()
sys.path[:0] = {paths!r}; sys.path.append({runtime!r})
namespace, costs = {{"__name__": "app"}}, []
for statement in {statements!r}:
    started = time.perf_counter(); exec(statement, namespace); costs.append((time.perf_counter() - started) * 1000)
print(json.dumps(costs))
"""


def time_statements(python312: Path, paths: list[str], statements: list[str], env: dict[str, str], cwd: str,
                    runs: int) -> list[float]:
    """Each of `statements`' median cost in ms, run one after another (in one namespace) in `runs`
    fresh `python3.12 -I -S -B` processes with `paths` and the runtime's boto3 importable, the
    collector paused as lorapin's init runs; one discarded run first (the OS's file cache)."""
    program = PROGRAM.format(paths=paths, runtime=str(runtime_boto3(python312).resolve()), statements=statements)
    samples = [json.loads(subprocess.run([str(python312), "-I", "-S", "-B", "-c", program], cwd=cwd, env=env,
                                         capture_output=True, text=True, check=True,
                                         timeout=120).stdout.splitlines()[-1])
               for _ in range(runs + 1)]
    return [statistics.median(run[index] for run in samples[1:]) for index in range(len(statements))]


def import_costs(runs: int = 7) -> list[tuple[str, float]]:
    """Each step of STEPS with its median cost in ms."""
    python312 = find_python312()
    built = sam_build("x86_64")
    layer = [str(folder / "python") for folder in built.layers().values()]
    with tempfile.TemporaryDirectory(prefix="lorapin-import-costs-") as task:
        env = {**LAMBDA_ENV, "LAMBDA_TASK_ROOT": task, "AWS_LAMBDA_FUNCTION_NAME": "ImportCosts",
               "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_SERVICE_NAME": "lorapin",
               "PYDANTIC_DISABLE_PLUGINS": "__all__"}
        costs = time_statements(python312, layer, [statement for _, statement in STEPS], env, task, runs)
    return [(label, cost) for (label, _), cost in zip(STEPS, costs, strict=True)]


def main(argv: list[str]) -> int:
    runs = int(argv[0]) if argv else 7
    for label, cost in import_costs(runs):
        print(f"{cost:7.1f} ms  {label}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
