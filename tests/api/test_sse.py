"""Operator events as Server-Sent Events (api/sse.py) against a real uvicorn on loopback.

Writes go through the real scheduler and agent APIs (fake clients); the events are
read with aiohttp as a browser's EventSource would, Last-Event-ID included.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.fake_agent import FakeAgent
from support.fake_scheduler import FakeScheduler, subscribe_and_launch
from support.master_harness import (
    MasterHandle,
    follower_master,
    replica_over,
    replicate,
    serving,
    use_broker,
)
from support.sse_client import SseEvent, SseStream, open_sse

from meseta.api import consistency, sse
from meseta.log.memory import MemoryLog
from meseta.master import decide
from meseta.master.v1 import commands_pb2
from meseta.proto.mesos.v1 import mesos_pb2

Json = dict[str, Any]


async def stream(
    session: aiohttp.ClientSession, master: MasterHandle, last_event_id: str | None = None
) -> SseStream:
    opened = await open_sse(session, master.url + "/api/v1/events", last_event_id=last_event_id)
    assert isinstance(opened, SseStream), opened
    return opened


def ids(events: list[SseEvent]) -> list[str | None]:
    return [event.id for event in events]


async def test_starts_with_the_full_state_then_events_tagged_with_log_indexes(
    master: MasterHandle, agent: FakeAgent, scheduler: FakeScheduler, session: aiohttp.ClientSession
) -> None:
    events = await stream(session, master)
    assert events.headers["Content-Type"].startswith("text/event-stream")
    subscribed = await events.next()
    assert subscribed.event == "SUBSCRIBED"
    assert subscribed.id == events.headers["X-Meseta-Index"]
    body = subscribed.json()
    assert body["type"] == "SUBSCRIBED"
    agents = body["subscribed"]["get_state"]["get_agents"]["agents"]
    assert [a["agent_info"]["id"]["value"] for a in agents] == [agent.agent_id]
    assert body["subscribed"]["heartbeat_interval_seconds"] == 15.0

    await subscribe_and_launch(scheduler, "t1", "t2")
    added = await events.next()
    assert added.event == "FRAMEWORK_ADDED"
    assert int(added.id or "") > int(subscribed.id or "")
    first, second = await events.take(2)
    assert (first.event, second.event) == ("TASK_ADDED", "TASK_ADDED")
    # One ACCEPT, one entry N: its events are N.0 and N.
    index = second.id or ""
    assert index.isdigit() and int(index) > int(added.id or "")
    assert first.id == f"{index}.0"
    assert [e.json()["task_added"]["task"]["task_id"]["value"] for e in (first, second)] == [
        "t1",
        "t2",
    ]
    await events.close()


async def test_last_event_id_resumes_without_gap_or_duplicate(
    master: MasterHandle, agent: FakeAgent, scheduler: FakeScheduler, session: aiohttp.ClientSession
) -> None:
    reference = await stream(session, master)
    snapshot = await reference.next()
    reader = await stream(session, master)
    await reader.next()  # its own SUBSCRIBED

    await subscribe_and_launch(scheduler, "t1", "t2")
    # The reader leaves after the first of the two TASK_ADDED of one entry.
    partial = await reader.until("TASK_ADDED")
    await reader.close()
    assert partial[-1].id is not None and "." in partial[-1].id

    fid = scheduler.framework_id or ""
    await agent.update(fid, "t1", "TASK_RUNNING")
    await agent.update(fid, "t2", "TASK_RUNNING")
    expected = await reference.take(5)
    assert [e.event for e in expected] == [
        "FRAMEWORK_ADDED",
        "TASK_ADDED",
        "TASK_ADDED",
        "TASK_UPDATED",
        "TASK_UPDATED",
    ]

    resumed = await stream(session, master, last_event_id=partial[-1].id)
    rest = await resumed.take(3)
    assert [(e.id, e.data) for e in partial + rest] == [(e.id, e.data) for e in expected]
    await resumed.close()

    # From the snapshot's index: everything after it, no SUBSCRIBED.
    again = await stream(session, master, last_event_id=snapshot.id)
    assert [(e.id, e.data) for e in await again.take(5)] == [(e.id, e.data) for e in expected]
    await again.close()

    # The query parameter works for clients that cannot set headers.
    opened = await open_sse(
        session, f"{master.url}/master/api/v1/events?last_event_id={expected[2].id}"
    )
    assert isinstance(opened, SseStream)
    assert [e.id for e in await opened.take(2)] == ids(expected[3:])
    await opened.close()
    await reference.close()


async def test_an_event_id_older_than_the_ring_gets_resync(
    master: MasterHandle,
    agent: FakeAgent,
    scheduler: FakeScheduler,
    session: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = use_broker(master, capacity=2)
    # The leader commits a tick every 0.2 s, so the index may have moved on by the time the
    # client reads the event: note what it was when each resync was made, by reason (the
    # closed first stream may still be cut off server-side, with a resync of its own).
    made_at: dict[str, int] = {}
    make = sse.resync_bytes

    def noted(reason: str, index: int) -> bytes:
        made_at[reason] = broker.applied_index
        return make(reason, index)

    monkeypatch.setattr(sse, "resync_bytes", noted)
    events = await stream(session, master)
    subscribed = await events.next()
    await events.close()
    await subscribe_and_launch(scheduler, "t1", "t2", "t3")  # four events: two are kept

    late = await stream(session, master, last_event_id=subscribed.id)
    resync = await late.next()
    assert resync.event == "resync"
    assert resync.id == ""  # resets the browser's Last-Event-ID: it reconnects afresh
    assert "no longer buffered" in resync.json()["reason"]
    assert resync.json()["index"] == made_at[resync.json()["reason"]]
    assert await late.next_or_end() is None
    await late.close()

    # Reconnecting without an id starts over from the full state.
    fresh = await stream(session, master)
    state = (await fresh.next()).json()["subscribed"]["get_state"]
    assert len(state["get_tasks"]["tasks"]) == 3
    await fresh.close()


async def test_a_subscriber_that_falls_behind_is_cut_off_with_resync(
    master: MasterHandle, agent: FakeAgent, scheduler: FakeScheduler, session: aiohttp.ClientSession
) -> None:
    use_broker(master, capacity=3)
    behind = await stream(session, master)
    await behind.next()
    # One entry with four events overruns a three-event ring before the stream can read.
    await subscribe_and_launch(scheduler, "t1", "t2", "t3", "t4")
    seen = await behind.until("resync")
    # FRAMEWORK_ADDED came first, if the stream read it before the overrun.
    assert [e.event for e in seen] in (["FRAMEWORK_ADDED", "resync"], ["resync"])
    assert "behind" in seen[-1].json()["reason"]
    assert await behind.next_or_end() is None
    await behind.close()
    # The master went on: the tasks are there, and a new subscriber sees them.
    assert len(master.context.cluster.frameworks[scheduler.framework_id or ""].tasks) == 4
    fresh = await stream(session, master)
    assert len((await fresh.next()).json()["subscribed"]["get_state"]["get_tasks"]["tasks"]) == 4
    await fresh.close()


async def test_keep_alive_comments_every_heartbeat_interval(
    master: MasterHandle, session: aiohttp.ClientSession
) -> None:
    use_broker(master, heartbeat_interval_s=0.1)
    events = await stream(session, master)
    subscribed = await events.next()
    assert subscribed.json()["subscribed"]["heartbeat_interval_seconds"] == pytest.approx(0.1)
    await master.wait_until(lambda: events.comments >= 3, "three keep-alive comments")
    assert events.events.empty()  # comments, not events
    await events.close()


@pytest.mark.parametrize("bad", ["abc", "1.x", "-3"])
async def test_a_malformed_last_event_id_is_400(
    master: MasterHandle, session: aiohttp.ClientSession, bad: str
) -> None:
    status, text = await open_sse(  # type: ignore[misc]
        session, master.url + "/api/v1/events", last_event_id=bad
    )
    assert status == 400
    assert text == f"Failed to parse 'Last-Event-ID': '{bad}' is not an event id"


async def test_only_get(master: MasterHandle, session: aiohttp.ClientSession) -> None:
    for method in ("POST", "PUT", "DELETE"):
        async with session.request(method, master.url + "/master/api/v1/events") as response:
            assert response.status == 405
            assert response.headers["Allow"] == "GET, HEAD"
            assert await response.text() == (
                f"405 Method Not Allowed. Expecting one of {{ 'GET', 'HEAD' }}, but received"
                f" '{method}'."
            )
    async with session.head(master.url + "/api/v1/events") as response:
        assert response.status == 200
        assert response.headers["X-Meseta-Index"].isdigit()
    assert master.context.operator_events.subscriptions == {}


def register_agent(hostname: str) -> commands_pb2.Command:
    info = mesos_pb2.AgentInfo(hostname=hostname, port=5051)
    info.resources.add(name="cpus", type=mesos_pb2.Value.SCALAR).scalar.value = 1
    return decide.command(
        register_agent=commands_pb2.RegisterAgent(agent_info=info, stream_id=hostname)
    )


async def test_a_replica_behind_the_last_event_id_waits_for_it(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with follower_master() as follower:
        index = follower.state.applied_index
        # The client saw entry index+1 on a replica that is ahead of this one.
        opening = asyncio.ensure_future(stream(session, follower, last_event_id=str(index + 1)))
        await asyncio.sleep(0.1)
        assert not opening.done()
        replicate(follower.log, register_agent("seen-elsewhere"), term=1)
        replicate(follower.log, register_agent("new"), term=1)
        events = await asyncio.wait_for(opening, 5.0)
        added = await events.next()
        assert (added.event, added.id) == ("AGENT_ADDED", str(index + 2))
        assert added.json()["agent_added"]["agent"]["agent_info"]["hostname"] == "new"
        await events.close()

        # Too far ahead: after the bounded wait, resync.
        monkeypatch.setattr(sse, "RESUME_WAIT_S", 0.1)
        ahead = await stream(session, follower, last_event_id=str(index + 50))
        resync = await ahead.next()
        assert resync.event == "resync"
        assert "not applied index" in resync.json()["reason"]
        await ahead.close()


async def test_a_client_that_leaves_is_unsubscribed(
    master: MasterHandle, session: aiohttp.ClientSession
) -> None:
    events = await stream(session, master)
    await events.next()
    assert len(master.context.operator_events.subscriptions) == 1
    await events.close()
    await master.wait_unsubscribed()


async def test_after_a_restart_events_before_the_restored_view_need_a_resync(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    log = MemoryLog(clock_ns=time.time_ns)
    view_dir = tmp_path / "views"
    try:
        async with serving(replica_over(log, view_dir)) as first:
            events = await stream(session, first)
            await events.next()
            async with FakeAgent(first.url) as agent:
                assert (await agent.subscribe())["type"] == "SUBSCRIBED"
            added = await events.next()
            assert added.event == "AGENT_ADDED"
        # A replica that stops ends its streams without "resync": resume elsewhere.
        assert await events.next_or_end() is None
        await events.close()

        second = replica_over(log, view_dir)
        restored = second.context.cluster.applied_index
        assert restored > int(added.id or "")
        async with serving(second):
            # The restored view's events went out before the restart: they are not here.
            old = await stream(session, second, last_event_id=added.id)
            assert (await old.next()).event == "resync"
            await old.close()
            # From the restored index on, resuming works.
            resumed = await stream(session, second, last_event_id=str(restored))
            async with FakeAgent(second.url, hostname="127.0.0.2") as agent:
                assert (await agent.subscribe())["type"] == "SUBSCRIBED"
            again = await resumed.next()
            assert again.event == "AGENT_ADDED"
            assert int(again.id or "") > restored
            await resumed.close()
    finally:
        await log.close()


async def test_a_replica_cut_off_from_the_leader_ends_its_streams_and_starts_none(
    session: aiohttp.ClientSession,
) -> None:
    # Its keep-alive comments would tell the client a view is live that is not.
    async with follower_master() as follower:
        use_broker(follower, heartbeat_interval_s=0.2)
        events = await stream(session, follower)
        subscribed = await events.next()
        assert subscribed.event == "SUBSCRIBED"
        follower.context.applied_at_s -= consistency.CONTACT_LOST_S + 1
        assert await events.next_or_end() is None  # ended, with no event
        for last_event_id in (None, subscribed.id):
            opened = await open_sse(
                session, follower.url + "/api/v1/events", last_event_id=last_event_id
            )
            assert opened == (503, "This replica has lost contact with the leader")
        await events.close()
