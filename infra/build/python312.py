"""Find the Python the Lambda runtime runs (3.12): SAM needs it to build, and the built artifact is
run with it. Missing, the message says how to get it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

RUNTIME_VERSION = "3.12"
HOW_TO_GET_IT = (
    "python3.12 is needed to build and run the Lambda artifact (runtime python3.12) and was not found. "
    "Install it with pyenv (`pyenv install 3.12`), then either put it on PATH "
    "(`export PYENV_VERSION=$(pyenv version-name):3.12.1`) or name it: `make test PYTHON312=/path/to/python3.12`."
)


class Python312Missing(RuntimeError):
    pass


def _works(candidate: str | os.PathLike[str]) -> bool:
    try:
        done = subprocess.run([str(candidate), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return False
    return done.returncode == 0 and done.stdout.strip() == RUNTIME_VERSION


def find_python312() -> Path:
    """$PYTHON312, else `python3.12` on PATH, else the newest 3.12 that pyenv installed."""
    named = os.environ.get("PYTHON312")
    if named:
        if not _works(named):
            raise Python312Missing(f"PYTHON312={named} is not a working Python {RUNTIME_VERSION}. {HOW_TO_GET_IT}")
        return Path(named).resolve()
    on_path = shutil.which(f"python{RUNTIME_VERSION}")
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    installed = sorted((pyenv_root / "versions").glob(f"{RUNTIME_VERSION}.*/bin/python{RUNTIME_VERSION}"),
                       key=lambda p: [int(x) for x in p.parents[1].name.split(".") if x.isdigit()], reverse=True)
    candidates: list[str | Path] = [*([on_path] if on_path else []), *installed]
    for candidate in candidates:
        if _works(candidate):
            return Path(candidate).resolve()
    raise Python312Missing(HOW_TO_GET_IT)
