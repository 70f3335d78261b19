"""Suite-wide pytest hooks.

There is deliberately no ``tests/__init__.py``: tests are not a package, and they import
only ``meseta.*`` (the installed package), never the checkout's folders by bare name. The one
exception is ``tests/support/`` (shared test builders), importable as ``support.*``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = Path(__file__).resolve().parent

# Shared builders live in tests/support/ and are imported as `support.<module>`.
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))


# Hypothesis's two wall-clock checks, the 200 ms `deadline` per example and the `too_slow`
# health check on data generation, fail a correct test whenever the machine is busy (a
# descheduled process misses them). Speed is the benchmarks' business, never a test's.
settings.register_profile("meseta", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("meseta")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--rewrite-golden",
        action="store_true",
        default=False,
        help="regenerate the expected events and digests in tests/golden/ (review the diff)",
    )


def pytest_configure() -> None:
    # `python -m pytest` from the repository root puts the root on sys.path, which makes the
    # checkout's `log/`, `master/`, ... importable as top-level modules (design C.1 item 7).
    on_path = {Path(entry or Path.cwd()).resolve() for entry in sys.path}
    if REPO_ROOT in on_path:
        raise pytest.UsageError(
            f"{REPO_ROOT} is on sys.path, so bare `log`/`master` would import from the "
            "checkout; run the `pytest` entry point, not `python -m pytest`"
        )


def slow_tests_enabled(config: pytest.Config) -> bool:
    """Slow soaks run only when asked for: `-m` naming `slow`, or MESETA_SLOW=1."""
    return "slow" in (config.option.markexpr or "") or os.environ.get("MESETA_SLOW") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if slow_tests_enabled(config):
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]
