"""Where one function's cold start goes, statement by statement: the statements of its `app.py`'s
init block (`with collecting_later():`) run one after another in fresh `python3.12 -I -S -B`
processes on the x86_64 build (as `cold_start.py` runs a function: its folder, the layer and the
runtime's boto3 importable, tracing on), each timed, median of `runs`. The function's environment
comes from the template, provisioned on a throwaway moto server (nothing is requested at init).
The README's account of the cold-start misses comes from this:

    .venv/bin/python -m infra.bench.init_steps ReplicateWebhookFunction [runs]
"""

from __future__ import annotations

import ast
import json
import logging
import os
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

from moto.server import ThreadedMotoServer

from infra.bench.cold_start import as_in_lambda
from infra.build.invoke import LAMBDA_ENV
from infra.build.python312 import find_python312
from infra.build.runtime import runtime_boto3
from infra.build.sam import sam_build
from infra.local.aws_stack import provision
from infra.local.template import Template

PROGRAM = """
import gc, json, sys, time
gc.disable()
sys.path[:0] = {paths!r}; sys.path.append({runtime!r})
namespace, costs = {{"__name__": "app"}}, []
for statement in {statements!r}:
    started = time.perf_counter(); exec(statement, namespace); costs.append((time.perf_counter() - started) * 1000)
print(json.dumps(costs))
"""


def init_statements(app: Path) -> list[str]:
    """The source of each statement of `app`'s init block, in order; `runtime.prepare(a, b, ...)`
    as one statement per client, so that each is timed apart."""
    source = app.read_text(encoding="utf-8")
    for node in ast.parse(source).body:
        if isinstance(node, ast.With) and "collecting_later" in ast.unparse(node.items[0].context_expr):
            return [part for statement in node.body for part in _split_prepare(statement)]
    raise ValueError(f"{app} has no `with collecting_later():` init block")


def _split_prepare(statement: ast.stmt) -> list[str]:
    call = statement.value if isinstance(statement, ast.Expr) else None
    if isinstance(call, ast.Call) and ast.unparse(call.func) == "runtime.prepare" and len(call.args) > 1:
        return [f"runtime.prepare({ast.unparse(argument)})" for argument in call.args]
    return [ast.unparse(statement)]


def init_steps(function_id: str, runs: int = 9) -> list[tuple[str, float]]:
    python312 = find_python312()
    built = sam_build("x86_64")
    spec = built.functions()[function_id]
    statements = init_statements(spec.code_dir / f"{spec.handler.rpartition('.')[0]}.py")
    paths = [str(spec.code_dir), *(str(folder / "python") for folder in built.layer_folders(function_id))]
    program = PROGRAM.format(paths=paths, runtime=str(runtime_boto3(python312).resolve()), statements=statements)
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):  # moto's; this process provisions the tables
        os.environ.setdefault(variable, "testing")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        endpoint = "http://{}:{}".format(*server.get_host_and_port())
        aws = provision(Template(), endpoint_url=endpoint, prefix=f"i{uuid.uuid4().hex[:10]}")
        env = {**LAMBDA_ENV, **as_in_lambda(aws.function_env[function_id]), "LAMBDA_TASK_ROOT": str(spec.code_dir)}
        samples = [json.loads(subprocess.run([str(python312), "-I", "-S", "-B", "-c", program], cwd=spec.code_dir,
                                             env=env, capture_output=True, text=True, check=True,
                                             timeout=120).stdout.splitlines()[-1])
                   for _ in range(runs + 1)]  # the first warms the OS's file cache
    finally:
        server.stop()
    return [(statement, statistics.median(run[index] for run in samples[1:]))
            for index, statement in enumerate(statements)]


def main(argv: list[str]) -> int:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the moto server logs every request
    function_id = argv[0] if argv else "ReplicateWebhookFunction"
    steps = init_steps(function_id, int(argv[1]) if len(argv) > 1 else 9)
    for statement, cost in steps:
        print(f"{cost:7.1f} ms  {' '.join(statement.split())[:110]}")
    print(f"{sum(cost for _, cost in steps):7.1f} ms  in all (the sum of the medians)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
