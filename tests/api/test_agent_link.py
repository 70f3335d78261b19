"""Our agent <-> master link (proto/agent_link/v1): registration, calls, disconnection."""

from __future__ import annotations

import asyncio
import base64

import aiohttp
import orjson
import pytest
from support.fake_agent import AgentLinkError, EventStream, FakeAgent, reported_task, scalar
from support.fake_scheduler import FakeScheduler, SchedulerStream, framework_info
from support.master_harness import MasterHandle

from meseta.api import agent_link
from meseta.master import fold
from meseta.master.state import AgentStatus, FrameworkStatus
from meseta.master.v1 import commands_pb2
from meseta.proto.agent_link.v1 import agent_link_pb2
from meseta.proto.mesos.v1 import mesos_pb2


async def launched(
    scheduler: FakeScheduler, agent: FakeAgent, task_id: str, **info: object
) -> tuple[SchedulerStream, str, dict[str, object]]:
    """Subscribe a framework and launch one task on `agent`; (stream, framework id, RUN_TASK)."""
    stream, first = await scheduler.subscribe(framework_info(**info))
    assert first["type"] == "SUBSCRIBED", first
    fid = scheduler.framework_id or ""
    offer = (await stream.expect("OFFERS"))["offers"]["offers"][0]
    task = {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": offer["agent_id"],
        "resources": [scalar("cpus", 1)],
        "command": {"value": "sleep 1000"},
    }
    accept = {
        "offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}],
    }
    assert (await scheduler.call("ACCEPT", accept=accept)).status == 202
    run = (await agent.expect("RUN_TASK"))["run_task"]
    await agent.update(fid, task_id, "TASK_RUNNING")
    await stream.expect("UPDATE")
    return stream, fid, run


async def disconnected(master: MasterHandle, agent_id: str) -> None:
    while master.state.agents[agent_id].status is AgentStatus.ACTIVE:
        await asyncio.sleep(0.01)


async def test_register_gets_an_agent_id(master: MasterHandle) -> None:
    async with FakeAgent(master.url, hostname="127.0.0.1", port=5051) as agent:
        first = await agent.subscribe()
        assert first["type"] == "SUBSCRIBED"
        agent_id = first["subscribed"]["agent_id"]["value"]
        assert agent_id == f"{master.state.cluster_id}-S0"
        assert first["subscribed"]["heartbeat_interval_seconds"] == 15.0
        assert first["subscribed"]["master_info"]["id"] == master.state.cluster_id
        assert agent.stream is not None
        assert agent.stream.response.headers["Content-Type"] == "application/json"
        assert agent.stream.response.headers["Transfer-Encoding"] == "chunked"
        state = master.state.agents[agent_id]
        assert state.status is AgentStatus.ACTIVE
        assert state.info.hostname == "127.0.0.1"
        assert state.ip == "127.0.0.1"  # named none: where it connected from
        await agent.heartbeat()
        async with FakeAgent(master.url, hostname="agent-two.invalid", port=5052) as second:
            subscribed = await second.subscribe(ip="10.0.0.7")
            second_id = subscribed["subscribed"]["agent_id"]["value"]
            assert second_id == f"{master.state.cluster_id}-S1"
            assert master.state.agents[second_id].ip == "10.0.0.7"
            # The pid names the IP, which tools such as mesos-dns and Mesos's CLI dial.
            url = f"{master.url}/state?min_index={master.state.applied_index}"
            async with aiohttp.ClientSession() as session, session.get(url) as reply:
                shown = await reply.json()
            (slave,) = [s for s in shown["slaves"] if s["id"] == second_id]
            assert slave["pid"] == "slave(1)@10.0.0.7:5052"
            assert slave["hostname"] == "agent-two.invalid"
        await asyncio.wait_for(disconnected(master, second_id), 5)
        async with FakeAgent(master.url, port=5053) as third:
            with master.unchanged(), pytest.raises(AgentLinkError) as refused:
                await third.subscribe(ip="agent-two.invalid")
            expected = (400, "Invalid 'subscribe.ip': 'agent-two.invalid'")
            assert (refused.value.status, refused.value.text) == expected


async def test_an_agent_address_is_its_connections_whatever_the_headers_say(
    master: MasterHandle,
) -> None:
    # Mesos reads no X-Forwarded-For: a header must not place an agent elsewhere.
    async with FakeAgent(master.url, hostname="127.0.0.1", port=5051) as agent:
        first = await agent.subscribe(headers={"X-Forwarded-For": "10.9.9.9"})
        agent_id = first["subscribed"]["agent_id"]["value"]
        assert master.state.agents[agent_id].ip == "127.0.0.1"


async def test_calls_from_unknown_or_unnamed_agents_are_400(
    master: MasterHandle, agent: FakeAgent
) -> None:
    update = {
        "framework_id": {"value": "f"},
        "status": {"task_id": {"value": "t"}, "state": "TASK_RUNNING"},
    }
    with master.unchanged():
        status, text = await agent.call(
            {"type": "UPDATE", "agent_id": {"value": "no-such-agent"}, "update": update}
        )
        assert (status, text) == (400, "Agent cannot be found")
        status, text = await agent.call({"type": "UPDATE", "update": update})
        assert status == 400
        status, _ = await agent.call({"type": "UNKNOWN", "agent_id": {"value": "x"}})
        assert status == 501
        status, _ = await agent.call({"agent_id": {"value": "x"}})
        assert status == 400
        await agent.update("f", "t", "TASK_RUNNING", agent_id="no-such-agent", expect_status=400)
        # An UPDATE without its body.
        await agent.checked(agent.envelope("UPDATE"), 400)


async def test_transport_errors(master: MasterHandle, agent: FakeAgent) -> None:
    assert agent.session is not None
    url = agent.url
    with master.unchanged():
        async with agent.session.get(url) as reply:
            assert reply.status == 405
            assert reply.headers["Allow"] == "POST"
        async with agent.session.post(
            url, data=b"{}", headers={"Content-Type": "text/plain"}
        ) as reply:
            assert reply.status == 415
        async with agent.session.post(
            url, data=b"{", headers={"Content-Type": "application/json"}
        ) as reply:
            assert reply.status == 400
        async with agent.session.post(
            url,
            data=orjson.dumps({"type": "SUBSCRIBE"}),
            headers={"Content-Type": "application/json"},
        ) as reply:
            assert reply.status == 400


async def test_bad_resources_are_an_error_event(master: MasterHandle) -> None:
    async with FakeAgent(master.url, resources=[scalar("cpus", -1)]) as agent:
        with master.unchanged("register_agent"):
            first = await agent.subscribe()
            assert first["type"] == "ERROR"
            assert first["error"]["message"]
            assert agent.stream is not None
            assert await agent.stream.wait_closed() == []
        assert master.state.agents == {}
        assert agent.agent_id is None


async def test_an_agent_marked_gone_is_told_to_shut_down_when_it_comes_back(
    master: MasterHandle, agent: FakeAgent
) -> None:
    agent_id = agent.agent_id or ""
    await agent.disconnect()
    body = {"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": agent_id}}}
    assert agent.session is not None
    async with agent.session.post(
        f"{master.url}/api/v1",
        data=orjson.dumps(body),
        headers={"Content-Type": "application/json"},
    ) as response:
        assert response.status == 200, await response.text()
    # Mesos answers with a ShutdownMessage, not a refusal to retry: the agent must stop.
    with master.unchanged("reregister_agent"):
        first = await agent.subscribe(agent_id=agent_id)
        assert first == {
            "type": "SHUTDOWN",
            "error": {"message": f"Agent {agent_id} has been marked gone"},
        }
        assert agent.stream is not None
        assert await agent.stream.wait_closed() == []
    assert master.state.agents[agent_id].status is AgentStatus.GONE


async def test_an_agent_that_unregisters_is_removed_and_its_tasks_are_lost(
    master: MasterHandle, agent: FakeAgent, scheduler: FakeScheduler
) -> None:
    """Mesos's UnregisterSlaveMessage (its agent on SIGUSR1): the agent is removed, its tasks
    are TASK_LOST, frameworks hear FAILURE, operators AGENT_REMOVED; it may not come back."""
    stream, fid, _ = await launched(scheduler, agent, "t1")
    agent_id = agent.agent_id or ""
    assert agent.session is not None
    operator = await agent.session.post(
        f"{master.url}/api/v1",
        data=orjson.dumps({"type": "SUBSCRIBE"}),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    events = EventStream(operator)
    assert (await events.next_event())["type"] == "SUBSCRIBED"
    await agent.checked(agent.envelope("UNREGISTER"), 202)
    lost = (await stream.expect("UPDATE"))["update"]["status"]
    assert (lost["task_id"]["value"], lost["state"]) == ("t1", "TASK_LOST")
    assert lost["reason"] == "REASON_AGENT_REMOVED" and lost["source"] == "SOURCE_MASTER"
    assert lost["message"] == f"Agent {agent.hostname} removed: the agent unregistered"
    assert (await stream.expect("FAILURE"))["failure"]["agent_id"]["value"] == agent_id
    kinds = {}
    while "AGENT_REMOVED" not in kinds:
        event = await events.next_event()
        kinds[event["type"]] = event
    assert kinds["AGENT_REMOVED"]["agent_removed"]["agent_id"]["value"] == agent_id
    assert kinds["TASK_UPDATED"]["task_updated"]["state"] == "TASK_LOST"
    await events.close()
    assert (await agent.expect("SHUTDOWN"))["type"] == "SHUTDOWN"
    assert master.state.agents[agent_id].status is AgentStatus.REMOVED
    assert master.state.frameworks[fid].tasks == {}
    async with agent.session.get(f"{master.url}/metrics/snapshot") as response:
        metrics = await response.json()
    assert metrics["master/slave_removals"] == 1
    assert metrics["master/slave_removals/reason_unregistered"] == 1
    assert metrics["master/slave_removals/reason_registered"] == 0
    assert metrics["master/messages_unregister_slave"] == 1
    # Its id is done: coming back under it is answered with SHUTDOWN, as Mesos.
    await agent.disconnect()
    first = await agent.subscribe(agent_id=agent_id)
    assert first == {"type": "SHUTDOWN", "error": {"message": f"Agent {agent_id} has been removed"}}
    # Unregistering again: the agent is no longer subscribed.
    await agent.checked(agent.envelope("UNREGISTER", agent_id), 403)


async def test_an_agent_back_under_another_address_is_told_to_shut_down(
    master: MasterHandle,
) -> None:
    async with FakeAgent(master.url, port=5051) as agent:
        agent_id = (await agent.subscribe())["subscribed"]["agent_id"]["value"]
        await agent.disconnect()
    async with FakeAgent(master.url, port=5099) as moved:
        first = await moved.subscribe(agent_id=agent_id)
        assert first["type"] == "SHUTDOWN"
        assert "changed its hostname or port" in first["error"]["message"]


async def test_stream_close_disconnects_the_agent(master: MasterHandle, agent: FakeAgent) -> None:
    agent_id = agent.agent_id or ""
    await agent.disconnect()
    await master.wait_until(
        lambda: master.state.agents[agent_id].status is AgentStatus.DISCONNECTED,
        "the agent to be disconnected",
    )
    assert agent_id in master.state.awaiting_agents
    with master.unchanged():
        await agent.heartbeat(expect_status=403)
        await agent.update("f", "t", "TASK_RUNNING", expect_status=403)


async def test_a_stream_replaced_by_a_newer_one_leaves_the_agent_connected(
    master: MasterHandle, agent: FakeAgent
) -> None:
    """The agent subscribes again on a second connection while its first is open (it lost
    track of it): the master ends the old stream, and that close must not disconnect the
    agent it no longer serves."""
    agent_id = agent.agent_id or ""
    old = agent.stream
    assert old is not None
    async with FakeAgent(master.url, hostname=agent.hostname, port=agent.port) as again:
        first = await again.subscribe(agent_id=agent_id)
        assert first["type"] == "SUBSCRIBED", first
        assert await old.wait_closed() == []
        await asyncio.sleep(0.2)  # the old stream's close callbacks have run
        assert master.state.agents[agent_id].status is AgentStatus.ACTIVE
        await again.heartbeat()  # 403 "Agent is not subscribed" if the close unbound it
        await again.disconnect()
        await master.wait_until(
            lambda: master.state.agents[agent_id].status is AgentStatus.DISCONNECTED,
            "the agent to be disconnected by its current stream's close",
        )


async def test_reregistration_keeps_reported_tasks(
    master: MasterHandle, agent: FakeAgent, scheduler: FakeScheduler
) -> None:
    stream, fid, run = await launched(scheduler, agent, "kept", checkpoint=True)
    agent_id = agent.agent_id or ""
    await agent.disconnect()
    await master.wait_until(
        lambda: master.state.agents[agent_id].status is AgentStatus.DISCONNECTED,
        "the agent to be disconnected",
    )
    # A checkpointing framework's task survives the disconnection...
    assert "kept" in master.state.frameworks[fid].tasks
    again = await agent.subscribe(agent_id=agent_id, tasks=[reported_task(run, agent_id)])
    assert again["type"] == "SUBSCRIBED"
    assert again["subscribed"]["agent_id"]["value"] == agent_id
    # ...and the re-registration that reports it.
    agent_state = master.state.agents[agent_id]
    assert agent_state.status is AgentStatus.ACTIVE
    assert (fid, "kept") in agent_state.tasks
    assert master.state.frameworks[fid].tasks["kept"].agent_id == agent_id
    # The re-registered agent's calls are accepted again.
    await agent.heartbeat()
    sent = await agent.update(fid, "kept", "TASK_FINISHED")
    status = (await stream.expect("UPDATE"))["update"]["status"]
    assert (status["state"], base64.b64decode(status["uuid"])) == ("TASK_FINISHED", sent)


async def test_reregistration_without_a_task_asks_the_agent_to_reconcile(
    master: MasterHandle, agent: FakeAgent, scheduler: FakeScheduler
) -> None:
    _, fid, _ = await launched(scheduler, agent, "forgotten", checkpoint=True)
    agent_id = agent.agent_id or ""
    again = await agent.subscribe(agent_id=agent_id)
    assert again["type"] == "SUBSCRIBED"
    reconcile = (await agent.expect("RECONCILE_TASKS"))["reconcile_tasks"]
    assert reconcile == {"framework_id": {"value": fid}, "task_ids": [{"value": "forgotten"}]}


async def test_non_checkpointing_tasks_are_lost_on_disconnection(
    master: MasterHandle, agent: FakeAgent, scheduler: FakeScheduler
) -> None:
    stream, fid, _ = await launched(scheduler, agent, "lost")
    await agent.disconnect()
    status = (await stream.expect("UPDATE"))["update"]["status"]
    assert (status["task_id"]["value"], status["state"]) == ("lost", "TASK_LOST")
    assert status["reason"] == "REASON_AGENT_DISCONNECTED"
    assert "uuid" not in status
    assert "lost" not in master.state.frameworks[fid].tasks


async def test_executor_exit_and_messages_reach_the_scheduler(
    master: MasterHandle, agent: FakeAgent, scheduler: FakeScheduler
) -> None:
    stream, first = await scheduler.subscribe()
    fid = scheduler.framework_id or ""
    assert first["type"] == "SUBSCRIBED"
    await agent.message(fid, "exec-1", b"\x00payload")
    message = (await stream.expect("MESSAGE"))["message"]
    assert message["agent_id"]["value"] == agent.agent_id
    assert message["executor_id"]["value"] == "exec-1"
    assert base64.b64decode(message["data"]) == b"\x00payload"
    await agent.executor_exited(fid, "exec-1", status=256)
    failure = (await stream.expect("FAILURE"))["failure"]
    assert failure == {
        "agent_id": {"value": agent.agent_id},
        "executor_id": {"value": "exec-1"},
        "status": 256,
    }
    assert master.state.frameworks[fid].status is FrameworkStatus.CONNECTED


async def test_updates_of_several_tasks_commit_as_one_entry(
    master: MasterHandle, agent: FakeAgent, scheduler: FakeScheduler
) -> None:
    stream, first = await scheduler.subscribe()
    assert first["type"] == "SUBSCRIBED"
    fid = scheduler.framework_id or ""
    offer = (await stream.expect("OFFERS"))["offers"]["offers"][0]
    tasks = [
        {
            "name": name,
            "task_id": {"value": name},
            "agent_id": offer["agent_id"],
            "resources": [scalar("cpus", 1)],
            "command": {"value": "sleep 1000"},
        }
        for name in ("a", "b")
    ]
    accept = {
        "offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": tasks}}],
    }
    assert (await scheduler.call("ACCEPT", accept=accept)).status == 202
    await agent.expect("RUN_TASK")
    await agent.expect("RUN_TASK")
    before = master.state.applied_index
    call = agent.envelope("UPDATES")
    call["updates"] = [
        agent.update_body(fid, "a", "TASK_RUNNING", status_uuid=b"a" * 16),
        # An update the fold refuses does not hold up the others in its call.
        agent.update_body("no-such-framework", "c", "TASK_RUNNING", status_uuid=b"x" * 16),
        agent.update_body(fid, "b", "TASK_FAILED", status_uuid=b"b" * 16, message="boom"),
    ]
    await agent.checked(call, 202)
    # One entry holds the three (the allocator may commit offers for b's freed cpus beside).
    entries = master.log.read(before + 1, master.log.applied_index() + 1)
    kinds = [[c.WhichOneof("body") for c in fold.decode(r.entry).commands] for r in entries]
    batched = [[k for k in entry if k == "update_task_status"] for entry in kinds]
    assert [entry for entry in batched if entry] == [["update_task_status"] * 3]
    updates = [(await stream.expect("UPDATE"))["update"]["status"] for _ in range(2)]
    assert [(u["task_id"]["value"], u["state"]) for u in updates] == [
        ("a", "TASK_RUNNING"),
        ("b", "TASK_FAILED"),
    ]
    assert updates[1]["message"] == "boom"
    assert master.state.frameworks[fid].tasks["a"].state == mesos_pb2.TASK_RUNNING


async def test_bad_updates_calls_are_400_and_change_nothing(
    master: MasterHandle, agent: FakeAgent
) -> None:
    update = agent.update_body("f", "t", "TASK_RUNNING", status_uuid=b"u" * 16)
    with master.unchanged():
        await agent.checked(agent.envelope("UPDATES"), 400)
        too_many = agent.envelope("UPDATES")
        too_many["updates"] = [update] * (agent_link.MAX_UPDATES_PER_CALL + 1)
        status, text = await agent.call(too_many)
        assert (status, text) == (400, "At most 1000 updates per call, got 1001")


async def test_kill_while_disconnected_is_resent_on_reregistration(
    master: MasterHandle, agent: FakeAgent, scheduler: FakeScheduler
) -> None:
    _, fid, run = await launched(scheduler, agent, "doomed", checkpoint=True)
    agent_id = agent.agent_id or ""
    await agent.disconnect()
    await master.wait_until(
        lambda: master.state.agents[agent_id].status is AgentStatus.DISCONNECTED,
        "the agent to be disconnected",
    )
    assert (await scheduler.call("KILL", kill={"task_id": {"value": "doomed"}})).status == 202
    again = await agent.subscribe(agent_id=agent_id, tasks=[reported_task(run, agent_id)])
    assert again["type"] == "SUBSCRIBED"
    kill = (await agent.expect("KILL_TASK"))["kill_task"]
    assert kill == {"framework_id": {"value": fid}, "task_id": {"value": "doomed"}}


def subscribe_command(body: agent_link_pb2.Call.Subscribe, ip: str = "") -> commands_pb2.Command:
    return commands_pb2.Command.FromString(agent_link.subscribe_command(body, "s", ip))


def test_subscribe_commands_carry_everything_the_agent_reported() -> None:
    subscribe = agent_link_pb2.Call.Subscribe(version="1.11.0")
    subscribe.agent_info.hostname = "h"
    subscribe.agent_info.id.value = "S1"
    subscribe.capabilities.add(type=mesos_pb2.AgentInfo.Capability.MULTI_ROLE)
    for task_id, state in (("t1", mesos_pb2.TASK_RUNNING), ("t2", mesos_pb2.TASK_STAGING)):
        task = subscribe.tasks.add(name=task_id, state=state)
        task.task_id.value, task.framework_id.value, task.agent_id.value = task_id, "f1", "S1"
    subscribe.executors.add().executor_id.value = "e1"
    subscribe.frameworks.add(user="u", name="f").id.value = "f1"
    expected = commands_pb2.ReregisterAgent(
        agent_info=subscribe.agent_info,
        capabilities=subscribe.capabilities,
        version="1.11.0",
        stream_id="s",
        tasks=subscribe.tasks,
        executors=subscribe.executors,
        frameworks=subscribe.frameworks,
    )
    reregister = subscribe_command(subscribe)
    assert reregister.WhichOneof("body") == "reregister_agent"
    assert reregister.reregister_agent == expected
    expected.ip = "10.0.0.7"
    assert subscribe_command(subscribe, "10.0.0.7").reregister_agent == expected
    # The ip is the one the caller passes (the agent's own, else the connection's).
    subscribe.ip = "10.0.0.8"
    assert subscribe_command(subscribe, "10.0.0.7").reregister_agent == expected
    # A field a newer agent sends (unknown here) is not carried into the log.
    newer = subscribe.SerializeToString() + b"\xc2\x3e\x03abc"  # field 1000, 3 bytes
    subscribe = agent_link_pb2.Call.Subscribe.FromString(newer)
    assert subscribe_command(subscribe, "10.0.0.7").reregister_agent == expected
    assert b"\xc2\x3e\x03abc" not in agent_link.subscribe_command(subscribe, "s", "10.0.0.7")
    subscribe.agent_info.ClearField("id")
    register = subscribe_command(subscribe, "10.0.0.7")
    assert register.WhichOneof("body") == "register_agent"
    assert register.register_agent == commands_pb2.RegisterAgent(
        agent_info=subscribe.agent_info,
        capabilities=subscribe.capabilities,
        version="1.11.0",
        stream_id="s",
        ip="10.0.0.7",
    )
