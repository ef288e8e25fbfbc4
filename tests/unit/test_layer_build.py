"""shared/build_layer.py: what the layer leaves out (the runtime's boto3, botocore, s3transfer and
what only they need) and what it must keep, on made-up installs; and the wiring that makes
`sam build` use it for the architecture the template ships."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import build_layer
from infra.build.python312 import HOW_TO_GET_IT, Python312Missing, find_python312
from infra.build.sam import SHIPPED_ARCHITECTURE, template_for
from infra.local.template import REPO_ROOT, load_template


def install(folder: Path, name: str, version: str = "1.0", requires: tuple[str, ...] = ()) -> None:
    """A made-up installed distribution: a package folder and a dist-info with METADATA and RECORD."""
    package = folder / name.replace("-", "_")
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    info = folder / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("\n".join([f"Name: {name}", f"Version: {version}",
                                              *(f"Requires-Dist: {r}" for r in requires)]) + "\n")
    files = [f"{package.name}/__init__.py", f"{info.name}/METADATA", f"{info.name}/RECORD"]
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in files))


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    install(tmp_path, "pynamodb", requires=("botocore>=1.12",))
    install(tmp_path, "aws-lambda-powertools", requires=("jmespath<2", "urllib3>=2; extra == 'jwt'",
                                                         "aws-xray-sdk>=2.8; extra == 'tracer'"))
    install(tmp_path, "aws-xray-sdk", requires=("wrapt", "botocore>=1.11"))
    install(tmp_path, "wrapt")
    install(tmp_path, "botocore", requires=("jmespath<2", "python-dateutil<3", "urllib3<3"))
    install(tmp_path, "jmespath")
    install(tmp_path, "python-dateutil", requires=("six>=1.5",))
    install(tmp_path, "six")
    install(tmp_path, "urllib3")
    install(tmp_path, "boto3", requires=("botocore", "s3transfer"))
    install(tmp_path, "s3transfer", requires=("botocore",))
    return tmp_path


def test_the_runtimes_packages_and_what_only_they_need_are_left_out(layer: Path) -> None:
    roots = build_layer.requirements(["pynamodb>=6", "aws-lambda-powertools[tracer]>=3.20  # comment"])
    dists = build_layer.installed(layer)
    removed = build_layer.to_remove(dists, roots)
    assert removed == {"boto3", "botocore", "s3transfer", "python-dateutil", "six", "urllib3"}
    # jmespath stays (Powertools needs it), and so does what the tracer extra brings
    assert set(dists) - removed == {"pynamodb", "aws-lambda-powertools", "aws-xray-sdk", "wrapt", "jmespath"}


def test_without_the_extra_its_requirements_are_not_kept(layer: Path) -> None:
    removed = build_layer.to_remove(build_layer.installed(layer), build_layer.requirements(["aws-lambda-powertools"]))
    assert {"aws-xray-sdk", "wrapt", "pynamodb"} <= removed
    assert "jmespath" not in removed


def test_removing_a_distribution_deletes_its_files_and_the_folders_left_empty(layer: Path) -> None:
    dists = build_layer.installed(layer)
    build_layer.remove(layer, dists["botocore"])
    assert not (layer / "botocore").exists()
    assert not list(layer.glob("botocore-*"))
    assert (layer / "pynamodb" / "__init__.py").is_file()


def test_bytecode_replaces_third_party_sources_and_sits_beside_lorapins(tmp_path: Path) -> None:
    (tmp_path / "lorapin").mkdir()
    (tmp_path / "lorapin" / "__init__.py").write_text("WHO = 'lorapin'\n")
    (tmp_path / "wrapt").mkdir()
    (tmp_path / "wrapt" / "__init__.py").write_text("from wrapt.core import NAME\n")
    (tmp_path / "wrapt" / "core.py").write_text("NAME = 'wrapt'\n")
    (tmp_path / "wrapt" / "py2_example.py").write_text("print 'only Python 2'\n")

    invalid = build_layer.compile_bytecode(tmp_path)

    assert invalid == ["wrapt/py2_example.py"]  # left as it was: nothing imports it
    assert sorted(p.name for p in (tmp_path / "wrapt").iterdir()) == ["__init__.pyc", "core.pyc", "py2_example.py"]
    assert (tmp_path / "lorapin" / "__init__.py").is_file()
    # imported as Lambda would (nothing may be written), nothing is compiled from source
    probe = ("import importlib.machinery as m, sys\n"
             f"sys.path.insert(0, {str(tmp_path)!r})\n"
             "compiled = []\n"
             "original = m.SourceFileLoader.source_to_code\n"
             "m.SourceFileLoader.source_to_code = lambda self, data, path, **k: (compiled.append(path),"
             " original(self, data, path, **k))[1]\n"
             "import lorapin, wrapt\n"
             "print(lorapin.WHO, wrapt.NAME, compiled, lorapin.__file__.endswith('.py'))\n")
    done = subprocess.run([sys.executable, "-I", "-B", "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["lorapin", "wrapt", "[]", "True"]

def test_third_party_bytecode_drops_docstrings_but_keeps_asserts_and_line_numbers(tmp_path: Path) -> None:
    (tmp_path / "lorapin").mkdir()
    (tmp_path / "lorapin" / "__init__.py").write_text('"""lorapin\'s own."""\n')
    (tmp_path / "wrapt").mkdir()
    (tmp_path / "wrapt" / "__init__.py").write_text('"""Only a docstring."""\n')
    (tmp_path / "wrapt" / "core.py").write_text(
        '"""The module."""\nfrom __future__ import annotations\n\n\n'
        'class Empty:\n    """Nothing else."""\n\n\n'
        'def check(value: int) -> int:\n    """Must be positive."""\n    assert value > 0, "not positive"\n'
        '    return value\n')

    build_layer.compile_bytecode(tmp_path)

    probe = (f"import sys, traceback\nsys.path.insert(0, {str(tmp_path)!r})\n"
             "import lorapin, wrapt, wrapt.core as core\n"
             "docs = [lorapin.__doc__, wrapt.__doc__, core.__doc__, core.Empty.__doc__, core.check.__doc__]\n"
             "try:\n    core.check(-1)\nexcept AssertionError as exc:\n"
             "    line = traceback.extract_tb(exc.__traceback__)[-1].lineno\n"
             "print(repr(docs), core.check(2), line)\n")
    done = subprocess.run([sys.executable, "-I", "-B", "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == repr(["lorapin's own.", None, None, None, None]) + " 2 11"


def made_up_package(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


def test_pruning_removes_unused_packages_and_files_and_keeps_the_rest(tmp_path: Path) -> None:
    layer = made_up_package(tmp_path, {
        "tools/__init__.py": "from tools import core\n",
        "tools/core.py": "X = 1\n",
        "tools/batch/__init__.py": "from ..parser import models\n",  # unused, and so is what it imports
        "tools/parser/models.py": "Y = 2\n",
        "tools/ui/page.py": "Z = 3\n",
        "tools/ui/bundle.min.js": "/* 1.5 MB */\n",
        "typed-stubs/__init__.pyi": "X: int\n",
    })
    build_layer.prune(layer, packages=("tools.batch", "tools.parser"), files=("tools/ui/*.js", "**/*.pyi"))
    kept = sorted(path.relative_to(layer).as_posix() for path in layer.rglob("*") if path.is_file())
    assert kept == ["tools/__init__.py", "tools/core.py", "tools/ui/page.py"]
    assert not (layer / "typed-stubs").exists()  # a folder emptied by the pruning goes too


@pytest.mark.parametrize("statement", [
    "from tools.batch import run\n",
    "import tools.batch.types\n",
    "from tools import batch\n",
    "from .batch import run\n",
    "def later():\n    from tools.batch import run\n",  # imported on first use, still imported
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from tools.batch import Run\n",
])
def test_pruning_refuses_a_package_that_a_kept_module_imports(tmp_path: Path, statement: str) -> None:
    layer = made_up_package(tmp_path, {"tools/__init__.py": "", "tools/core.py": statement,
                                       "tools/batch/__init__.py": "run = print\n"})
    with pytest.raises(build_layer.PrunedModuleImported, match=re.escape("tools.core imports tools.batch")):
        build_layer.prune(layer, packages=("tools.batch",), files=())
    assert (layer / "tools" / "batch" / "__init__.py").is_file()  # nothing removed


def test_of_a_package_trimmed_to_its_imports_only_what_is_imported_is_kept(tmp_path: Path) -> None:
    layer = made_up_package(tmp_path, {
        "replicate/schema.py": "from packaging import version\n",
        "packaging/__init__.py": "",
        "packaging/py.typed": "",
        "packaging/version.py": "from ._structures import Infinity\n",
        "packaging/_structures.py": "Infinity = float('inf')\n",
        "packaging/tags.py": "from .version import Infinity\n",  # imports a kept module; nothing imports it
        "packaging/licenses/__init__.py": "from ._spdx import LICENSES\n",
        "packaging/licenses/_spdx.py": "LICENSES = {}\n",
    })
    build_layer.keep_imported_modules(layer, packages=("packaging",))
    kept = sorted(path.relative_to(layer).as_posix() for path in layer.rglob("*") if path.is_file())
    assert kept == ["packaging/__init__.py", "packaging/_structures.py", "packaging/py.typed", "packaging/version.py",
                    "replicate/schema.py"]


def test_a_package_that_imports_modules_by_name_is_not_trimmed(tmp_path: Path) -> None:
    layer = made_up_package(tmp_path, {
        "replicate/schema.py": "from packaging import version\n",
        "packaging/__init__.py": "import importlib\n",
        "packaging/version.py": "",
        "packaging/_plugins.py": "",
        "packaging/tags.py": "def distro():\n    return __import__('packaging._plugins')\n",  # a name to follow
        "packaging/plugins.py": "def load(name):\n    return importlib.import_module(f'packaging.{name}')\n",
    })
    with pytest.raises(build_layer.PrunedModuleImported,
                       match=re.escape("packaging.plugins imports modules by computed names")):
        build_layer.keep_imported_modules(layer, packages=("packaging",))
    assert (layer / "packaging" / "plugins.py").is_file()


def test_a_module_imported_by_a_written_out_name_is_kept(tmp_path: Path) -> None:
    layer = made_up_package(tmp_path, {
        "replicate/schema.py": "from packaging import version\n",
        "packaging/__init__.py": "",
        "packaging/version.py": "def distro():\n    return importlib.import_module('packaging._plugins')\n",
        "packaging/_plugins.py": "",
        "packaging/tags.py": "",
    })
    build_layer.keep_imported_modules(layer, packages=("packaging",))
    assert sorted(path.name for path in (layer / "packaging").iterdir()) == ["__init__.py", "_plugins.py", "version.py"]


def test_an_optional_dependency_is_left_out_when_only_the_package_it_serves_imports_it(layer: Path) -> None:
    install(layer, "anyio")
    install(layer, "httpcore")
    made_up_package(layer, {"httpcore/_sync.py": "try:\n    import anyio\nexcept ImportError:\n    anyio = None\n"})
    build_layer.leave_out_optional(layer, {"anyio": "httpcore"})
    assert not (layer / "anyio").exists()
    assert not list(layer.glob("anyio-*.dist-info"))
    assert (layer / "httpcore" / "_sync.py").is_file()


def test_an_optional_dependency_that_another_package_imports_is_kept(layer: Path) -> None:
    install(layer, "anyio")
    install(layer, "httpcore")
    made_up_package(layer, {"httpx/_transports.py": "import anyio\n"})
    with pytest.raises(build_layer.PrunedModuleImported, match=re.escape("httpx._transports imports anyio")):
        build_layer.leave_out_optional(layer, {"anyio": "httpcore"})
    assert (layer / "anyio" / "__init__.py").is_file()


def test_lorapin_and_the_functions_never_call_replicate_asynchronously() -> None:
    """anyio, left out of the layer, is what httpx's async clients run on (`leave_out_optional`)."""
    sources = [*(REPO_ROOT / "shared" / "lorapin").rglob("*.py"), *(REPO_ROOT / "functions").rglob("*.py")]
    asynchronous = [f"{source.relative_to(REPO_ROOT)}:{node.lineno}" for source in sources
                    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8")))
                    if isinstance(node, (ast.AsyncFunctionDef, ast.Await, ast.AsyncWith, ast.AsyncFor))
                    or (isinstance(node, ast.Attribute) and node.attr.startswith("async_"))]
    assert asynchronous == []


def test_powertools_packages_the_layer_leaves_out_are_ones_lorapin_never_imports() -> None:
    lorapin = REPO_ROOT / "shared"
    imported = {target for source in (lorapin / "lorapin").rglob("*.py")
                for target in build_layer.imports_of(lorapin, source)}
    imported |= {target for source in (REPO_ROOT / "functions").rglob("*.py")
                 for target in build_layer.imports_of(source.parent, source)}
    assert "aws_lambda_powertools.utilities.parameters" in imported  # the scan sees what lorapin uses
    assert {module for module in imported if build_layer.within(module, build_layer.UNUSED_PACKAGES)} == set()


def test_the_layer_leaves_out_exactly_what_the_runtime_provides() -> None:
    assert {"boto3", "botocore", "s3transfer"} == build_layer.RUNTIME_PROVIDED
    listed = build_layer.requirements((REPO_ROOT / "shared" / "requirements.txt").read_text().splitlines())
    assert not set(listed) & build_layer.RUNTIME_PROVIDED


def test_sam_builds_the_layer_with_the_makefile_for_the_architecture_the_template_ships() -> None:
    template = load_template()
    layer = template["Resources"]["SharedLayer"]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert template["Globals"]["Function"]["Architectures"] == [SHIPPED_ARCHITECTURE]
    assert layer["Metadata"]["BuildArchitecture"] == SHIPPED_ARCHITECTURE
    makefile = (REPO_ROOT / "shared" / "Makefile").read_text()
    assert re.search(rf"^LORAPIN_LAYER_ARCHITECTURE \?= {SHIPPED_ARCHITECTURE}$", makefile, re.M)
    assert re.search(r"^build-SharedLayer:\n\t.*build_layer\.py", makefile, re.M)


def test_sam_builds_the_photo_inspector_with_its_makefile_for_the_shipped_architecture() -> None:
    """SAM's python builder ships Pillow as sources, compiled at every cold start; the Makefile
    ships bytecode (tests/artifact checks the build) and must default to the template's architecture."""
    inspector = load_template()["Resources"]["PhotoInspectorFunction"]
    assert inspector["Metadata"]["BuildMethod"] == "makefile"
    makefile = (REPO_ROOT / inspector["Properties"]["CodeUri"] / "Makefile").read_text()
    assert re.search(rf"^LORAPIN_LAYER_ARCHITECTURE \?= {SHIPPED_ARCHITECTURE}$", makefile, re.M)
    assert re.search(r"^build-PhotoInspectorFunction:\n(\t.*\n)*\t.*compileall", makefile, re.M)


def test_the_copy_built_for_this_machine_differs_only_in_architecture_and_paths() -> None:
    shipped, retargeted = load_template(), template_for("x86_64")
    assert retargeted["Globals"]["Function"]["Architectures"] == ["x86_64"]
    layer = retargeted["Resources"]["SharedLayer"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["x86_64"]
    assert layer["Metadata"] == {**shipped["Resources"]["SharedLayer"]["Metadata"], "BuildArchitecture": "x86_64"}
    assert layer["Properties"]["ContentUri"] == str(REPO_ROOT / "shared")
    for name, resource in shipped["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            copied = retargeted["Resources"][name]["Properties"]
            assert copied["CodeUri"] == str(REPO_ROOT / resource["Properties"]["CodeUri"]).rstrip("/")
            assert {k: v for k, v in copied.items() if k != "CodeUri"} == \
                {k: v for k, v in resource["Properties"].items() if k != "CodeUri"}


def test_without_python312_the_message_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PYTHON312", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no python3.12 here
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))  # nor any installed by pyenv
    with pytest.raises(Python312Missing) as raised:
        find_python312()
    assert str(raised.value) == HOW_TO_GET_IT
    assert "pyenv install 3.12" in HOW_TO_GET_IT
