"""Fixtures of the agent tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator
from pathlib import Path

import pytest
from support.failure_logs import executor_stderr, tails

from meseta.agent.containerizer import Containerizer


@pytest.fixture
async def containerizer(tmp_path: Path) -> AsyncIterator[Containerizer]:
    """A containerizer under `tmp_path/work`; every container it still has is destroyed."""
    containerizer = Containerizer(tmp_path / "work")
    try:
        yield containerizer
    finally:
        for container_id in containerizer.containers():
            await containerizer.destroy(container_id)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, object, None]:
    """A failed agent test's report carries the log of any agent process it ran in `tmp_path`
    and the stderr of every executor there (in-process agents log through pytest already)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    work_dir = getattr(item, "funcargs", {}).get("tmp_path")
    if report.failed and report.when == "call" and isinstance(work_dir, Path):
        logs = sorted(work_dir.glob("*.log"))
        report.sections.append(("agent logs", tails([*logs, *executor_stderr(work_dir)], work_dir)))
