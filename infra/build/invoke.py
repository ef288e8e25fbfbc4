"""Invoke a function of a built stack in a clean `python3.12 -I -S -B` process (`lambda_runner.py`)."""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.build.sam import BuiltStack

RUNNER = Path(__file__).resolve().with_name("lambda_runner.py")
LAMBDA_ENV = {"LANG": "en_US.UTF-8", "TZ": ":UTC", "PATH": "/usr/local/bin:/usr/bin:/bin",
              "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
              "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}


class InvocationFailed(RuntimeError):
    pass


@dataclass
class Invocation:
    response: Any
    modules: dict[str, str]  # every module loaded: name → file
    stdlib: list[str]
    init_ms: float
    compiled: list[str]  # source files compiled to import the handler and run it: they had no bytecode
    output: str  # what the function printed (its logs and metrics)
    at_init: list[str]  # the modules loaded once the handler was imported, before the event

    def imported_by_the_request(self, *packages: str) -> list[str]:
        """The modules of `packages` the invocation loaded that the init had not."""
        loaded_at_init = set(self.at_init)
        return sorted(name for name in self.modules
                      if name not in loaded_at_init and name.split(".")[0] in packages)

    def modules_outside(self, *roots: Path) -> dict[str, str]:
        """Modules loaded from anywhere but `roots` and the standard library."""
        allowed = [str(root.resolve()) for root in roots] + [str(Path(p).resolve()) for p in self.stdlib]
        return {name: file for name, file in self.modules.items()
                if not any(str(Path(file).resolve()).startswith(root + "/") for root in allowed)}


def invoke_built(python312: Path, built: BuiltStack, function_id: str, runtime: Path, env: dict[str, str],
                 event: dict[str, Any] | None = None, *, timeout: float = 120) -> Invocation:
    """Import `function_id`'s handler from the built artifact (and call it with `event`, if any)
    with only its folder, its layers' python/ and `runtime` (the runtime's boto3) importable."""
    spec = built.functions()[function_id]
    layers = [folder / "python" for folder in built.layer_folders(function_id)]
    return run_handler(python312, spec.code_dir, layers, runtime, spec.handler, function_id, env, event,
                       timeout=timeout)


def run_handler(python312: Path, task: Path, layers: list[Path], runtime: Path, handler: str, function_name: str,
                env: dict[str, str], event: dict[str, Any] | None = None, *, timeout: float = 120) -> Invocation:
    """Import `handler` ("module.function") from `task`, `layers` and `runtime` alone, in a fresh
    process as Lambda's python3.12 runtime would, and call it with `event` when one is given."""
    task = task.resolve()
    with tempfile.TemporaryDirectory(prefix="lorapin-artifact-") as scratch:
        request = {"task": str(task), "layers": [str(layer) for layer in layers], "runtime": str(runtime.resolve()),
                   "handler": handler, "function_name": function_name, "event": event,
                   "result": str(Path(scratch) / "result.json")}
        (Path(scratch) / "spec.json").write_text(json.dumps(request), encoding="utf-8")
        done = subprocess.run([str(python312), "-I", "-S", "-B", str(RUNNER), str(Path(scratch) / "spec.json")],
                              cwd=scratch, env={**LAMBDA_ENV, **env, "LAMBDA_TASK_ROOT": str(task)},
                              capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise InvocationFailed(f"{function_name} failed in the built artifact (exit {done.returncode}):\n"
                                   f"{(done.stdout + done.stderr)[-4000:]}")
        result = json.loads((Path(scratch) / "result.json").read_text(encoding="utf-8"))
    return Invocation(result["response"], result["modules"], result["stdlib"], float(result["init_ms"]),
                      list(result["compiled"]), done.stdout + done.stderr, list(result["at_init"]))
