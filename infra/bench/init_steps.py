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
import logging
import os
import sys
import uuid
from pathlib import Path

from moto.server import ThreadedMotoServer

from infra.bench.cold_start import as_in_lambda
from infra.bench.import_costs import time_statements
from infra.build.invoke import LAMBDA_ENV
from infra.build.python312 import find_python312
from infra.build.sam import sam_build
from infra.local.aws_stack import LOCAL_CREDENTIALS, provision
from infra.local.template import Template


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
    for variable, value in LOCAL_CREDENTIALS.items():  # moto's; this process provisions the tables
        os.environ.setdefault(variable, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        endpoint = "http://{}:{}".format(*server.get_host_and_port())
        aws = provision(Template(), endpoint_url=endpoint, prefix=f"i{uuid.uuid4().hex[:10]}")
        env = {**LAMBDA_ENV, **as_in_lambda(aws.function_env[function_id]), "LAMBDA_TASK_ROOT": str(spec.code_dir)}
        costs = time_statements(python312, paths, statements, env, str(spec.code_dir), runs)
    finally:
        server.stop()
    return list(zip(statements, costs, strict=True))


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
