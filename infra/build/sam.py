"""`sam build` of template.yaml, as it ships (arm64) or retargeted to this machine (x86_64).

arm64 wheels (pydantic_core, Pillow) do not load on an x86_64 machine, so to *run* the built
artifact here the template is copied with every architecture set to x86_64 and built the same way;
only the wheels' platform differs. The copy points at the repository's code with absolute paths and
is built in a folder of its own under `build/`, without SAM's cache, so what is tested is built now.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.build.python312 import find_python312
from infra.local.template import REPO_ROOT, FunctionSpec, Template, load_template

SAM = REPO_ROOT / ".venv-tools" / "bin" / "sam"
BUILD_ROOT = REPO_ROOT / "build"
SHIPPED_ARCHITECTURE = "arm64"
LAYER_ARCHITECTURE_ENV = "LORAPIN_LAYER_ARCHITECTURE"  # read by shared/Makefile (SAM tells a makefile nothing)
# What must not leak from this process into SAM's: another make's jobs, this venv's Python.
_NOT_INHERITED = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEFILES", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")


class BuildFailed(RuntimeError):
    pass


@dataclass
class BuiltStack:
    """The output of one `sam build`: the built template and each resource's artifact folder."""

    architecture: str
    folder: Path  # SAM's --build-dir
    template: dict[str, Any]

    def functions(self) -> dict[str, FunctionSpec]:
        return Template(self.template, root=self.folder).functions()

    def layer_folders(self, function_id: str) -> list[Path]:
        """The built folder of each layer `function_id` uses (the Globals' and its own)."""
        resources = self.template["Resources"]
        listed = [*self.template.get("Globals", {}).get("Function", {}).get("Layers", []),
                  *resources[function_id]["Properties"].get("Layers", [])]
        return [self.folder / resources[layer["Ref"]]["Properties"]["ContentUri"]
                for layer in listed if isinstance(layer, dict) and layer.get("Ref") in resources]

    def layers(self) -> dict[str, Path]:
        return {name: self.folder / resource["Properties"]["ContentUri"]
                for name, resource in self.template["Resources"].items()
                if resource.get("Type") == "AWS::Serverless::LayerVersion"}


def template_for(architecture: str, document: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of the template whose functions and layers all build for `architecture`, with code
    paths made absolute so the copy can live anywhere."""
    doc = copy.deepcopy(document if document is not None else load_template())
    doc.setdefault("Globals", {}).setdefault("Function", {})["Architectures"] = [architecture]
    for resource in doc["Resources"].values():
        props = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and "Architectures" in props:
            props["Architectures"] = [architecture]
        if resource.get("Type") == "AWS::Serverless::LayerVersion":
            props["CompatibleArchitectures"] = [architecture]
            resource.setdefault("Metadata", {})["BuildArchitecture"] = architecture
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = str((REPO_ROOT / props[key]).resolve())
    return doc


def sam_build(architecture: str = SHIPPED_ARCHITECTURE, *, folder: Path | None = None,
              timeout: float = 900) -> BuiltStack:
    """Build every function and layer of template.yaml for `architecture` with SAM CLI; raise
    `BuildFailed` (or `Python312Missing`) with what went wrong."""
    if not SAM.exists():
        raise BuildFailed(f"SAM CLI is not installed at {SAM}: run `make venv` (it installs aws-sam-cli into "
                          ".venv-tools)")
    python312 = find_python312()
    work = folder or BUILD_ROOT / f"sam-{architecture}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "template.yaml").write_text(yaml.safe_dump(template_for(architecture), sort_keys=False), encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key not in _NOT_INHERITED}
    env.update({"PATH": f"{python312.parent}{os.pathsep}{env.get('PATH', '')}", "SAM_CLI_TELEMETRY": "0",
                LAYER_ARCHITECTURE_ENV: architecture, "LAYER_PYTHON": str(python312)})
    # cwd is the copy's folder: SAM finds no samconfig.toml there, so no cache and no other settings apply
    done = subprocess.run([str(SAM), "build", "--template-file", "template.yaml", "--build-dir", "artifact",
                           "--parallel"], cwd=work, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)
    if done.returncode != 0:
        raise BuildFailed(f"sam build ({architecture}) failed:\n{(done.stdout + done.stderr)[-4000:]}")
    built = work / "artifact"
    return BuiltStack(architecture, built, load_template(built / "template.yaml"))
