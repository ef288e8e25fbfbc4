"""Load a function of `template.yaml` in isolation, the way Lambda would: its own module from its
own `app.py`, with the template's environment set before the import (cold start)."""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infra.local.template import FunctionSpec

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LocalContext:
    """What a handler reads of Lambda's context object."""

    function_name: str
    memory_limit_in_mb: int = 512
    aws_request_id: str = ""
    invoked_function_arn: str = ""
    log_group_name: str = "local"
    log_stream_name: str = "local"
    function_version: str = "$LATEST"

    def __post_init__(self) -> None:
        self.aws_request_id = self.aws_request_id or str(uuid.uuid4())
        self.invoked_function_arn = (self.invoked_function_arn or
                                     f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}")

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 20_000


def apply_environment(env: dict[str, str]) -> None:
    """Set a function's environment and forget clients built for another one."""
    os.environ.update(env)
    from lorapin.runtime import reset_runtime

    reset_runtime()


def load_handler(spec: FunctionSpec, env: dict[str, str]) -> Handler:
    module_file, _, function_name = spec.handler.rpartition(".")
    path = spec.code_dir / f"{module_file.replace('.', '/')}.py"
    if not path.exists():
        raise FileNotFoundError(f"{spec.logical_id}: handler file {path} does not exist")
    apply_environment(env)
    module_name = f"lorapin_function_{spec.logical_id}_{uuid.uuid4().hex[:8]}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    assert module_spec and module_spec.loader
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    module_spec.loader.exec_module(module)
    handler: Handler = getattr(module, function_name)
    return handler


def invoke(handler: Handler, event: dict[str, Any], function_name: str) -> Any:
    return handler(event, LocalContext(function_name))
