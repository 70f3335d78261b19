"""Fixtures of the agent tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

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
