"""Deployment artifact sizes (REQUIREMENTS §10: each function ≤ 5 MB zipped, boto3 excluded).

A function deploys as its code directory (with the wheels of its own requirements.txt, if any)
plus the shared layer (the wheels of `shared/requirements.txt` and `shared/lorapin`), built the
way `sam build` builds them for arm64 and Python 3.12, from PyPI. boto3 and its dependencies are
left out: the runtime provides them.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from infra.bench.table import Row
from infra.local.template import REPO_ROOT, FunctionSpec

LIMIT_BYTES = 5 * 1024 * 1024
# boto3 and what it brings (the runtime has them all); pynamodb still asks pip for botocore
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "python_dateutil", "six")
PIP_PLATFORM = ["--platform", "manylinux2014_aarch64", "--implementation", "cp", "--python-version", "3.12",
                "--only-binary=:all:"]


def zipped_size(root: Path, *, prefix: str = "", skip: tuple[str, ...] = ()) -> int:
    """Bytes of a deflated zip of everything under `root` (caches and runtime-provided packages out)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root)
            top = relative.parts[0]
            if path.is_dir() or "__pycache__" in relative.parts or top.startswith(skip):
                continue
            archive.write(path, f"{prefix}{relative}")
    return len(buffer.getvalue())


def pip_install(requirements: Path, target: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--target", str(target), *PIP_PLATFORM, "-r", str(requirements)],
                   check=True, capture_output=True, text=True, timeout=600)


def built_size(source: Path, work: Path, *, prefix: str = "") -> int:
    """The zipped size of `source` as sam build would package it: its files plus its requirements."""
    shutil.copytree(source, work, ignore=shutil.ignore_patterns("__pycache__", "requirements.txt"))
    if (source / "requirements.txt").exists():
        pip_install(source / "requirements.txt", work)
    return zipped_size(work, prefix=prefix, skip=RUNTIME_PROVIDED)


def measure_artifacts(functions: dict[str, FunctionSpec]) -> list[Row]:
    with tempfile.TemporaryDirectory() as folder:
        try:
            layer = built_size(REPO_ROOT / "shared", Path(folder) / "layer", prefix="python/")
            code = {logical_id: built_size(spec.code_dir, Path(folder) / logical_id)
                    for logical_id, spec in functions.items()}
        except (subprocess.SubprocessError, OSError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            return [Row("deployment artifacts (arm64, py3.12)",
                        f"not measured: pip could not fetch the wheels ({detail.strip()[-120:]})", ok=False)]
    rows = [Row("deployment artifact: shared layer (arm64, py3.12, boto3 excluded), zipped", _mb(layer))]
    for logical_id in sorted(code):
        total = code[logical_id] + layer
        rows.append(Row(f"deployment artifact: {logical_id} (function {_mb(code[logical_id])} + layer), zipped",
                        _mb(total), target="<= 5 MB", ok=total <= LIMIT_BYTES))
    return rows


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.2f} MB"
