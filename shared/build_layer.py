"""Build the shared Lambda layer: `requirements.txt` and their dependencies, plus `lorapin/`, into
OUT (SAM's `$(ARTIFACTS_DIR)/python`), without what the Lambda runtime already provides.

`sam build` runs this through `shared/Makefile` (template.yaml: `Metadata: BuildMethod: makefile`).
SAM's own python builder installs every dependency, and pynamodb and aws-xray-sdk require botocore,
so the layer carried 30 MB of botocore that sat ahead of the runtime's boto3 on the import path.

How: pip resolves and installs the requirements for the target platform as usual (so versions are
the ones pip would pick, and nothing is left out by hand); then the runtime's packages
(`RUNTIME_PROVIDED`) are removed, with whatever only they needed (e.g. urllib3, python-dateutil),
file by file from each distribution's RECORD. A distribution is kept when a requirement reaches it
without passing through a runtime package (an extra's requirements only when the extra is asked
for; other markers are not evaluated, so in doubt a distribution is kept).

Then what nothing in the layer loads is left out (`prune`): Powertools utilities lorapin does not use,
the Swagger UI Powertools bundles for `enable_swagger()` (lorapin serves its OpenAPI document, not
that page), C sources and type stubs; the build fails if anything kept imports a module left out
(`imports_of`), so an upgrade that starts using one cannot ship a layer that breaks at run time.
Imports spelled as strings (`importlib.import_module`) are not seen; in Powertools today those are
the Tracer's (of the X-Ray SDK, kept) and the pruned packages' own. Two more cuts, checked the same
way: anyio, which only httpcore imports and only for async clients (`OPTIONAL_LEFT_OUT`; lorapin's
Replicate calls are synchronous), and of `packaging` only the modules something imports
(`IMPORTED_MODULES_ONLY`; refused for a package that imports by name).

Then bytecode (`compile_bytecode`). Lambda's /opt is read-only, so Python cannot cache what it
compiles: a layer shipped as sources alone (as SAM's python builder ships one) is compiled again at
every cold start, ~340 ms of the training API's 564 ms init. Third-party modules ship as bytecode
only, in place of their sources (as Datadog's layer does; bytecode beside the sources would add
3.4 MB to the zipped layer), and without docstrings (asserts kept); lorapin keeps its sources and
docstrings beside its bytecode, so its tracebacks show their lines. Bytecode is hash-based and
unchecked (PEP 552): a zip keeps no modification times to check. It must be made by the Python the
runtime runs, so this script refuses any other. Standard library only:
    python3.12 build_layer.py --out DIR [--architecture arm64|x86_64]
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import marshal
import py_compile
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from importlib.metadata import Distribution, distributions
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer"})  # Lambda's python3.12 runtime has them
PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
PYTHON_VERSION = "3.12"
UNUSED_PACKAGES = tuple(f"aws_lambda_powertools.utilities.{name}" for name in (
    "auth_alpha", "batch", "circuit_breaker", "data_masking", "feature_flags", "idempotency", "kafka", "metadata",
    "parser", "streaming"))
UNUSED_FILES = ("aws_lambda_powertools/event_handler/openapi/swagger_ui/*.js",
                "aws_lambda_powertools/event_handler/openapi/swagger_ui/*.css",
                "wrapt-stubs/*", "**/*.c", "**/*.pyi")
# Of `packaging`, replicate uses `packaging.version` alone (in replicate.schema); the rest is 0.17 MB zipped.
IMPORTED_MODULES_ONLY = ("packaging",)
# anyio is what httpx's async clients run on; httpcore, the only package that imports it, does so
# optionally (`httpcore[asyncio]`), and lorapin calls Replicate synchronously (0.31 MB zipped).
OPTIONAL_LEFT_OUT = {"anyio": "httpcore"}
_REQUIREMENT = re.compile(r"\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[(?P<extras>[^\]]*)\])?"
                          r"[^;]*(?:;(?P<marker>.*))?")
_EXTRA = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(lines: Iterable[str], extras: frozenset[str] = frozenset()) -> dict[str, frozenset[str]]:
    """The distributions a requirements file or a `Requires-Dist` list asks for (each with the extras
    asked of it), given the `extras` asked of the one that lists them. A requirement that applies only
    to an extra counts when that extra was asked for; other markers are not evaluated (in doubt, keep)."""
    found: dict[str, frozenset[str]] = {}
    for line in lines:
        parsed = _REQUIREMENT.fullmatch(line.split("#", 1)[0].strip())
        if not parsed or not parsed["name"]:
            continue
        only_for = {normalise(extra) for extra in _EXTRA.findall(parsed["marker"] or "")}
        if only_for and not only_for & extras:
            continue
        name = normalise(parsed["name"])
        asked = frozenset(normalise(e) for e in (parsed["extras"] or "").split(",") if e.strip())
        found[name] = found.get(name, frozenset()) | asked
    return found


def installed(folder: Path) -> dict[str, Distribution]:
    return {normalise(dist.metadata["Name"]): dist for dist in distributions(path=[str(folder)])}


def to_remove(dists: dict[str, Distribution], roots: dict[str, frozenset[str]]) -> set[str]:
    """What the runtime provides, and what nothing but the runtime's packages needs."""
    kept: dict[str, frozenset[str]] = {}
    pending = [(name, extras) for name, extras in roots.items() if name not in RUNTIME_PROVIDED]
    while pending:
        name, extras = pending.pop()
        if name not in dists or (name in kept and extras <= kept[name]):
            continue
        kept[name] = kept.get(name, frozenset()) | extras
        needs = requirements(dists[name].requires or [], kept[name])
        pending += [(need, asked) for need, asked in needs.items() if need not in RUNTIME_PROVIDED]
    return set(dists) - set(kept)


def remove(folder: Path, dist: Distribution) -> None:
    """Delete a distribution's files (its RECORD lists them), then the folders left empty."""
    touched: set[Path] = set()
    for file in dist.files or []:
        path = (folder / file).resolve()
        if folder.resolve() in path.parents and path.is_file():
            path.unlink()
            touched.add(path.parent)
    for directory in sorted(touched, key=lambda p: len(p.parts), reverse=True):
        while directory != folder.resolve() and directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
            directory = directory.parent


class PrunedModuleImported(RuntimeError):
    """A module kept in the layer imports one that `prune` left out."""


def module_name(out: Path, source: Path) -> str:
    parts = list(source.relative_to(out).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(out: Path, source: Path) -> set[str]:
    """Every module `source` may import, wherever the statement is (a function's body, a
    `TYPE_CHECKING` block): for `from a import b`, both `a` and `a.b`. Empty for a file that is not
    valid Python for this interpreter (`compile_bytecode` leaves those as they are)."""
    try:
        tree = ast.parse(source.read_bytes(), filename=str(source))
    except SyntaxError:
        return set()
    name = module_name(out, source)
    package = name if source.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == package or module.startswith(f"{package}.") for package in packages)


def prune(out: Path, packages: tuple[str, ...] = UNUSED_PACKAGES, files: tuple[str, ...] = UNUSED_FILES) -> None:
    """Remove `packages` and `files` (globs) from `out`; refuse, removing nothing, when a module
    that stays imports one of `packages`."""
    sources = sorted(out.rglob("*.py"))
    importers = {f"{module_name(out, source)} imports {target}"
                 for source in sources if not within(module_name(out, source), packages)
                 for target in imports_of(out, source) if within(target, packages)}
    if importers:
        raise PrunedModuleImported("left out of the layer but imported: " + "; ".join(sorted(importers)))
    for package in packages:
        shutil.rmtree(out.joinpath(*package.split(".")), ignore_errors=True)
    emptied: set[Path] = set()
    for pattern in files:
        for path in list(out.glob(pattern)):
            if path.is_file():
                path.unlink()
                emptied.add(path.parent)
    for directory in emptied:
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()  # a stubs-only package, say


def imported_by_name(source: Path) -> list[str | None]:
    """What `source` imports through `importlib.import_module` or `__import__`, which `imports_of`
    does not see: each module's name when it is written out, None when it is computed."""
    try:
        tree = ast.parse(source.read_bytes(), filename=str(source))
    except SyntaxError:
        return []
    return [node.args[0].value if node.args and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str) else None
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and (getattr(node.func, "attr", None) == "import_module"
                                               or getattr(node.func, "id", None) in ("__import__", "import_module"))]


def keep_imported_modules(out: Path, packages: tuple[str, ...] = IMPORTED_MODULES_ONLY) -> None:
    """Of each package in `packages`, keep only the modules that a module outside it imports, the
    modules those import (by name too, when the name is written out) and their parent packages;
    remove the others. Refuses, removing nothing, when a module of the package computes the name of
    a module it imports."""
    sources = {module_name(out, source): source for source in sorted(out.rglob("*.py"))}
    for package in packages:
        inside = {name for name in sources if within(name, (package,))}
        by_name = {name: imported_by_name(sources[name]) for name in inside}
        unreadable = sorted(name for name, targets in by_name.items() if None in targets)
        if unreadable:
            raise PrunedModuleImported(f"{', '.join(unreadable)} imports modules by computed names: "
                                       f"{package} cannot be trimmed")
        pending = [target for name, source in sources.items() if name not in inside
                   for target in imports_of(out, source) if within(target, (package,))]
        kept: set[str] = set()
        while pending:
            name = pending.pop()
            if name in kept or name not in inside:  # `from a import b` names `a.b`, a module or not
                continue
            kept.add(name)
            parts = name.split(".")
            pending += [".".join(parts[:end]) for end in range(1, len(parts))]
            pending += [*imports_of(out, sources[name]), *(target for target in by_name[name] if target)]
        for name in inside - kept:
            sources[name].unlink()
        for directory in sorted({sources[name].parent for name in inside - kept}, key=lambda p: len(p.parts),
                                reverse=True):
            if directory.is_dir() and not any(path.suffix == ".py" for path in directory.rglob("*")):
                shutil.rmtree(directory)  # a subpackage none of whose modules is kept, with its data files


def leave_out_optional(out: Path, optional: dict[str, str] = OPTIONAL_LEFT_OUT) -> None:
    """Remove each distribution in `optional` (its name → the one package allowed to import it,
    which treats it as optional); refuse, removing nothing, when any other module imports it."""
    dists = installed(out)
    importers = {f"{module_name(out, source)} imports {target}"
                 for source in sorted(out.rglob("*.py"))
                 for name, owner in optional.items()
                 if not within(module_name(out, source), (name.replace("-", "_"), owner))
                 for target in imports_of(out, source) if within(target, (name.replace("-", "_"),))}
    if importers:
        raise PrunedModuleImported("left out of the layer but imported: " + "; ".join(sorted(importers)))
    for name in optional:
        if normalise(name) in dists:
            remove(out, dists[normalise(name)])


def without_docstrings(tree: ast.Module) -> ast.Module:
    """`tree` with the docstrings of its module, classes and functions removed, as `python -OO`
    compiles it, but with its asserts kept (a library's own checks still run)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value,
                                                                                                    str):
                node.body[:1] = [] if len(node.body) > 1 else [ast.copy_location(ast.Pass(), first)]
    return tree


def third_party_bytecode(source: Path, shown_as: str) -> bytes:
    """A hash-based, unchecked .pyc (PEP 552) of `source` without its docstrings, its tracebacks
    naming `shown_as`. Raises SyntaxError for a file that is not valid Python for this interpreter."""
    data = source.read_bytes()
    code = compile(without_docstrings(ast.parse(data, filename=shown_as)), shown_as, "exec", dont_inherit=True)
    flags = 0b01  # hash-based, source not checked
    return importlib.util.MAGIC_NUMBER + flags.to_bytes(4, "little") + importlib.util.source_hash(data) + \
        marshal.dumps(code)


def compile_bytecode(out: Path, runtime_root: str = "/opt/python") -> list[str]:
    """Bytecode for every module in `out` (a layer's python/): lorapin's beside its sources, every
    other module's in place of its source and without docstrings (0.43 MB of the zipped layer, which
    nothing reads), its tracebacks naming `runtime_root` (where Lambda mounts a layer). Returns the
    files that are not valid Python for this interpreter (a package's Python 2 example, say), left as
    they are; lorapin must compile."""
    own = out / "lorapin"
    invalid: list[str] = []
    for source in sorted(out.rglob("*.py")):
        relative = source.relative_to(out).as_posix()
        if own in source.parents:
            py_compile.compile(str(source), cfile=importlib.util.cache_from_source(str(source)),
                               dfile=f"{runtime_root}/{relative}", doraise=True,
                               invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            continue
        try:
            bytecode = third_party_bytecode(source, f"{runtime_root}/{relative}")
        except SyntaxError:
            invalid.append(relative)
            continue
        Path(f"{source}c").write_bytes(bytecode)
        source.unlink()
    return invalid


def build(out: Path, architecture: str) -> list[str]:
    """Install, copy, prune; return the distributions left out, as `name version`."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--no-warn-script-location", "--root-user-action=ignore", "--no-compile", "--target", str(out),
                    "--platform", PLATFORMS[architecture], "--implementation", "cp", "--python-version",
                    PYTHON_VERSION, "--only-binary=:all:", "-r", str(HERE / "requirements.txt")], check=True)
    shutil.copytree(HERE / "lorapin", out / "lorapin", ignore=shutil.ignore_patterns("__pycache__"),
                    dirs_exist_ok=True)
    dists = installed(out)
    roots = requirements((HERE / "requirements.txt").read_text(encoding="utf-8").splitlines())
    left_out = [f"{name} {dists[name].version}" for name in sorted(to_remove(dists, roots))]
    for name in sorted(to_remove(dists, roots)):
        remove(out, dists[name])
    shutil.rmtree(out / "bin", ignore_errors=True)  # console scripts: nothing runs them in Lambda
    prune(out)
    leave_out_optional(out)
    keep_imported_modules(out)
    compile_bytecode(out)
    return left_out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the layer's python/ folder")
    parser.add_argument("--architecture", choices=sorted(PLATFORMS), default="arm64")
    args = parser.parse_args(argv)
    if f"{sys.version_info[0]}.{sys.version_info[1]}" != PYTHON_VERSION:  # bytecode is read by its maker only
        parser.error(f"run this with python{PYTHON_VERSION}, the runtime's Python (this is {sys.version.split()[0]})")
    left_out = build(args.out, args.architecture)
    print(f"layer ({args.architecture}): left out, the Lambda runtime provides them or only they need them: "
          f"{', '.join(left_out) or 'nothing'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
