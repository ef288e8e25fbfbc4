"""Deployment artifact sizes (REQUIREMENTS §10: each function ≤ 5 MB zipped, its layers included;
the layer carries no boto3, botocore or s3transfer).

Measured on what ships: `sam build` of template.yaml as it is (arm64, Python 3.12, wheels from
PyPI), each built folder zipped the way `sam deploy` uploads it (deflate, every file). A function's
figure is its own zip plus the zip of every layer it uses; nothing is subtracted. Any function the
template defines is measured, with whatever its own requirements.txt installs.

`python -m infra.bench.artifact_size` prints these rows alone (`make bench` prints them with the rest).
"""

from __future__ import annotations

import io
import subprocess
import zipfile
from pathlib import Path

from infra.bench.table import Row, render
from infra.build.python312 import Python312Missing
from infra.build.sam import SHIPPED_ARCHITECTURE, BuildFailed, BuiltStack, sam_build

LIMIT_BYTES = 5_000_000  # 5 MB, decimal: the stricter reading of the target
EXEMPT = {"PhotoInspectorFunction": "exempt: the one function that decodes images (Pillow, pillow-heif)"}
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")


def zipped_size(folder: Path) -> int:
    """Bytes of a deflated zip of everything under `folder`, as `sam deploy` would upload it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, str(path.relative_to(folder)))
    return len(buffer.getvalue())


def runtime_packages_in(layer: Path) -> list[str]:
    """Top-level entries of a built layer's python/ that belong to the runtime's boto3."""
    return sorted(entry.name for entry in (layer / "python").iterdir()
                  if entry.name.split("-")[0].lower() in RUNTIME_PROVIDED)


def artifact_rows(built: BuiltStack) -> list[Row]:
    layers = {name: zipped_size(folder) for name, folder in built.layers().items()}
    rows = []
    for name, folder in sorted(built.layers().items()):
        carried = runtime_packages_in(folder)
        rows.append(Row(f"deployment artifact: layer {name} ({built.architecture}), zipped", _mb(layers[name])))
        rows.append(Row(f"layer {name} carries boto3/botocore/s3transfer", ", ".join(carried) or "none",
                        target="none", ok=not carried))
    for function_id, spec in sorted(built.functions().items()):
        own = zipped_size(spec.code_dir)
        used = [folder.name for folder in built.layer_folders(function_id)]
        total = own + sum(layers[name] for name in used)
        exempt = EXEMPT.get(function_id)
        rows.append(Row(f"deployment artifact: {function_id} (function {_mb(own)} + {' + '.join(used) or 'no layer'}),"
                        " zipped", _mb(total), target=exempt or "<= 5 MB", ok=None if exempt else total <= LIMIT_BYTES))
    return rows


def measure_artifacts() -> list[Row]:
    """Build the stack as it ships and measure it; a build that cannot run here is one honest row."""
    try:
        built = sam_build(SHIPPED_ARCHITECTURE)
    except (BuildFailed, Python312Missing, subprocess.SubprocessError, OSError) as exc:
        return [Row(f"deployment artifacts ({SHIPPED_ARCHITECTURE})", f"not measured: {str(exc)[-300:]}", ok=False)]
    return artifact_rows(built)


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.2f} MB" if size >= 100_000 else f"{size / 1000:.1f} kB"


if __name__ == "__main__":
    print(render(measure_artifacts()))
