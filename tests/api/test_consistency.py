"""Read consistency (api/consistency.py): index and leader headers, ?min_index, ?consistent.

Against a real uvicorn on loopback: a leading replica, and followers fed through
`replicate()` as Raft would feed them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from multidict import CIMultiDictProxy
from support.fake_agent import FakeAgent
from support.fake_scheduler import FakeScheduler, framework_info
from support.master_harness import MasterHandle, follower_master, replicate

from meseta.api import consistency
from meseta.master import decide, fold
from meseta.master.v1 import commands_pb2
from meseta.proto.mesos.v1 import mesos_pb2


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    timeout = aiohttp.ClientTimeout(total=15.0)
    async with aiohttp.ClientSession(timeout=timeout) as client:
        yield client


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, CIMultiDictProxy[str], bytes]:
    async with session.get(url, allow_redirects=False) as response:
        return response.status, response.headers, await response.read()


def register_agent(hostname: str) -> commands_pb2.Command:
    info = mesos_pb2.AgentInfo(hostname=hostname, port=5051)
    info.resources.add(name="cpus", type=mesos_pb2.Value.SCALAR).scalar.value = 1
    register = commands_pb2.RegisterAgent(agent_info=info, stream_id=hostname)
    return decide.command(register_agent=register)


async def test_every_read_says_what_it_reflects(
    master: MasterHandle, session: aiohttp.ClientSession
) -> None:
    for path in ("/state", "/master/state", "/api/v1/events"):
        if path.endswith("events"):
            async with session.head(master.url + path) as response:
                status, headers = response.status, response.headers
        else:
            status, headers, _ = await get(session, master.url + path)
        assert status == 200, path
        assert int(headers["X-Meseta-Index"]) <= master.context.cluster.applied_index
        assert headers["X-Meseta-Known-Leader"] == "true"
        assert headers["X-Meseta-Leader"] == master.address
        assert headers["X-Meseta-Last-Contact"] == "0"  # the leader itself


async def test_writes_carry_an_index_at_or_after_the_write(
    master: MasterHandle, agent: FakeAgent, scheduler: FakeScheduler, session: aiohttp.ClientSession
) -> None:
    stream, _ = await scheduler.subscribe(framework_info())
    await stream.expect("OFFERS")
    reply = await scheduler.call("REVIVE")
    assert reply.status == 202
    index = int(reply.headers["X-Meseta-Index"])
    revive = [
        record.index
        for record in master.log.read(1, master.log.applied_index() + 1)
        if [c.WhichOneof("body") for c in fold.decode(record.entry).commands] == ["revive_offers"]
    ]
    assert len(revive) == 1 and revive[0] <= index
    status, headers, _ = await get(session, f"{master.url}/state?min_index={index}")
    assert status == 200 and int(headers["X-Meseta-Index"]) >= index


async def test_min_index_waits_until_applied(
    master: MasterHandle, session: aiohttp.ClientSession
) -> None:
    # The leader ticks every 0.2 s: index + 2 is two ticks away.
    target = master.context.cluster.applied_index + 2
    started = time.monotonic()
    status, headers, _ = await get(session, f"{master.url}/state?min_index={target}")
    assert status == 200
    assert int(headers["X-Meseta-Index"]) >= target
    assert time.monotonic() - started >= 0.1


async def test_min_index_not_reached_in_time_is_503(
    master: MasterHandle, session: aiohttp.ClientSession
) -> None:
    target = master.context.cluster.applied_index + 1000
    status, headers, body = await get(session, f"{master.url}/state?min_index={target}&wait=200ms")
    assert status == 503
    assert body.decode().startswith("This replica has applied index ")
    assert f"not {target}, after waiting 0.2s" in body.decode()
    assert int(headers["X-Meseta-Index"]) < target


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("min_index=x", "Failed to parse 'min_index': 'x' is not a log index"),
        ("min_index=-1", "Failed to parse 'min_index': '-1' is not a log index"),
        ("consistent=maybe", "Failed to parse 'consistent': expected true or false, got 'maybe'"),
        ("min_index=1&wait=soon", "Failed to parse 'wait': invalid duration 'soon'"),
    ],
)
async def test_bad_parameters_are_400(
    master: MasterHandle, session: aiohttp.ClientSession, query: str, message: str
) -> None:
    status, headers, body = await get(session, f"{master.url}/state?{query}")
    assert status == 400
    assert body.decode().startswith(message)
    assert "X-Meseta-Index" in headers


async def test_consistent_read_on_the_leader_waits_for_a_barrier(
    master: MasterHandle, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    barriers: list[int] = []
    barrier = master.log.barrier

    async def later_barrier(**options: float) -> int:
        # As if entries were committed elsewhere: the barrier lands two ticks ahead.
        index = await barrier(**options) + 2
        barriers.append(index)
        return index

    monkeypatch.setattr(master.log, "barrier", later_barrier)
    status, headers, _ = await get(session, f"{master.url}/state?consistent=true")
    assert status == 200
    assert len(barriers) == 1
    assert int(headers["X-Meseta-Index"]) >= barriers[0]
    status, _, _ = await get(session, f"{master.url}/state?consistent=false")
    assert status == 200 and len(barriers) == 1


async def test_a_follower_reads_its_own_view_and_names_the_leader(
    session: aiohttp.ClientSession,
) -> None:
    async with follower_master(leader_hostname="leader.example", leader_port=5999) as follower:
        status, headers, body = await get(session, follower.url + "/state")
        assert status == 200
        assert headers["X-Meseta-Index"] == str(follower.state.applied_index)
        assert headers["X-Meseta-Known-Leader"] == "true"
        assert headers["X-Meseta-Leader"] == "leader.example:5999"
        assert b'"hostname"' in body

        # Nothing applied for a while: the leader has not been heard from.
        await asyncio.sleep(0.3)
        _, headers, _ = await get(session, follower.url + "/state")
        assert int(headers["X-Meseta-Last-Contact"]) >= 300

        # A linearizable read is the leader's job.
        status, headers, _ = await get(session, follower.url + "/state?consistent=true")
        assert status == 307
        assert headers["Location"] == "//leader.example:5999/master/state?consistent=true"


async def test_a_follower_waits_for_min_index_until_the_entry_arrives(
    session: aiohttp.ClientSession,
) -> None:
    async with follower_master() as follower:
        target = follower.state.applied_index + 1
        reading = asyncio.ensure_future(get(session, f"{follower.url}/slaves?min_index={target}"))
        await asyncio.sleep(0.1)
        assert not reading.done()
        replicate(follower.log, register_agent("arrived"), term=1)
        status, headers, body = await asyncio.wait_for(reading, 5.0)
        assert status == 200
        assert headers["X-Meseta-Index"] == str(target)
        assert b"arrived" in body


async def test_without_a_leader_reads_still_work_but_say_so(
    session: aiohttp.ClientSession,
) -> None:
    async with follower_master(leader_known=False) as follower:
        status, headers, body = await get(session, follower.url + "/state")
        assert status == 200
        assert headers["X-Meseta-Known-Leader"] == "false"
        assert "X-Meseta-Leader" not in headers
        # No leader named: tools take `leader == pid` for "this master leads". Present but
        # empty: Datadog's check indexes it, mesos-dns skips a state with an empty one.
        state = orjson.loads(body)
        assert state["leader"] == "" and "leader_info" not in state
        status, _, body = await get(session, follower.url + "/state?consistent=true")
        assert (status, body) == (503, b"No leader elected")


async def test_a_replica_cut_off_from_its_leader_names_none(
    session: aiohttp.ClientSession,
) -> None:
    async with follower_master() as follower:
        _, _, body = await get(session, follower.url + "/state")
        assert orjson.loads(body)["leader"] == "master@10.0.0.9:5999"
        follower.context.applied_at_s -= consistency.CONTACT_LOST_S + 1
        status, _, body = await get(session, follower.url + "/state")
        assert status == 200
        assert orjson.loads(body)["leader"] == ""
        call = orjson.dumps({"type": "GET_MASTER"})
        headers = {"Content-Type": "application/json"}
        async with session.post(follower.url + "/api/v1", data=call, headers=headers) as response:
            assert (response.status, await response.read()) == (503, b"No leader elected")


async def test_a_replica_that_has_not_caught_up_answers_503_unless_min_index(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with follower_master() as follower:
        status_of = follower.log.status
        monkeypatch.setattr(
            follower.log, "status", lambda: dataclasses.replace(status_of(), ready=False)
        )
        status, _, body = await get(session, follower.url + "/state")
        assert (status, body) == (503, b"This replica has not caught up with the log yet")
        status, _, _ = await get(session, f"{follower.url}/state?min_index=1")
        assert status == 200
