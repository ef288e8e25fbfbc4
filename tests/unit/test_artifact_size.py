"""The bench's artifact sizes: per function, its own zip plus every layer it uses, from the built
folders, for whatever functions the built template has (a new one with its own requirements too)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from infra.bench.artifact_size import artifact_rows, zipped_size
from infra.build.sam import BuiltStack


def folder_with(path: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path


def built_stack(root: Path, *, layer_files: dict[str, bytes]) -> BuiltStack:
    folder_with(root / "SharedLayer", layer_files)
    folder_with(root / "ExtraLayer", {"python/extra.py": os.urandom(1_000_000)})
    folder_with(root / "SmallFunction", {"app.py": b"def lambda_handler(event, context):\n    return {}\n"})
    for big in ("BigFunction", "PhotoInspectorFunction"):
        folder_with(root / big, {"app.py": b"x = 1\n", "PIL/_imaging.so": os.urandom(2_500_000)})
    function: dict[str, Any] = {"Type": "AWS::Serverless::Function", "Properties": {"Handler": "app.lambda_handler"}}
    template = {
        "Globals": {"Function": {"Layers": [{"Ref": "SharedLayer"}]}},
        "Resources": {
            "SharedLayer": {"Type": "AWS::Serverless::LayerVersion", "Properties": {"ContentUri": "SharedLayer"}},
            "ExtraLayer": {"Type": "AWS::Serverless::LayerVersion", "Properties": {"ContentUri": "ExtraLayer"}},
            "SmallFunction": {**function, "Properties": {**function["Properties"], "CodeUri": "SmallFunction"}},
            **{big: {**function, "Properties": {**function["Properties"], "CodeUri": big,
                                                "Layers": [{"Ref": "ExtraLayer"}]}}
               for big in ("BigFunction", "PhotoInspectorFunction")},
        },
    }
    return BuiltStack("arm64", root, template)


def rows_by_measure(built: BuiltStack) -> dict[str, Any]:
    return {row.measure.split(" (")[0]: row for row in artifact_rows(built)}


def test_each_function_is_its_own_zip_plus_every_layer_it_uses(tmp_path: Path) -> None:
    built = built_stack(tmp_path, layer_files={"python/lorapin/__init__.py": os.urandom(2_000_000)})
    rows = rows_by_measure(built)
    layer = zipped_size(tmp_path / "SharedLayer")
    extra = zipped_size(tmp_path / "ExtraLayer")
    small = zipped_size(tmp_path / "SmallFunction")
    big = zipped_size(tmp_path / "BigFunction")
    assert rows["deployment artifact: SmallFunction"].value == f"{(small + layer) / 1e6:.2f} MB"
    assert rows["deployment artifact: SmallFunction"].ok is True
    assert rows["deployment artifact: BigFunction"].value == f"{(big + layer + extra) / 1e6:.2f} MB"
    assert rows["deployment artifact: BigFunction"].ok is False  # 5.5 MB > 5 MB
    inspector = rows["deployment artifact: PhotoInspectorFunction"]  # as big, and exempt (REQUIREMENTS §10)
    assert inspector.value == rows["deployment artifact: BigFunction"].value
    assert inspector.ok is None and inspector.target.startswith("exempt")
    assert rows["layer SharedLayer carries boto3/botocore/s3transfer"].ok is True


def test_a_layer_carrying_botocore_is_reported(tmp_path: Path) -> None:
    built = built_stack(tmp_path, layer_files={"python/botocore/__init__.py": b"",
                                               "python/botocore-1.44.8.dist-info/METADATA": b"Name: botocore\n"})
    row = rows_by_measure(built)["layer SharedLayer carries boto3/botocore/s3transfer"]
    assert row.value == "botocore, botocore-1.44.8.dist-info"
    assert row.ok is False
