"""The layers of `shared/lorapin` (docs/ARCHITECTURE.md), checked by reading every module's imports.

domain → nothing of ours but domain; adapters → domain; services → adapters, domain; http →
services, adapters, domain; the composition root (`lorapin.runtime`) may use them all. The layer
imports nothing from `functions/`, `infra/` or `tests/`, and the domain knows no AWS.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import build_layer

LAYER_ROOT = Path(__file__).resolve().parents[2] / "shared" / "lorapin"
RANK = {"domain": 0, "observability": 1, "cold_start": 1, "adapters": 2, "services": 3, "http": 4, "runtime": 5}
AWS_LIBRARIES = ("boto3", "botocore", "pynamodb", "aws_lambda_powertools")


def module_name(path: Path) -> str:
    return build_layer.module_name(LAYER_ROOT.parent, path)


def layer_of(module: str) -> str:
    """`lorapin.services.generation` → `services`; `lorapin.runtime` → `runtime`."""
    return module.split(".")[1]


def imports_of(path: Path, root: Path = LAYER_ROOT.parent) -> set[str]:
    """Every module `path` (under `root`) imports, at the top or inside a function (lazy imports
    count too), relative imports resolved: read as the layer build reads them before pruning."""
    return build_layer.imports_of(root, path)


MODULES = sorted(path for path in LAYER_ROOT.rglob("*.py") if module_name(path) != "lorapin")


def test_every_module_belongs_to_a_known_layer() -> None:
    unknown = {module_name(p) for p in MODULES if layer_of(module_name(p)) not in RANK}
    assert unknown == set()


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_imports_point_down_the_layers(path: Path) -> None:
    here = layer_of(module_name(path))
    upward = [m for m in imports_of(path) if m.startswith("lorapin.") and RANK[layer_of(m)] > RANK[here]]
    assert upward == [], f"{module_name(path)} ({here}) imports from a higher layer"


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_the_layer_imports_nothing_outside_it(path: Path) -> None:
    outside = [m for m in imports_of(path) if m.split(".")[0] in ("infra", "functions", "tests", "app")]
    assert outside == []


@pytest.mark.parametrize("path", [p for p in MODULES if layer_of(module_name(p)) == "domain"], ids=module_name)
def test_the_domain_knows_no_aws(path: Path) -> None:
    aws = [m for m in imports_of(path) if m.split(".")[0] in AWS_LIBRARIES]
    assert aws == []


def test_the_check_itself_sees_an_upward_import(tmp_path: Path) -> None:
    """The rule above must be able to fail: a domain module importing a service is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from lorapin.services.generation import Generations\n", encoding="utf-8")
    upward = {m for m in imports_of(bad, tmp_path) if m.startswith("lorapin.") and RANK[layer_of(m)] > RANK["domain"]}
    assert upward == {"lorapin.services.generation", "lorapin.services.generation.Generations"}
