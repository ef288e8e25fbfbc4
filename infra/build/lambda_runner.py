"""Run one handler of a *built* function the way Lambda's python3.12 runtime does, in a fresh
process started as `python3.12 -I -S -B lambda_runner.py SPEC.json`: nothing is importable but the
standard library, the function's folder, its layers' `python/` and the runtime's boto3, in that
order (Lambda's: /var/task, /opt/python, the runtime's site-packages), and no bytecode is written
(Lambda's /var/task and /opt are read-only: what ships without it is compiled at every cold start).

SPEC.json: {"task", "layers", "runtime", "handler", "function_name", "event" (or null: import
only), "result"}. The result file gets {"response", "modules" (name → file of every module
loaded), "stdlib", "init_ms", "compiled" (the source files Python compiled to import them, in the
order it did: what had no usable bytecode), "at_init" (the modules loaded before the event)};
stdout is left to the function's own logs and metrics.

Standard library only: it runs before anything else can be imported.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import json
import sys
import sysconfig
import time
import uuid
from typing import Any


class Context:
    """What a handler reads of Lambda's context object."""

    def __init__(self, function_name: str) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.aws_request_id = str(uuid.uuid4())
        self.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + function_name
        self.log_group_name = "/aws/lambda/" + function_name
        self.log_stream_name = "artifact-test"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 20000


def record_compiles() -> list[str]:
    """Every source file the import system compiles from now on (it found no usable bytecode)."""
    compiled: list[str] = []
    source_to_code = importlib.machinery.SourceFileLoader.source_to_code

    def recording(self: Any, data: Any, path: Any, **kwargs: Any) -> Any:
        compiled.append(str(path))
        return source_to_code(self, data, path, **kwargs)

    importlib.machinery.SourceFileLoader.source_to_code = recording  # type: ignore[method-assign]
    return compiled


def main(spec_path: str) -> int:
    with open(spec_path, encoding="utf-8") as handle:
        spec: dict[str, Any] = json.load(handle)
    sys.path[:0] = [spec["task"], *spec["layers"]]
    sys.path.append(spec["runtime"])
    module_name, _, function_name = spec["handler"].rpartition(".")
    compiled = record_compiles()
    started = time.perf_counter()
    handler = getattr(importlib.import_module(module_name), function_name)
    init_ms = (time.perf_counter() - started) * 1000
    at_init = sorted(sys.modules)
    response = None
    if spec["event"] is not None:
        response = handler(spec["event"], Context(spec["function_name"]))
    modules = {name: module.__file__ for name, module in list(sys.modules.items())
               if getattr(module, "__file__", None)
               and name not in ("__main__", "__mp_main__")}  # this runner (multiprocessing aliases it)
    paths = sysconfig.get_paths()
    result = {"response": response, "modules": modules, "init_ms": init_ms, "compiled": compiled, "at_init": at_init,
              "stdlib": sorted({paths["stdlib"], paths["platstdlib"]}), "sys_path": sys.path}
    with open(spec["result"], "w", encoding="utf-8") as handle:
        json.dump(result, handle, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
