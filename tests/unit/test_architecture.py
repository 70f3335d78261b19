"""Architecture rules, checked statically with `ast` over the checkout's package sources.

- Dependency direction: log <- master <- projections <- api; agent uses only the wire helpers.
- Pure modules (design A.8 rule 1, C.3) import no I/O, clock, randomness or threading module and
  call no `open`/`print`/`input`.
- Only log/raft.py imports pysyncobj; only agent/**/net.py imports pyroute2.

Each rule reports every offence as `path:line: message`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "meseta"
NOT_PACKAGE_SOURCE = frozenset({"tests", "benchmarks", "build", "dist", "scripts", "docs"})

# Subpackage -> the meseta modules it may import (a prefix allows its submodules too).
# The root package `meseta` itself (only a docstring and __version__) is allowed everywhere.
ALLOWED_IMPORTS: dict[str, tuple[str, ...]] = {
    # Generated wire types (Mesos v1 and our agent link): a leaf every layer may use.
    "proto": ("meseta.proto",),
    "log": ("meseta.log",),
    "master": ("meseta.master", "meseta.log", "meseta.proto"),
    "projections": ("meseta.projections", "meseta.master", "meseta.log", "meseta.proto"),
    "api": ("meseta.api", "meseta.projections", "meseta.master", "meseta.log", "meseta.proto"),
    "agent": (
        "meseta.agent",
        "meseta.proto",
        # Wire helpers shared with the master's HTTP edge (framing, JSON, media rules).
        "meseta.api.recordio",
        "meseta.api.mesos_json",
        "meseta.api.resource_json",
        "meseta.api.status_json",
        "meseta.api.http",
        "meseta.api.streams",
        "meseta.api.chunked",
        "meseta.api.flags",
        "meseta.api.files",
        "meseta.api.verbosity",
        "meseta.api.host",
        "meseta.api.compression",  # libprocess's gzip, on the agent's answers too
        "meseta.log.v1",
        # The pure Mesos resource value type (text syntax, exact arithmetic): one parser for
        # `--resources` on both sides. The agent reaches the master itself only over HTTP.
        "meseta.master.resources",
        # Identifier formats both sides print alike (an agent's pid).
        "meseta.master.ids",
        # Durations as Mesos writes them (flags, the executor's environment).
        "meseta.master.durations",
    ),
}

# Paths relative to the repository root; `*` stays within a folder, `**` crosses folders.
PURE_MODULES = (
    "log/codec.py",
    "log/sequencer.py",
    "master/**/state.py",
    "master/resources.py",
    "master/exact.py",
    "master/wire.py",
    "master/ids.py",
    "master/durations.py",
    "master/quota.py",
    "master/operations.py",
    "master/maintenance.py",
    "master/ledger.py",
    "master/statuses.py",
    "master/validation.py",
    "master/reconciliation.py",
    "master/digest.py",
    "master/**/fold.py",
    "master/**/events.py",
    "master/**/invariants.py",
    "master/**/decide.py",
    "master/appliers/**",
    "master/allocator/**",
    "agent/checks.py",
    "agent/core.py",
    "agent/status_updates.py",
    # The read models: pure folds of domain events and their encodings.
    "projections/base.py",
    "projections/cluster.py",
    "projections/records.py",
    "projections/assembly.py",
    "projections/metrics.py",
    "api/recordio.py",
    "api/mesos_json.py",
    "api/resource_json.py",
)
IMPURE_TOP_LEVEL_IMPORTS = frozenset(
    {
        "asyncio", "time", "datetime", "random", "uuid", "os", "sys", "threading",
        "multiprocessing", "subprocess", "socket", "select", "signal", "concurrent",
        "logging", "io", "pathlib", "shutil", "tempfile", "lmdb", "pysyncobj", "aiohttp",
        "starlette", "uvicorn", "sse_starlette", "pyroute2",
    }
)  # fmt: skip
IMPURE_BUILTIN_CALLS = frozenset({"open", "print", "input"})

# Third-party modules confined to one kind of file.
EXCLUSIVE_IMPORTS: dict[str, tuple[str, ...]] = {
    "pysyncobj": ("log/raft.py",),
    "pyroute2": ("agent/**/net.py",),
}


def glob_regex(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*/|\*\*|\*)", pattern)
    wildcard = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*"}
    return re.compile("".join(wildcard.get(part, re.escape(part)) for part in parts))


def matches_any(path: str, patterns: tuple[str, ...]) -> bool:
    return any(glob_regex(pattern).fullmatch(path) for pattern in patterns)


@dataclass(frozen=True)
class SourceModule:
    path: str  # relative to the repository root, "/"-separated
    name: str  # dotted module name, e.g. "meseta.master.fold"
    tree: ast.Module

    @property
    def is_package(self) -> bool:
        return PurePosixPath(self.path).name == "__init__.py"

    @property
    def subpackage(self) -> str | None:
        """First folder under the root (`log`, `master`, ...); None for root modules."""
        parts = PurePosixPath(self.path).parts
        return parts[0] if len(parts) > 1 else None


@dataclass(frozen=True)
class ImportRef:
    line: int
    module: str  # absolute dotted name


def module_name(path: str) -> str:
    parts = list(PurePosixPath(path).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def parse_module(path: str, source: str) -> SourceModule:
    return SourceModule(path, module_name(path), ast.parse(source, filename=path))


def package_source_paths() -> Iterator[str]:
    """Root modules plus every .py under a top-level package folder; generated *_pb2.py skipped."""
    for file in sorted(REPO_ROOT.glob("*.py")):
        yield file.name
    for folder in sorted(REPO_ROOT.iterdir()):
        if (
            folder.is_dir()
            and (folder / "__init__.py").is_file()
            and folder.name not in NOT_PACKAGE_SOURCE
            and not folder.name.startswith(".")
        ):
            for file in sorted(folder.rglob("*.py")):
                yield file.relative_to(REPO_ROOT).as_posix()


def load_package() -> tuple[list[SourceModule], frozenset[str]]:
    paths = list(package_source_paths())
    known = frozenset(module_name(path) for path in paths)
    modules = [
        parse_module(path, (REPO_ROOT / path).read_text(encoding="utf-8"))
        for path in paths
        if not path.endswith("_pb2.py")
    ]
    return modules, known


def resolve_relative(module: SourceModule, level: int, target: str | None) -> str:
    base = module.name.split(".")
    if not module.is_package:
        base.pop()
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def imports_of(module: SourceModule, known_modules: frozenset[str]) -> Iterator[ImportRef]:
    """Absolute names imported by `module`.

    `from X import y` counts as importing `X.y` when that is a module of the package, else `X`.
    """
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield ImportRef(node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = resolve_relative(module, node.level, node.module)
            else:
                base = node.module or ""
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield ImportRef(node.lineno, candidate if candidate in known_modules else base)


def is_within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer_violations(module: SourceModule, known_modules: frozenset[str]) -> list[str]:
    own = [ref for ref in imports_of(module, known_modules) if is_within(ref.module, PACKAGE)]
    if module.subpackage is None:
        if not module.is_package:
            return []  # root modules such as a CLI may wire everything together
        allowed: tuple[str, ...] = ()
        rule = "the root __init__ must not import subpackages (design C.1 item 4)"
    elif module.subpackage in ALLOWED_IMPORTS:
        allowed = ALLOWED_IMPORTS[module.subpackage]
        rule = f"{module.subpackage}/ may import only {', '.join(allowed)}"
    else:
        return [f"{module.path}:1: subpackage {module.subpackage!r} is missing in ALLOWED_IMPORTS"]
    return [
        f"{module.path}:{ref.line}: imports {ref.module}; {rule}"
        for ref in own
        if ref.module != PACKAGE and not any(is_within(ref.module, ok) for ok in allowed)
    ]


def purity_violations(module: SourceModule, known_modules: frozenset[str]) -> list[str]:
    if not matches_any(module.path, PURE_MODULES):
        return []
    found = [
        f"{module.path}:{ref.line}: pure module imports {ref.module}"
        for ref in imports_of(module, known_modules)
        if ref.module.split(".")[0] in IMPURE_TOP_LEVEL_IMPORTS
    ]
    found += [
        f"{module.path}:{node.lineno}: pure module calls {node.func.id}()"
        for node in ast.walk(module.tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in IMPURE_BUILTIN_CALLS
    ]
    return found


def exclusive_import_violations(module: SourceModule, known_modules: frozenset[str]) -> list[str]:
    return [
        f"{module.path}:{ref.line}: imports {ref.module}; only {', '.join(owners)} may"
        for ref in imports_of(module, known_modules)
        for library, owners in EXCLUSIVE_IMPORTS.items()
        if is_within(ref.module, library) and not matches_any(module.path, owners)
    ]


Checker = Callable[[SourceModule, frozenset[str]], list[str]]


def run_checker(checker: Checker) -> list[str]:
    modules, known = load_package()
    return sorted(violation for module in modules for violation in checker(module, known))


def report(violations: list[str]) -> str:
    return f"{len(violations)} violation(s):\n" + "\n".join(violations)


def test_package_sources_are_found() -> None:
    modules, _ = load_package()
    paths = {module.path for module in modules}
    assert {"__init__.py", "log/__init__.py"} <= paths, sorted(paths)
    assert not any(path.startswith(("tests/", "benchmarks/", "build/")) for path in paths)


def test_dependency_direction() -> None:
    violations = run_checker(layer_violations)
    assert not violations, report(violations)


def test_pure_modules_do_no_io() -> None:
    violations = run_checker(purity_violations)
    assert not violations, report(violations)


def compiled_modules() -> list[str]:
    """setup.py's COMPILED: the modules a wheel install compiles with mypyc."""
    tree = ast.parse((REPO_ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "COMPILED" for target in node.targets
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, list)
            return [str(path) for path in value]
    raise AssertionError("setup.py has no COMPILED list")


def test_only_pure_modules_are_compiled() -> None:
    """Compiled code binds calls early and checks types at run time: only the pure core,
    which tests never monkeypatch and mypy checks strictly, may be compiled."""
    compiled = compiled_modules()
    assert "master/fold.py" in compiled
    missing = [path for path in compiled if not (REPO_ROOT / path).is_file()]
    impure = [path for path in compiled if not matches_any(path, PURE_MODULES)]
    assert not missing and not impure, f"missing: {missing}, not pure: {impure}"


def test_pysyncobj_and_pyroute2_stay_in_their_modules() -> None:
    violations = run_checker(exclusive_import_violations)
    assert not violations, report(violations)


@pytest.mark.parametrize(
    ("path", "source", "expected"),
    [
        ("log/store.py", "from meseta.master import fold\n", "store.py:1: imports meseta.master"),
        ("log/store.py", "from ..master import fold\n", "imports meseta.master"),
        ("master/fold.py", "import meseta.api.app\n", "imports meseta.api.app"),
        ("agent/client.py", "from meseta.api import app\n", "imports meseta.api.app"),
        ("agent/client.py", "from meseta.api import something\n", "imports meseta.api;"),
        ("__init__.py", "from . import log\n", "root __init__ must not import"),
        ("master/appliers/tasks.py", "x = 1\nimport time\n", "tasks.py:2: pure module imports"),
        ("master/fold.py", "from os.path import join\n", "pure module imports os.path"),
        ("api/recordio.py", "print('hi')\n", "api/recordio.py:1: pure module calls print()"),
        ("master/leader.py", "import pysyncobj\n", "imports pysyncobj; only log/raft.py may"),
        ("agent/runtime.py", "from pyroute2 import IPRoute\n", "imports pyroute2; only"),
    ],
)
def test_checkers_report_violations(path: str, source: str, expected: str) -> None:
    known = frozenset({"meseta.log", "meseta.master.fold", "meseta.api.app", "meseta.log.codec"})
    module = parse_module(path, source)
    checkers: list[Checker] = [layer_violations, purity_violations, exclusive_import_violations]
    violations = [violation for checker in checkers for violation in checker(module, known)]
    assert any(expected in violation for violation in violations), violations


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("master/fold.py", "from meseta.log import codec\nfrom . import state\n"),
        ("agent/core.py", "from meseta.api import recordio\nfrom meseta.log.v1 import entries_pb2"),
        ("api/app.py", "import asyncio\nfrom meseta.projections import state_view\n"),
        ("log/raft.py", "import pysyncobj\nprint('ok')\n"),
        ("agent/net.py", "from pyroute2 import IPRoute\n"),
    ],
)
def test_checkers_accept_allowed_imports(path: str, source: str) -> None:
    known = frozenset({"meseta.log.codec", "meseta.api.recordio", "meseta.log.v1.entries_pb2"})
    module = parse_module(path, source)
    checkers: list[Checker] = [layer_violations, purity_violations, exclusive_import_violations]
    assert [violation for checker in checkers for violation in checker(module, known)] == []
