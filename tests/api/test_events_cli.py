"""`meseta events` (events_cli.py) against real replicas on loopback: it follows the operator
event stream and, when its replica goes away, resumes on the next one with Last-Event-ID."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import orjson
import pytest
from support.fake_agent import FakeAgent
from support.master_harness import replica_over, serving

from meseta import events_cli
from meseta.log.memory import MemoryLog


async def wait_for(lines: list[str], kind: str, count: int = 1, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while sum(1 for line in lines if orjson.loads(line)["type"] == kind) < count:
        assert time.monotonic() < deadline, f"no {kind} line: {lines}"
        await asyncio.sleep(0.02)


async def test_follows_the_stream_and_resumes_on_the_next_master(
    tmp_path: Path, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_cli, "RETRY_S", 0.05)
    log = MemoryLog(clock_ns=time.time_ns)
    # Two replicas over one log, one after the other (the second with a view of its own, so
    # its buffer holds the first one's events too): the command is given both.
    first, second = replica_over(log, tmp_path / "a"), replica_over(log, tmp_path / "b")
    lines: list[str] = []
    follower = events_cli.Follower([first.url, second.url], lines.append, as_json=True)
    following = asyncio.get_running_loop().create_task(follower.follow(session))
    try:
        async with serving(first):
            await wait_for(lines, "SUBSCRIBED")
            async with FakeAgent(first.url) as agent:
                assert (await agent.subscribe())["type"] == "SUBSCRIBED"
                await wait_for(lines, "AGENT_ADDED")
        async with serving(second), FakeAgent(second.url, hostname="127.0.0.2") as agent:
            assert (await agent.subscribe())["type"] == "SUBSCRIBED"
            await wait_for(lines, "AGENT_ADDED", count=2)
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        await log.close()
    events = [orjson.loads(line) for line in lines]
    assert [e["type"] for e in events].count("SUBSCRIBED") == 1  # resumed, not started over
    points = [tuple(int(part) for part in e["id"].split(".")) for e in events]
    assert points == sorted(points) and len(set(points)) == len(points)  # no gap, no duplicate
    hostnames = [
        e["event"]["agent_added"]["agent"]["agent_info"]["hostname"]
        for e in events
        if e["type"] == "AGENT_ADDED"
    ]
    assert hostnames[-1] == "127.0.0.2"


def test_lines_say_what_happened() -> None:
    def line(kind: str, event: dict[str, object], event_id: str = "7") -> str:
        sse = events_cli.SseEvent(kind, orjson.dumps(event).decode(), event_id)
        return events_cli.line_of(sse, as_json=False)

    updated = {
        "type": "TASK_UPDATED",
        "task_updated": {
            "framework_id": {"value": "F"},
            "state": "TASK_FINISHED",
            "status": {
                "task_id": {"value": "t1"},
                "state": "TASK_RUNNING",
                "source": "SOURCE_EXECUTOR",
            },
        },
    }
    assert line("TASK_UPDATED", updated) == (
        "7 TASK_UPDATED task t1: TASK_FINISHED (status TASK_RUNNING) source=SOURCE_EXECUTOR"
    )
    agent = {"agent_added": {"agent": {"agent_info": {"id": {"value": "S1"}, "hostname": "h1"}}}}
    assert line("AGENT_ADDED", agent, "8.0") == "8.0 AGENT_ADDED agent S1 (h1)"
    state = {"subscribed": {"get_state": {"get_agents": {"agents": [{}]}, "get_tasks": {}}}}
    assert line("SUBSCRIBED", state) == (
        "7 SUBSCRIBED 1 agents, 0 frameworks, 0 tasks, 0 completed tasks"
    )
