"""The boto3 that Lambda's python3.12 runtime provides, installed into a folder of its own.

The runtime's version changes with time and region, so the artifact is run against the oldest
boto3 this project declares it supports (pyproject's floor, latest patch of that minor series):
the layer must work with whatever the runtime has, and it must not bring its own.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

from infra.local.template import REPO_ROOT

BUILD_ROOT = REPO_ROOT / "build"


def runtime_boto3_requirement() -> str:
    """`boto3==X.Y.*` for pyproject's `boto3>=X.Y`."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for requirement in project["dependencies"]:
        found = re.fullmatch(r"boto3\s*>=\s*(\d+)\.(\d+)(?:\.\d+)?", requirement.strip())
        if found:
            return f"boto3=={found[1]}.{found[2]}.*"
    raise RuntimeError("pyproject.toml declares no `boto3>=X.Y` floor")


def runtime_boto3(python312: Path) -> Path:
    """A folder holding boto3 (and botocore, s3transfer...) as the runtime would; installed once
    per requirement and kept under build/."""
    requirement = runtime_boto3_requirement()
    folder = BUILD_ROOT / f"runtime-{re.sub(r'[^A-Za-z0-9]+', '-', requirement).strip('-')}"
    stamp = folder / ".installed"
    if stamp.is_file() and stamp.read_text(encoding="utf-8") == requirement:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.run([str(python312), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--no-warn-script-location", "--target", str(folder), requirement],
                   check=True, capture_output=True, text=True, timeout=600)
    stamp.write_text(requirement, encoding="utf-8")
    return folder
