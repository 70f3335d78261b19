"""Build hook: compile the pure core (the fold, its appliers, the allocator) with mypyc.

The fold runs for every entry on every replica and for every `meseta replay`; compiled,
it folds about 1.2-1.4x faster than the same code interpreted (benchmarks/fold_bench.py
prints which one it measured). Everything else stays interpreted. The same sources work
either way, and the compiled build must give the same state digests (tests/unit).

Interpreted instead of compiled:
  * editable installs (`pip install -e .`): a compiled module would shadow later edits
    of its source;
  * MESETA_PURE_PYTHON=1;
  * a machine that cannot compile (no C compiler or Python headers): the install goes on
    with a warning, unless MESETA_REQUIRE_COMPILED=1 (set by CI) makes that an error.

Package metadata lives in pyproject.toml; this file only adds the extension modules.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent

# Pure modules (no I/O, clock, threads: tests/unit/test_architecture.py) on the fold's and
# the allocator's hot paths. A module listed here must not be monkeypatched by tests (calls
# between compiled functions bind early) and must type-check under mypy strict.
COMPILED = [
    "master/fold.py",
    "master/decide.py",
    "master/wire.py",
    "master/state.py",
    "master/events.py",
    "master/exact.py",
    "master/resources.py",
    "master/ledger.py",
    "master/ids.py",
    "master/quota.py",
    "master/statuses.py",
    "master/validation.py",
    "master/reconciliation.py",
    "master/appliers/agents.py",
    "master/appliers/cluster.py",
    "master/appliers/draining.py",
    "master/appliers/reservations.py",
    "master/appliers/maintenance.py",
    "master/maintenance.py",
    "master/operations.py",
    "master/appliers/frameworks.py",
    "master/appliers/launches.py",
    "master/appliers/offers.py",
    "master/appliers/tasks.py",
    "master/allocator/config.py",
    "master/allocator/constraints.py",
    "master/allocator/cycle.py",
    "master/allocator/quota.py",
    "master/allocator/sorter.py",
]


def flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def warn(message: str) -> None:
    print(f"\nWARNING (meseta): {message}\n", file=sys.stderr, flush=True)


def source_tree() -> Path:
    """A folder holding `meseta` -> the checkout, so mypyc names modules `meseta.master...`
    (the checkout's root is the package itself, see [tool.setuptools] package-dir)."""
    holder = ROOT / "build" / "mypyc-src"
    link = holder / "meseta"
    holder.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() and link.resolve() != ROOT:
        link.unlink()  # left by a checkout that has since moved
    if not link.is_symlink():
        link.symlink_to(ROOT, target_is_directory=True)
    return holder


# The commands that build modules; pip also runs this file for metadata alone (egg_info,
# dist_info), and an editable install (editable_wheel) must stay interpreted.
BUILDS = frozenset({"bdist_wheel", "build", "build_ext", "install"})


def compiled_extensions() -> list[Any]:
    if not BUILDS.intersection(sys.argv[1:]) or flag("MESETA_PURE_PYTHON"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        if flag("MESETA_REQUIRE_COMPILED"):
            raise
        warn("mypyc is not installed: the fold runs interpreted (slower)")
        return []
    holder = source_tree()
    # Checking types is CI's job (mypy strict, with every dependency's stubs); the build
    # only compiles, with whatever stubs its isolated environment has.
    config = holder / "mypy.ini"
    config.write_text("[mypy]\nfollow_imports = silent\nignore_missing_imports = True\n")
    paths = [str((holder / "meseta" / module).relative_to(ROOT)) for module in COMPILED]
    options = ["--config-file", str(config.relative_to(ROOT))]
    return list(mypycify([*options, *paths], opt_level="3", group_name="meseta_core"))


class OptionalBuildExt(build_ext):
    """Compile the extensions, or go on interpreted when this machine cannot compile.

    All or nothing: each module's shim imports the shared library, so a partial build
    would leave modules that cannot be imported."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:
            if flag("MESETA_REQUIRE_COMPILED"):
                raise
            for ext in self.extensions:
                Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
            warn(f"compiling the fold failed ({error}); it runs interpreted (slower)")


class BuildPy(build_py):
    """Leave this file out of the package (the checkout's root is the package `meseta`),
    and leave out extensions an earlier build left that this one does not make."""

    def find_package_modules(self, package: str, package_dir: str) -> list[tuple[str, str, str]]:
        modules = super().find_package_modules(package, package_dir)
        return [m for m in modules if not (package == "meseta" and m[1] == "setup")]

    def run(self) -> None:
        super().run()
        # A module dropped from COMPILED, or a build with MESETA_PURE_PYTHON=1 after a
        # compiled one: its old extension would still ship and shadow its source.
        current = {ext.name for ext in self.distribution.ext_modules or []}
        built = Path(self.build_lib)
        for path in built.rglob("*.so"):
            parts = path.relative_to(built).parts
            name = ".".join([*parts[:-1], parts[-1].split(".", 1)[0]])
            if name not in current:
                path.unlink()


setup(
    ext_modules=compiled_extensions(),
    cmdclass={"build_ext": OptionalBuildExt, "build_py": BuildPy},
)
