"""The state file `python -m infra.local up` writes, so that `invoke` and `lorapin --local` can
talk to the running stack: its endpoints, signing secret and each function's environment."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from infra.local.template import REPO_ROOT

STATE_FILE_ENV = "LORAPIN_LOCAL_STATE"  # where `up` writes its state file, if not the default
STATE_FILE_NAME = ".lorapin-local.json"


class LocalStackNotRunning(Exception):
    pass


def state_file() -> Path:
    """Where `up` writes (and everyone reads) the state: $LORAPIN_LOCAL_STATE, or the repository root."""
    return Path(os.environ.get(STATE_FILE_ENV) or REPO_ROOT / STATE_FILE_NAME)


def write_state(stack: Any, path: Path | None = None) -> None:
    state = {"aws_endpoint": stack.aws_endpoint, "replicate_url": stack.emulator.url, "api_url": stack.api.url,
             "signing_secret": stack.emulator.signing_secret, "function_env": stack.aws.function_env}
    (path or state_file()).write_text(json.dumps(state, indent=2), encoding="utf-8")


def running_state(path: Path | None = None) -> dict[str, Any]:
    """The state of the stack that is running now, or `LocalStackNotRunning` saying why not."""
    path = path or state_file()
    if not path.is_file():
        raise LocalStackNotRunning(f"no {path} found: start the local stack with `python -m infra.local up`")
    try:
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        api_url = str(state["api_url"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LocalStackNotRunning(f"{path} is not a local stack state file: {exc}") from exc
    try:  # any answer of the local API (a 404 included) means the stack is up
        with urllib.request.urlopen(f"{api_url}/", timeout=2):
            pass
    except urllib.error.HTTPError:
        pass
    except OSError as exc:
        raise LocalStackNotRunning(f"the local stack of {path} is not running ({exc}); start it with "
                                   "`python -m infra.local up`") from exc
    return state
