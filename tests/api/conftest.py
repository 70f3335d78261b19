"""Fixtures of the HTTP API tests: a leading master on loopback, a fake agent, a raw scheduler."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from support.fake_agent import FakeAgent
from support.fake_scheduler import FakeScheduler
from support.master_harness import MasterHandle, running_master


@pytest.fixture
async def master() -> AsyncIterator[MasterHandle]:
    async with running_master() as handle:
        yield handle


@pytest.fixture
async def agent(master: MasterHandle) -> AsyncIterator[FakeAgent]:
    """A registered agent with cpus:4;mem:1024."""
    async with FakeAgent(master.url) as fake:
        first = await fake.subscribe()
        assert first["type"] == "SUBSCRIBED", first
        yield fake


@pytest.fixture
async def scheduler(master: MasterHandle) -> AsyncIterator[FakeScheduler]:
    """A JSON scheduler client, not subscribed yet."""
    async with FakeScheduler(master.url) as fake:
        yield fake
