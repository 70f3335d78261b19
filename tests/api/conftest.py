"""Fixtures of the HTTP API tests: a leading master on loopback, a fake agent, a raw scheduler,
a populated cluster, and an HTTP session for event streams."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from support.fake_agent import FakeAgent
from support.fake_scheduler import FakeScheduler
from support.master_harness import MasterHandle, running_master
from support.read_cluster import AGENT_RESOURCES, Populated, populate


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


@pytest.fixture
async def cluster() -> AsyncIterator[tuple[MasterHandle, Populated]]:
    """A master populated by tests/support/read_cluster.py, for the read tests."""
    async with (
        running_master() as master,
        FakeAgent(master.url, resources=AGENT_RESOURCES) as agent,
        FakeScheduler(master.url) as scheduler,
    ):
        assert (await agent.subscribe())["type"] == "SUBSCRIBED"
        yield master, await populate(master, agent, scheduler)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """No overall timeout (streams stay open), but no read waits more than 10 s."""
    timeout = aiohttp.ClientTimeout(total=None, sock_read=10.0)
    async with aiohttp.ClientSession(timeout=timeout) as client:
        yield client
