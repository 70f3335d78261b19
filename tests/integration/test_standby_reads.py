"""Standby reads and instant failover with real `meseta master` processes on loopback.

Three voting replicas and one non-voting read replica (`--read_replica`). Writes go
through the real scheduler and agent APIs (fake clients); the processes are killed
in a finally block and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from multidict import CIMultiDictProxy
from support.fake_agent import FakeAgent, reported_task
from support.fake_scheduler import FakeScheduler, framework_info
from support.master_processes import MasterCluster, MasterProcess
from support.sse_client import SseEvent, SseStream, open_sse

from meseta.projections.operator_stream import parse_point

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

Json = dict[str, Any]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[MasterCluster]:
    masters = MasterCluster(tmp_path / "cluster", voters=3, read_replicas=1)
    try:
        masters.start_all()
        yield masters
    finally:
        print(masters.outputs())  # pytest shows it only when the test fails
        masters.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=15.0)
    async with aiohttp.ClientSession(timeout=timeout) as client:
        yield client


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, CIMultiDictProxy[str], bytes]:
    async with session.get(url, allow_redirects=False) as response:
        return response.status, response.headers, await response.read()


def task_states(state: Json) -> dict[str, str]:
    return {
        task["id"]: task["state"]
        for framework in state["frameworks"]
        for task in framework["tasks"]
    }


def launch(offer: Json, task_id: str) -> Json:
    task = {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": offer["agent_id"],
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}],
        "command": {"value": "sleep 1000"},
    }
    return {
        "offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}],
        "filters": {"refuse_seconds": 0},
    }


async def acknowledge(scheduler: FakeScheduler, update: Json) -> int:
    """ACKNOWLEDGE an UPDATE; the index the 202 names (at or after the acknowledgement)."""
    status = update["update"]["status"]
    acknowledge = {"agent_id": status["agent_id"], "task_id": status["task_id"]}
    acknowledge["uuid"] = status["uuid"]
    reply = await scheduler.call("ACKNOWLEDGE", acknowledge=acknowledge)
    assert reply.status == 202, reply.text
    return int(reply.headers["X-Meseta-Index"])


async def sse(session: aiohttp.ClientSession, node: MasterProcess, **options: Any) -> SseStream:
    opened = await open_sse(session, node.url + "/api/v1/events", **options)
    assert isinstance(opened, SseStream), opened
    return opened


async def drain(events: SseStream) -> list[SseEvent]:
    """Every event until the stream ends (its replica died)."""
    seen = []
    while (event := await events.next_or_end(10.0)) is not None:
        seen.append(event)
    return seen


async def test_standbys_serve_reads_and_a_new_leader_is_complete_at_once(
    cluster: MasterCluster, session: aiohttp.ClientSession
) -> None:
    leader = await cluster.leader(session)
    reader = cluster.nodes[3]
    follower = next(n for n in cluster.nodes[:3] if n is not leader)
    async with FakeAgent(leader.url) as agent, FakeScheduler(leader.url) as scheduler:
        assert (await agent.subscribe())["type"] == "SUBSCRIBED"
        stream, first = await scheduler.subscribe(framework_info(failover_timeout=3600))
        assert first["type"] == "SUBSCRIBED", first
        fid = scheduler.framework_id or ""
        offer = (await stream.expect("OFFERS"))["offers"]["offers"][0]
        assert (await scheduler.call("ACCEPT", accept=launch(offer, "t1"))).status == 202
        run = (await agent.expect("RUN_TASK"))["run_task"]
        await agent.update(fid, "t1", "TASK_RUNNING")
        acked = await acknowledge(scheduler, await stream.expect("UPDATE"))
        # An offer is outstanding when the leader dies (refuse_seconds=0 above).
        outstanding = (await stream.expect("OFFERS"))["offers"]["offers"][0]

        reader_events = await sse(session, reader)
        leader_events = await sse(session, leader)
        leader_subscribed = await leader_events.next()
        assert leader_subscribed.event == "SUBSCRIBED"
        assert (await reader_events.next()).event == "SUBSCRIBED"

        # Every replica answers reads from its own view, saying what it reflects.
        for node in (follower, reader):
            status, headers, body = await get(session, f"{node.url}/state?min_index={acked}")
            assert status == 200, (node.name, body)
            assert int(headers["X-Meseta-Index"]) >= acked
            assert headers["X-Meseta-Known-Leader"] == "true"
            assert headers["X-Meseta-Leader"] == leader.address
            assert 0 <= int(headers["X-Meseta-Last-Contact"]) < 5000
            assert task_states(orjson.loads(body)) == {"t1": "TASK_RUNNING"}
        status, headers, _ = await get(session, f"{reader.url}/slaves")  # no min_index: ready
        assert status == 200 and headers["X-Meseta-Known-Leader"] == "true"
        # Linearizable reads belong to the leader.
        status, headers, _ = await get(session, f"{reader.url}/state?consistent=true")
        assert status == 307
        assert headers["Location"] == f"//{leader.address}/master/state?consistent=true"
        status, headers, _ = await get(session, f"{leader.url}/state?consistent=true")
        assert status == 200 and int(headers["X-Meseta-Index"]) >= acked
        # Writes to a standby are redirected (contract 1.6).
        for node in (follower, reader):
            reply = await scheduler.post(
                {"type": "REVIVE", "framework_id": {"value": fid}},
                headers={"Mesos-Stream-Id": stream.stream_id},
                url=f"{node.url}/api/v1/scheduler",
            )
            assert reply.status == 307, (node.name, reply.text)
            assert reply.headers["Location"] == f"//{leader.address}/master/api/v1/scheduler"
            reply = await scheduler.post(
                {"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": "x"}}},
                url=f"{node.url}/api/v1",
            )
            assert reply.status == 307, (node.name, reply.text)
            assert reply.headers["Location"] == f"//{leader.address}/master/api/v1"

        # An update committed on the leader that the scheduler never acknowledged.
        unacked = await agent.update(fid, "t1", "TASK_RUNNING", message="unacknowledged")
        await stream.expect("UPDATE")

        killed_at = time.monotonic()
        cluster.kill(leader)
        new_leader = await cluster.leader(session)
        assert new_leader is not leader and new_leader is not reader
        # The new leader's view is complete the moment it leads.
        status, headers, body = await get(session, f"{new_leader.url}/state")
        failover_s = time.monotonic() - killed_at
        assert status == 200
        assert int(headers["X-Meseta-Index"]) >= acked
        assert headers["X-Meseta-Leader"] == new_leader.address
        assert task_states(orjson.loads(body)) == {"t1": "TASK_RUNNING"}
        print(f"failover: new leader served /state {failover_s:.2f}s after kill -9")
        # The read replica follows the new leader and names it.
        deadline = time.monotonic() + 10
        while True:
            status, headers, _ = await get(session, f"{reader.url}/state?min_index={acked}")
            if headers.get("X-Meseta-Leader") == new_leader.address or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert status == 200 and headers.get("X-Meseta-Leader") == new_leader.address

        # Scheduler and agent reconnect to it; the unacknowledged update is not lost:
        # the agent retries it until acknowledged, as Mesos agents do.
        scheduler.url = f"{new_leader.url}/api/v1/scheduler"
        agent.url = f"{new_leader.url}/api/v1/agent"
        stream2, first = await scheduler.subscribe(
            framework_info(failover_timeout=3600), framework_id=fid
        )
        assert first["type"] == "SUBSCRIBED", first
        print(f"failover: scheduler resubscribed {time.monotonic() - killed_at:.2f}s after kill -9")
        assert agent.agent_id is not None
        again = await agent.subscribe(
            agent_id=agent.agent_id, tasks=[reported_task(run, agent.agent_id)]
        )
        assert again["type"] == "SUBSCRIBED", again
        await agent.update(fid, "t1", "TASK_RUNNING", status_uuid=unacked, message="unacknowledged")
        update = await stream2.expect("UPDATE")
        assert update["update"]["status"]["uuid"] == base64.b64encode(unacked or b"").decode()
        assert update["update"]["status"]["message"] == "unacknowledged"
        await acknowledge(scheduler, update)
        assert (await agent.expect("ACKNOWLEDGE"))["acknowledge"]["task_id"]["value"] == "t1"

        # Offers did not survive the leader change: fresh ids from the new leader, and
        # the old one is invalid (REASON_INVALID_OFFERS, as for any stale offer).
        fresh = (await stream2.expect("OFFERS"))["offers"]["offers"][0]
        assert fresh["id"] != outstanding["id"]
        assert (await scheduler.call("ACCEPT", accept=launch(outstanding, "t2"))).status == 202
        lost = (await stream2.expect("UPDATE"))["update"]["status"]
        assert (lost["task_id"]["value"], lost["state"]) == ("t2", "TASK_LOST")
        assert lost["reason"] == "REASON_INVALID_OFFERS"
        await check_event_streams(
            session, new_leader, reader_events, leader_events, leader_subscribed.id or ""
        )
        await stream2.close()


async def check_event_streams(
    session: aiohttp.ClientSession,
    new_leader: MasterProcess,
    reader_events: SseStream,
    leader_events: SseStream,
    leader_subscribed_id: str,
) -> None:
    """The read replica's stream went on through the failover (the resubscription and the
    re-registration); the dead leader's subscriber resumes on the new leader with
    Last-Event-ID, without gap or duplicate."""
    through = await reader_events.until("FRAMEWORK_UPDATED", timeout_s=10.0)
    if "AGENT_ADDED" not in [event.event for event in through]:
        through += await reader_events.until("AGENT_ADDED", timeout_s=10.0)
    seen = await drain(leader_events)
    last_id = seen[-1].id if seen else leader_subscribed_id
    assert last_id
    resumed = await sse(session, new_leader, last_event_id=last_id)
    # The reader's events after that id, as the resumed stream must replay them.
    expected = [e for e in through if parse_point(e.id or "") > parse_point(last_id)]
    assert expected
    got = await resumed.take(len(expected))
    assert [(e.id, e.event, e.data) for e in got] == [(e.id, e.event, e.data) for e in expected]
    await resumed.close()
    await reader_events.close()
    await leader_events.close()


def test_read_replica_flags_are_checked() -> None:
    from meseta.cli import main

    base = ["master", "--work_dir", "/nonexistent", "--peers", "a:1", "--secret_file", "/x"]
    with pytest.raises(SystemExit, match="--raft_address is required"):
        main(base)
    with pytest.raises(SystemExit, match="takes no --raft_address"):
        main([*base, "--read_replica", "--raft_address", "127.0.0.1:1"])
