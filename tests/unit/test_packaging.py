"""The wheel ships exactly the package folders of the checkout (design C.1, item 3).

The repository root is the package `meseta` (package-dir {"meseta" = "."}) and
`[tool.setuptools].packages` is an explicit list, so a new folder with an `__init__.py` ships
only once it is listed. These tests catch that before a wheel install does.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "meseta"
# Top-level folders that are not part of the package.
NOT_SHIPPED = frozenset({"tests", "benchmarks", "build", "dist", "scripts", "docs"})


def setuptools_config() -> dict[str, Any]:
    with (REPO_ROOT / "pyproject.toml").open("rb") as file:
        config: dict[str, Any] = tomllib.load(file)["tool"]["setuptools"]
    return config


def is_skipped(relative: Path) -> bool:
    name = relative.name
    return (
        name.startswith(".")
        or name == "__pycache__"
        or name.endswith(".egg-info")
        or (len(relative.parts) == 1 and name in NOT_SHIPPED)
    )


def walk_package_tree() -> tuple[set[str], list[str]]:
    """(dotted names of folders with __init__.py, folders with .py files but no __init__.py)."""
    packages: set[str] = set()
    orphans: list[str] = []
    for folder, subfolders, files in os.walk(REPO_ROOT):
        relative = Path(folder).relative_to(REPO_ROOT)
        subfolders[:] = sorted(d for d in subfolders if not is_skipped(relative / d))
        if "__init__.py" in files:
            packages.add(".".join([PACKAGE, *relative.parts]))
        elif any(name.endswith(".py") for name in files):
            orphans.append(relative.as_posix())
    return packages, orphans


def test_every_package_folder_is_listed() -> None:
    found, _ = walk_package_tree()
    listed = set(setuptools_config()["packages"])
    missing = sorted(found - listed)
    extra = sorted(listed - found)
    assert not missing and not extra, (
        "[tool.setuptools].packages does not match the folders that have an __init__.py:\n"
        f"  missing from pyproject.toml: {missing}\n"
        f"  listed but no __init__.py:   {extra}"
    )


def test_no_module_folder_lacks_init() -> None:
    _, orphans = walk_package_tree()
    assert not orphans, f"folders with .py files but no __init__.py are not shipped: {orphans}"


def test_package_dir_maps_root() -> None:
    assert setuptools_config()["package-dir"] == {PACKAGE: "."}


def test_package_data() -> None:
    package_data = setuptools_config().get("package-data", {})
    problems = []
    if "py.typed" not in package_data.get(PACKAGE, []):
        problems.append(f'package-data["{PACKAGE}"] must include "py.typed"')
    if not (REPO_ROOT / "py.typed").is_file():
        problems.append("py.typed is missing at the repository root")
    if "*.proto" not in package_data.get(f"{PACKAGE}.log.v1", []):
        problems.append(f'package-data["{PACKAGE}.log.v1"] must include "*.proto"')
    assert not problems, "\n".join(problems)
