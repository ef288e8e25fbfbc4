"""The shared layer's requirements.txt (what `sam build` installs) must match pyproject's runtime
dependencies, minus boto3 which the Lambda runtime provides: a missing line breaks every function."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def names(requirements: list[str]) -> dict[str, str]:
    found = {}
    for line in requirements:
        line = line.split("#", 1)[0].strip()
        if line:
            found[re.split(r"[\[<>=!~ ]", line, maxsplit=1)[0].lower()] = line.replace(" ", "")
    return found


def read(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_layer_and_function_requirements_are_the_runtime_dependencies_without_boto3() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    layer = names(read(ROOT / "shared" / "requirements.txt"))
    inspector = names(read(ROOT / "functions" / "photo_inspector" / "requirements.txt"))
    expected = {name: spec for name, spec in names(project).items() if name not in ("boto3", "botocore")}
    assert {**layer, **inspector} == expected
    assert not set(layer) & set(inspector)
    assert set(inspector) == {"pillow", "pillow-heif"}  # photos are decoded in the photo inspector only
    others = [path.parent.name for path in (ROOT / "functions").glob("*/requirements.txt")]
    assert others == ["photo_inspector"]
