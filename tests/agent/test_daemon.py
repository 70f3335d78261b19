"""The agent daemon in-process against an in-process master, with the real containerizer
and command executor: registration, task life cycle, acknowledgements, retries, re-registration."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from support.daemon_harness import (
    command_task,
    launch,
    next_update,
    options,
    running_agent,
    states_until,
    until,
)
from support.fake_scheduler import FakeScheduler, SchedulerStream, framework_info
from support.master_harness import MasterHandle, follower_master, running_master

from meseta.agent import endpoints, launch_config
from meseta.agent.containerizer import Containerizer
from meseta.agent.core import ExecutorKind, ExecutorRecord, FrameworkRecord
from meseta.agent.daemon import Agent, RecoveryError
from meseta.agent.flags import FlagError
from meseta.agent.main import agent_info
from meseta.api.http import HttpError
from meseta.log.testing import free_port
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.executor import executor_pb2

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def master() -> AsyncIterator[MasterHandle]:
    async with running_master() as handle:
        yield handle


@contextlib.asynccontextmanager
async def registered_agent(
    master: MasterHandle, work_dir: Path, *extra: str, port: int | None = None
) -> AsyncIterator[Agent]:
    """An agent of `master`, once it has registered."""
    async with running_agent(work_dir, [master.address], *extra, port=port) as agent:
        await until(lambda: agent.counters.registered, "registration")
        yield agent


async def registered_then_stopped(master: MasterHandle, work_dir: Path) -> tuple[int, str]:
    """An agent that registered and stopped: its port and id, for a successor agent on its
    checkpoint."""
    port = free_port()
    async with registered_agent(master, work_dir, port=port) as agent:
        return port, agent.agent_id


@contextlib.asynccontextmanager
async def subscribed_scheduler(
    master: MasterHandle,
) -> AsyncIterator[tuple[FakeScheduler, SchedulerStream]]:
    async with FakeScheduler(master.url) as scheduler:
        stream, _ = await scheduler.subscribe()
        yield scheduler, stream


async def test_registers_and_runs_a_command_task(master: MasterHandle, tmp_path: Path) -> None:
    async with (
        registered_agent(master, tmp_path) as agent,
        subscribed_scheduler(master) as (scheduler, stream),
    ):
        assert agent.info.id.value in master.state.agents
        await launch(scheduler, stream, ("t1", "echo hello"))
        statuses = await states_until(scheduler, stream, "TASK_FINISHED")
        assert [s["state"] for s in statuses] == [
            "TASK_STARTING",
            "TASK_RUNNING",
            "TASK_FINISHED",
        ]
        assert all(s["source"] == "SOURCE_EXECUTOR" for s in statuses)
        await until(lambda: not agent.updates.pending(), "every update acknowledged")
        await until(lambda: not agent.core.frameworks, "the executor to go away")
        assert agent.counters.updates_acknowledged == 3
        executor = agent.core.completed_frameworks[0].completed_executors[0]
        # As Mesos's agent: each executor update carries the container's id, pid and address,
        # the pid the containerizer knows (whatever the executor says of itself).
        for status in statuses:
            container = status["container_status"]
            assert container["container_id"] == {"value": executor.container_id}
            (network,) = container["network_infos"]  # (Mesos's JSON shows the default protocol)
            assert network["ip_addresses"] == [{"protocol": "IPv4", "ip_address": "127.0.0.1"}]
            assert container["executor_pid"] == executor.pid
        sandbox = Path(executor.directory)
        assert (sandbox / "stdout").read_text().strip().endswith("hello")
        # An executor that ends as it should says nothing of its own closed connection.
        assert "Connection to the agent failed" not in (sandbox / "stderr").read_text()


async def test_failed_and_killed_tasks(master: MasterHandle, tmp_path: Path) -> None:
    async with (
        registered_agent(master, tmp_path) as agent,
        subscribed_scheduler(master) as (scheduler, stream),
    ):
        await launch(scheduler, stream, ("fails", "exit 3"), ("sleeps", "sleep 30"))
        by_task: dict[str, list[str]] = {"fails": [], "sleeps": []}
        while by_task["fails"][-1:] != ["TASK_FAILED"] or by_task["sleeps"][-1:] != [
            "TASK_RUNNING"
        ]:
            status = await next_update(scheduler, stream)
            by_task[status["task_id"]["value"]].append(status["state"])
        reply = await scheduler.call(
            "KILL", kill={"task_id": {"value": "sleeps"}, "agent_id": status["agent_id"]}
        )
        assert reply.status == 202
        killed = await next_update(scheduler, stream)
        assert (killed["task_id"]["value"], killed["state"]) == ("sleeps", "TASK_KILLED")
        await until(lambda: not agent.core.frameworks, "both executors to go away")


async def test_updates_are_retried_until_acknowledged(master: MasterHandle, tmp_path: Path) -> None:
    async with (
        registered_agent(master, tmp_path) as agent,
        subscribed_scheduler(master) as (scheduler, stream),
    ):
        await launch(scheduler, stream, ("t1", "sleep 30"))
        first = await next_update(scheduler, stream, ack=False)
        assert first["state"] == "TASK_STARTING"
        # Not acknowledged: the agent resends the same update (same uuid), nothing newer.
        again = await next_update(scheduler, stream, ack=False, timeout_s=5)
        assert (again["state"], again["uuid"]) == ("TASK_STARTING", first["uuid"])
        assert agent.counters.updates_sent >= 2
        # Acknowledging lets the next one through, in order.
        await scheduler.call(
            "ACKNOWLEDGE",
            acknowledge={
                "agent_id": first["agent_id"],
                "task_id": first["task_id"],
                "uuid": first["uuid"],
            },
        )
        running = await next_update(scheduler, stream)
        while running["uuid"] == first["uuid"]:  # a retry already in flight
            running = await next_update(scheduler, stream)
        assert running["state"] == "TASK_RUNNING"


async def test_agent_restart_keeps_its_id_and_reports_its_tasks(
    master: MasterHandle, tmp_path: Path
) -> None:
    info = framework_info(checkpoint=True)
    port = free_port()
    async with FakeScheduler(master.url) as scheduler:
        stream, _ = await scheduler.subscribe(info)
        first = running_agent(tmp_path, [master.address], port=port, keep_executors=True)
        async with first as agent:
            await until(lambda: agent.counters.registered, "registration")
            agent_id = agent.agent_id
            await launch(scheduler, stream, ("long", "sleep 60"))
            await states_until(scheduler, stream, "TASK_RUNNING")
            await until(lambda: not agent.updates.pending(), "acknowledgements")
        # The agent is gone, its executor lives on (checkpointing framework).
        async with running_agent(tmp_path, [master.address], port=port) as again:
            await until(lambda: again.counters.registered, "re-registration")
            assert again.agent_id == agent_id
            executors = again.core.executors()
            assert [e.executor_id for e in executors] == ["long"]
            await until(lambda: executors[0].state.value == "RUNNING", "executor re-subscription")
            assert [t.state for t in again.core.tasks()] == [mesos_pb2.TASK_RUNNING]
            reply = await scheduler.call(
                "KILL", kill={"task_id": {"value": "long"}, "agent_id": {"value": agent_id}}
            )
            assert reply.status == 202
            killed = await states_until(scheduler, stream, "TASK_KILLED")
            assert killed[-1]["source"] == "SOURCE_EXECUTOR"


async def test_updates_survive_a_lost_leader(master: MasterHandle, tmp_path: Path) -> None:
    async with (
        registered_agent(master, tmp_path) as agent,
        subscribed_scheduler(master) as (scheduler, stream),
    ):
        agent_id = agent.agent_id
        await launch(scheduler, stream, ("t1", "sleep 30"))
        first = await next_update(scheduler, stream, ack=False)
        assert first["state"] == "TASK_STARTING"
        master.lose_leadership()
        await until(lambda: not agent.counters.registered, "the agent to notice")
        await master.regain_leadership(term=2)
        await until(lambda: agent.counters.registered, "re-registration")
        assert agent.agent_id == agent_id
        stream, _ = await scheduler.subscribe(framework_id=scheduler.framework_id)
        # Nothing was acknowledged: the agent delivers from the head again, in order.
        statuses = await states_until(scheduler, stream, "TASK_RUNNING")
        assert statuses[0]["state"] == "TASK_STARTING"
        assert statuses[0]["uuid"] == first["uuid"]


async def test_incompatible_reconfiguration_fails_recovery(
    master: MasterHandle, tmp_path: Path
) -> None:
    port, agent_id = await registered_then_stopped(master, tmp_path)
    grown = "--resources=cpus:4;mem:1024;disk:1024;ports:[31000-31010]"
    flags = options(tmp_path, [master.address], port, grown)
    equal = Agent(flags, agent_info(flags), Containerizer(tmp_path))
    try:
        with pytest.raises(RecoveryError, match="resources changed from 'cpus:2;"):
            await equal.recover()
    finally:
        await equal.stop()
    additive = "--reconfiguration_policy=additive"
    shrunk = "--resources=cpus:1;mem:1024;disk:1024;ports:[31000-31010]"
    flags = options(tmp_path, [master.address], port, shrunk, additive)
    smaller = Agent(flags, agent_info(flags), Containerizer(tmp_path))
    try:
        with pytest.raises(RecoveryError, match="do not contain"):
            await smaller.recover()
    finally:
        await smaller.stop()
    async with running_agent(tmp_path, [master.address], grown, additive, port=port) as again:
        await until(lambda: again.counters.registered, "re-registration")
        assert again.agent_id == agent_id
        assert master.state.agents[agent_id].info.resources == again.info.resources


async def test_finds_the_leader_through_a_follower_and_dead_addresses(
    master: MasterHandle, tmp_path: Path
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    follower = follower_master(leader_hostname=master.host, leader_port=master.port)
    async with follower as handle, running_agent(tmp_path, [dead, handle.address]) as agent:
        await until(lambda: agent.counters.registered, "registration via the redirect")
        assert agent.master_address == master.address
        assert agent.agent_id in master.state.agents


async def test_teardown_shuts_the_executors_down(master: MasterHandle, tmp_path: Path) -> None:
    async with (
        registered_agent(master, tmp_path) as agent,
        subscribed_scheduler(master) as (scheduler, stream),
    ):
        await launch(scheduler, stream, ("t1", "sleep 60"), ("t2", "sleep 60"))
        running: set[str] = set()
        while len(running) < 2:
            status = await next_update(scheduler, stream)
            if status["state"] == "TASK_RUNNING":
                running.add(status["task_id"]["value"])
        assert len(agent.containerizer.containers()) == 2
        reply = await scheduler.call("TEARDOWN")
        assert reply.status == 202, reply.text
        await until(lambda: not agent.containerizer.containers(), "executors to end", 15)
        await until(lambda: not agent.core.frameworks, "the framework to go")
        assert agent.updates.streams == {}


async def test_executor_api_refuses_bad_calls(master: MasterHandle, tmp_path: Path) -> None:
    async with running_agent(tmp_path, [master.address]) as agent:
        url = f"http://127.0.0.1:{agent.flags_.port}/api/v1/executor"
        ids = {"framework_id": {"value": "fw"}, "executor_id": {"value": "ex"}}
        update = {
            **ids,
            "type": "UPDATE",
            "update": {"status": {"task_id": {"value": "t"}, "state": "TASK_RUNNING",
                                  "source": "SOURCE_EXECUTOR",
                                  "uuid": base64.b64encode(uuid.uuid4().bytes).decode()}},
        }  # fmt: skip
        cases: list[tuple[dict[str, Any] | bytes, dict[str, str], int, str]] = [
            ({**ids, "type": "HEARTBEAT"}, {}, 202, ""),  # no id lookup for heartbeats
            (b"{", {}, 400, "Failed to parse body into JSON: "),
            ({"type": "SUBSCRIBE", "subscribe": {}}, {}, 400, "executor_id, framework_id"),
            ({**ids, "type": "SUBSCRIBE"}, {}, 400, "Expecting 'subscribe' to be present"),
            ({**ids, "type": "SUBSCRIBE", "subscribe": {}}, {}, 400, "Framework 'fw' not found"),
            (update, {}, 400, "Framework 'fw' not found"),
            ({**ids, "type": "UNKNOWN"}, {}, 501, "unknown call type"),
            ({**ids, "type": "HEARTBEAT"}, {"Content-Type": "text/plain"}, 415, "Content-Type"),
        ]
        bad_source = orjson.loads(orjson.dumps(update))
        bad_source["update"]["status"]["source"] = "SOURCE_AGENT"
        cases.append((bad_source, {}, 400, "invalid source"))
        staging = orjson.loads(orjson.dumps(update))
        staging["update"]["status"]["state"] = "TASK_STAGING"
        cases.append((staging, {}, 400, "Received TASK_STAGING from executor ex of framework fw"))
        no_uuid = orjson.loads(orjson.dumps(update))
        no_uuid["update"]["status"]["uuid"] = base64.b64encode(bytes(16)).decode()  # version 0
        cases.append((no_uuid, {}, 400, "Failed to validate Executor::Call: Not a valid UUID"))
        async with aiohttp.ClientSession() as session:
            for body, headers, code, text in cases:
                data = body if isinstance(body, bytes) else orjson.dumps(body)
                sent = {"Content-Type": "application/json", **headers}
                async with session.post(url, data=data, headers=sent) as response:
                    answer = await response.text()
                    assert (response.status, text in answer) == (code, True), (body, answer)
            async with session.get(url) as response:
                assert response.status == 405


async def test_executor_that_never_subscribes_times_out(
    master: MasterHandle, tmp_path: Path
) -> None:
    timeout = "--executor_registration_timeout=1secs"
    async with (
        registered_agent(master, tmp_path, timeout) as agent,
        subscribed_scheduler(master) as (scheduler, stream),
    ):
        offer = (await stream.expect("OFFERS", timeout_s=10))["offers"]["offers"][0]
        task = command_task(offer, "silent", "unused")
        del task["command"]
        task["executor"] = {
            "executor_id": {"value": "mute"},
            "command": {"value": "sleep 30"},  # never speaks the executor API
        }
        reply = await scheduler.call(
            "ACCEPT",
            accept={
                "offer_ids": [offer["id"]],
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}],
            },
        )
        assert reply.status == 202, reply.text
        status = await next_update(scheduler, stream)
        assert (status["state"], status["source"], status["reason"]) == (
            "TASK_FAILED", "SOURCE_AGENT", "REASON_EXECUTOR_REGISTRATION_TIMEOUT",
        )  # fmt: skip
        await until(lambda: not agent.containerizer.containers(), "the container to go")


async def mark_gone(master: MasterHandle, agent_id: str) -> None:
    gone = {"agent_id": {"value": agent_id}}
    body = orjson.dumps({"type": "MARK_AGENT_GONE", "mark_agent_gone": gone})
    headers = {"Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{master.url}/api/v1", data=body, headers=headers) as response,
    ):
        assert response.status == 200, await response.text()


async def test_marked_gone_the_agent_stops_and_forgets_its_id(
    master: MasterHandle, tmp_path: Path
) -> None:
    async with registered_agent(master, tmp_path) as agent:
        await mark_gone(master, agent.agent_id)
        await asyncio.wait_for(agent.shutdown_requested.wait(), 10)
        assert agent.checkpoints.load().info is None


async def operator_call(master: MasterHandle, body: dict[str, Any]) -> Any:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{master.url}/api/v1", data=orjson.dumps(body), headers=headers) as response,
    ):
        data = await response.read()
        assert response.status == 200, data
        return orjson.loads(data) if data else None


async def test_drain_agent_kills_its_tasks_within_the_cap_and_drains_it(
    master: MasterHandle, tmp_path: Path
) -> None:
    """Mesos's DRAIN_AGENT: the agent kills every task, capping its kill grace period at
    the drain's; the scheduler hears TASK_KILLED with REASON_AGENT_DRAINING; once that is
    acknowledged the agent is DRAINED (and stays deactivated) until reactivated."""
    command = "trap '' TERM; while true; do sleep 0.1; done"  # ignores SIGTERM
    async with (
        registered_agent(master, tmp_path) as agent,
        subscribed_scheduler(master) as (scheduler, stream),
    ):
        policy = {"kill_policy": {"grace_period": {"nanoseconds": 30 * 10**9}}}
        await launch(scheduler, stream, ("stubborn", command), extra=policy)
        await states_until(scheduler, stream, "TASK_RUNNING")
        drain = {"agent_id": {"value": agent.agent_id}, "max_grace_period": {"seconds": 1}}
        started = time.monotonic()
        await operator_call(master, {"type": "DRAIN_AGENT", "drain_agent": drain})
        killed = await next_update(scheduler, stream, timeout_s=20)
        assert (killed["state"], killed["reason"]) == ("TASK_KILLED", "REASON_AGENT_DRAINING")
        assert time.monotonic() - started < 15  # the 1 s cap, not the task's 30 s

        async def drain_info() -> Any:
            got = await operator_call(master, {"type": "GET_AGENTS"})
            (only,) = got["get_agents"]["agents"]
            return only

        for _ in range(100):
            described = await drain_info()
            if described.get("drain_info", {}).get("state") == "DRAINED":
                break
            await asyncio.sleep(0.1)
        assert described["drain_info"] == {
            "state": "DRAINED",
            "config": {"max_grace_period": {"nanoseconds": 10**9}, "mark_gone": False},
        }
        assert described["deactivated"] is True and described["active"] is False
        await until(lambda: agent.drain_config is None, "the agent to finish draining")
        await operator_call(master, {"type": "REACTIVATE_AGENT", "reactivate_agent": {
            "agent_id": {"value": agent.agent_id}}})  # fmt: skip
        described = await drain_info()
        assert "drain_info" not in described and described["active"] is True


async def test_tasks_that_arrive_while_draining_are_dropped(
    master: MasterHandle, tmp_path: Path
) -> None:
    async with registered_agent(master, tmp_path) as agent:
        agent.drain_config = mesos_pb2.DrainConfig()
        framework = mesos_pb2.FrameworkInfo(user="u", name="late")
        framework.id.value = "F-late"
        task = mesos_pb2.TaskInfo(name="late")
        task.task_id.value = "late"
        task.agent_id.value = agent.agent_id
        task.command.value = "true"
        await agent.run_tasks(framework, None, [task], group=False)
        (status,) = agent.updates.unacknowledged("F-late", "late")
        assert status.state == mesos_pb2.TASK_LOST  # TASK_DROPPED if partition-aware
        assert status.reason == mesos_pb2.TaskStatus.REASON_AGENT_DRAINING
        assert status.message == "Task was received while agent was already draining"
        assert "F-late" not in agent.core.frameworks and not agent.containerizer.containers()


async def test_shut_down_by_the_master_the_executors_get_their_grace_period(
    master: MasterHandle, tmp_path: Path
) -> None:
    """The master's SHUTDOWN (here: marked gone) shuts the frameworks down as Mesos's agent
    does: the executor gets SHUTDOWN and kills its task with SIGTERM, before the container
    is destroyed; the agent stops subscribing and exits."""
    marker, ready = tmp_path / "terminated", tmp_path / "trapping"
    command = (
        f"trap 'echo term > {marker}; exit 0' TERM; touch {ready}; while true; do sleep 0.1; done"
    )
    # The executor's grace is the agent's less a 2 s margin: with the tests' 2 s it would
    # have none, and SIGKILL could overtake the trap.
    grace = "--executor_shutdown_grace_period=5secs"
    async with (
        registered_agent(master, tmp_path / "agent", grace) as agent,
        subscribed_scheduler(master) as (scheduler, stream),
    ):
        await launch(scheduler, stream, ("graceful", command))
        await states_until(scheduler, stream, "TASK_RUNNING")
        # RUNNING is sent once the shell is started, maybe before it has set its trap.
        await until(ready.exists, "the trap to be set")
        await mark_gone(master, agent.agent_id)
        await asyncio.wait_for(agent.shutdown_requested.wait(), 20)
        # The trap's `echo` may still be writing when the executor's exit is seen.
        await until(lambda: marker.exists() and marker.read_text() == "term\n", "the trap")
        assert agent.link is not None and agent.link.done()


async def test_marked_gone_while_down_the_agent_stops_when_it_comes_back(
    master: MasterHandle, tmp_path: Path
) -> None:
    port, agent_id = await registered_then_stopped(master, tmp_path)
    await mark_gone(master, agent_id)
    # Restarted on its checkpoint, it re-registers under its old id; like a Mesos agent
    # the master shuts down, it stops rather than retrying, and forgets the id.
    async with running_agent(tmp_path, [master.address], port=port) as again:
        assert again.agent_id == agent_id
        await asyncio.wait_for(again.shutdown_requested.wait(), 10)
        assert again.checkpoints.load().info is None
        assert not again.counters.registered


async def test_teardown_destroys_an_unresponsive_executor_after_the_grace_period(
    master: MasterHandle, tmp_path: Path
) -> None:
    async with (
        registered_agent(master, tmp_path) as agent,
        subscribed_scheduler(master) as (scheduler, stream),
    ):
        offer = (await stream.expect("OFFERS", timeout_s=10))["offers"]["offers"][0]
        task = command_task(offer, "silent", "unused")
        del task["command"]
        # ignores SIGTERM (an ignored signal stays ignored across exec, so sleep does too)
        stubborn = {"value": "trap '' TERM; echo ready; sleep 30"}
        task["executor"] = {"executor_id": {"value": "mute"}, "command": stubborn}
        operations = [{"type": "LAUNCH", "launch": {"task_infos": [task]}}]
        accept = {"offer_ids": [offer["id"]], "operations": operations}
        assert (await scheduler.call("ACCEPT", accept=accept)).status == 202
        await until(lambda: agent.core.executors(), "the executor to start")
        stdout = Path(agent.core.executors()[0].directory) / "stdout"
        await until(lambda: "ready" in stdout.read_text(errors="replace") if stdout.exists()
                    else False, "the executor to ignore SIGTERM")  # fmt: skip
        started = time.monotonic()
        assert (await scheduler.call("TEARDOWN")).status == 202
        await until(lambda: not agent.containerizer.containers(), "the executor to go", 10)
        # --executor_shutdown_grace_period=2secs: SIGTERM, then SIGKILL after the grace
        assert 2 <= time.monotonic() - started < 6
        await until(lambda: not agent.core.frameworks, "the framework to go")


async def test_restart_loses_undelivered_tasks_and_silent_executors(
    master: MasterHandle, tmp_path: Path
) -> None:
    port = free_port()
    async with FakeScheduler(master.url) as scheduler:
        stream, _ = await scheduler.subscribe(framework_info(checkpoint=True))
        first = running_agent(tmp_path, [master.address], port=port, keep_executors=True)
        async with first as agent:
            await until(lambda: agent.counters.registered, "registration")
            mute = {"executor_id": {"value": "mute"}, "command": {"value": "sleep 30"}}
            await launch(scheduler, stream, ("waits", ""), executor=mute)
            await until(lambda: agent.containerizer.containers(), "the executor to start")
        # The executor never subscribes: the restarted agent reports the undelivered task lost
        # and destroys the executor after --executor_reregistration_timeout.
        timeout = "--executor_reregistration_timeout=2secs"
        async with running_agent(tmp_path, [master.address], timeout, port=port) as again:
            status = await next_update(scheduler, stream)
            assert (status["state"], status["source"], status["reason"]) == (
                "TASK_LOST", "SOURCE_AGENT", "REASON_AGENT_RESTARTED",
            )  # fmt: skip
            await until(lambda: not again.containerizer.containers(), "the executor to go", 10)
            await until(lambda: not again.core.frameworks, "the framework to go")


ECHO_EXECUTOR = """
import time
from pymesos import Executor, MesosExecutorDriver, decode_data, encode_data

class Echo(Executor):
    def launchTask(self, driver, task):
        driver.sendStatusUpdate({"task_id": task["task_id"], "state": "TASK_RUNNING",
                                 "timestamp": time.time()})
        driver.sendFrameworkMessage(encode_data(b"hello"))

    def frameworkMessage(self, driver, message):
        driver.sendFrameworkMessage(encode_data(b"echo:" + decode_data(message)))

    def killTask(self, driver, task_id):
        driver.sendStatusUpdate({"task_id": task_id, "state": "TASK_KILLED",
                                 "timestamp": time.time()})

MesosExecutorDriver(Echo(), use_addict=True).run()
"""


async def test_custom_executor_messages_both_ways(master: MasterHandle, tmp_path: Path) -> None:
    pytest.importorskip("pymesos", reason="pymesos is not installed")
    script = tmp_path / "echo_executor.py"
    script.write_text(ECHO_EXECUTOR)
    async with (
        registered_agent(master, tmp_path / "agent") as agent,
        subscribed_scheduler(master) as (scheduler, stream),
    ):
        command = {"value": sys.executable, "shell": False,
                   "arguments": [sys.executable, str(script)]}  # fmt: skip
        echo = {"executor_id": {"value": "echo"}, "command": command}
        await launch(scheduler, stream, ("talks", ""), executor=echo)
        running = await next_update(scheduler, stream, timeout_s=20)
        assert running["state"] == "TASK_RUNNING"
        hello = (await stream.expect("MESSAGE", timeout_s=10))["message"]
        assert (hello["executor_id"]["value"], base64.b64decode(hello["data"])) == (
            "echo", b"hello",
        )  # fmt: skip
        reply = await scheduler.call(
            "MESSAGE",
            message={"agent_id": running["agent_id"], "executor_id": {"value": "echo"},
                     "data": base64.b64encode(b"ping").decode()},
        )  # fmt: skip
        assert reply.status == 202, reply.text
        echoed = (await stream.expect("MESSAGE", timeout_s=10))["message"]
        assert base64.b64decode(echoed["data"]) == b"echo:ping"
        assert agent.counters.valid_framework_messages == 2
        kill = {"task_id": {"value": "talks"}, "agent_id": running["agent_id"]}
        assert (await scheduler.call("KILL", kill=kill)).status == 202
        assert (await next_update(scheduler, stream))["state"] == "TASK_KILLED"


async def test_shutdown_reaches_a_command_executor_and_only_own_executors_give_failure(
    master: MasterHandle, tmp_path: Path
) -> None:
    """SHUTDOWN names a command executor by its task's id (the master does not track it, and
    Mesos forwards it anyway): the task ends KILLED. As Mesos's agent, no FAILURE follows for
    a command executor; a custom executor that exits before its task reached it gets FAILURE,
    and its queued task TASK_FAILED (Mesos's sendExecutorTerminatedStatusUpdate)."""
    async with (
        registered_agent(master, tmp_path) as agent,
        subscribed_scheduler(master) as (scheduler, stream),
    ):
        await launch(scheduler, stream, ("sleeps", "sleep 30"))
        running = (await states_until(scheduler, stream, "TASK_RUNNING"))[-1]
        shutdown = {"executor_id": {"value": "sleeps"}, "agent_id": running["agent_id"]}
        assert (await scheduler.call("SHUTDOWN", shutdown=shutdown)).status == 202
        assert (await next_update(scheduler, stream))["state"] == "TASK_KILLED"

        quits = {"executor_id": {"value": "quits"}, "command": {"value": "exit 0"}}
        await launch(scheduler, stream, ("queued", ""), executor=quits)
        failed = await next_update(scheduler, stream)
        assert (failed["state"], failed["reason"]) == ("TASK_FAILED", "REASON_EXECUTOR_TERMINATED")
        failure = (await stream.expect("FAILURE", timeout_s=10))["failure"]
        assert failure["executor_id"] == {"value": "quits"}
        await until(lambda: not agent.core.frameworks, "both executors to go away")
        failures = [e["failure"] for e in stream.history if e["type"] == "FAILURE"]
        assert failures == [failure]  # none for the command executor "sleeps"


async def test_executor_calls_wait_for_recovery(master: MasterHandle, tmp_path: Path) -> None:
    flags = options(tmp_path, [master.address], free_port())
    agent = Agent(flags, agent_info(flags), Containerizer(tmp_path))
    call = executor_pb2.Call(type=executor_pb2.Call.MESSAGE)
    call.framework_id.value, call.executor_id.value = "fw", "ex"
    call.message.data = b"x"
    try:
        with pytest.raises(HttpError) as refused:
            await agent.executor_message(call)
        assert (refused.value.status, refused.value.message) == (
            503, "Agent has not finished recovery",
        )  # fmt: skip
        # Still refused while the containerizer re-attaches to the executors: a subscription
        # accepted then would be reset to REGISTERING by the rest of recovery and time out.
        attaching = asyncio.Event()
        original = agent.containerizer.recover

        async def slow_recover(*args: Any) -> Any:
            attaching.set()
            await asyncio.sleep(0.2)
            return await original(*args)

        agent.containerizer.recover = slow_recover  # type: ignore[method-assign]
        recovering = asyncio.get_running_loop().create_task(agent.recover())
        await asyncio.wait_for(attaching.wait(), 10)
        with pytest.raises(HttpError, match="Agent has not finished recovery"):
            await agent.executor_message(call)
        assert await asyncio.wait_for(recovering, 10)
        with pytest.raises(HttpError, match="Framework 'fw' not found"):
            await agent.executor_message(call)
    finally:
        await agent.stop()


def test_executor_environment_follows_the_contract(tmp_path: Path) -> None:
    flags = options(tmp_path, ["127.0.0.1:5050"], 5051)
    framework = FrameworkRecord(mesos_pb2.FrameworkInfo(user="", name="f", checkpoint=True))
    framework.info.id.value = "fw"
    info = mesos_pb2.ExecutorInfo()
    info.executor_id.value = "ex"
    executor = ExecutorRecord(info, "fw", ExecutorKind.CUSTOM, "c1", "/sandbox/run")
    env = launch_config.environment(flags, "S1", framework, executor)
    assert env == {
        "MESOS_FRAMEWORK_ID": "fw",
        "MESOS_EXECUTOR_ID": "ex",
        "MESOS_AGENT_ENDPOINT": "127.0.0.1:5051",
        "MESOS_SLAVE_PID": "slave(1)@127.0.0.1:5051",
        "MESOS_SLAVE_ID": "S1",
        "MESOS_DIRECTORY": "/sandbox/run",
        "MESOS_SANDBOX": "/sandbox/run",
        "MESOS_CHECKPOINT": "1",
        "MESOS_HTTP_COMMAND_EXECUTOR": "1",
        "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "2secs",
        "LIBPROCESS_PORT": "0",
        "MESOS_RECOVERY_TIMEOUT": "15mins",
        "MESOS_SUBSCRIPTION_BACKOFF_MAX": "2secs",  # Mesos's constant, not the flag
    }
    info.shutdown_grace_period.nanoseconds = 7_500_000_000
    framework.info.checkpoint = False
    env = launch_config.environment(flags, "S1", framework, executor)
    assert env["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"] == "7.5secs"  # as stout writes it
    assert env["MESOS_CHECKPOINT"] == "0" and "MESOS_RECOVERY_TIMEOUT" not in env


def test_executor_environment_variables_come_under_the_mesos_ones(tmp_path: Path) -> None:
    given = '{"PATH": "/opt/bin:/bin", "LANG": "C.UTF-8", "MESOS_SLAVE_ID": "theirs"}'
    flag = f"--executor_environment_variables={given}"
    flags = options(tmp_path, ["127.0.0.1:5050"], 5051, flag)
    framework = FrameworkRecord(mesos_pb2.FrameworkInfo(user="", name="f"))
    framework.info.id.value = "fw"
    info = mesos_pb2.ExecutorInfo()
    info.executor_id.value = "ex"
    executor = ExecutorRecord(info, "fw", ExecutorKind.CUSTOM, "c1", "/sandbox/run")
    env = launch_config.environment(flags, "S1", framework, executor)
    assert env["PATH"] == "/opt/bin:/bin" and env["LANG"] == "C.UTF-8"
    assert env["MESOS_SLAVE_ID"] == "S1"  # the contract's variables win
    shown = flags.as_mesos()["executor_environment_variables"]
    assert orjson.loads(shown) == orjson.loads(given)
    unset = options(tmp_path, ["127.0.0.1:5050"], 5051)
    assert "LANG" not in launch_config.environment(unset, "S1", framework, executor)
    assert "executor_environment_variables" not in unset.as_mesos()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"A": 1}', "`executor_environment_variables` must only contain string values"),
        ('["A"]', "'executor_environment_variables': expected a JSON object"),
        ("A=1", "'executor_environment_variables': not JSON"),
    ],
)
def test_bad_executor_environment_variables_are_refused(
    tmp_path: Path, value: str, message: str
) -> None:
    with pytest.raises(FlagError, match=re.escape(message)):
        options(tmp_path, ["127.0.0.1:5050"], 5051, f"--executor_environment_variables={value}")


async def test_an_ended_executors_sandbox_is_garbage_collected(
    master: MasterHandle, tmp_path: Path
) -> None:
    gc_flags = ("--gc_delay=200ms", "--disk_watch_interval=100ms")
    async with (
        registered_agent(master, tmp_path, *gc_flags) as agent,
        subscribed_scheduler(master) as (scheduler, stream),
    ):
        await launch(scheduler, stream, ("t1", "echo hello"))
        await states_until(scheduler, stream, "TASK_FINISHED")
        await until(lambda: not agent.core.frameworks, "the executor to go away")
        completed = agent.core.completed_frameworks[0].completed_executors[0]
        sandbox = Path(completed.directory)
        # executors/<id> goes with its only run (just after it: the tree goes in a thread)
        await until(lambda: not sandbox.parents[1].exists(), "the executor's directory to go")
        assert not sandbox.exists()
        metrics = endpoints.metrics(agent)
        assert metrics["gc/path_removals_succeeded"] == 1.0
        assert metrics["gc/path_removals_pending"] == 0.0
        assert agent.flags["gc_delay"] == "200ms"


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--gc_disk_headroom=1.5", "Invalid gc_disk_headroom: must be within [0.0, 1.0]"),
        ("--gc_disk_headroom=lots", "'gc_disk_headroom': 'lots' is not a number"),
        ("--disk_watch_interval=0secs", "'disk_watch_interval': must be positive"),
        ("--gc_delay=soon", "Failed to load flag 'gc_delay'"),
    ],
)
def test_bad_gc_flags_are_refused(tmp_path: Path, flag: str, message: str) -> None:
    with pytest.raises(FlagError, match=re.escape(message)):
        options(tmp_path, ["127.0.0.1:5050"], 5051, flag)


async def test_a_container_that_cannot_launch_fails_its_task_and_is_counted(
    master: MasterHandle, tmp_path: Path
) -> None:
    async with (
        registered_agent(master, tmp_path) as agent,
        subscribed_scheduler(master) as (scheduler, stream),
    ):
        command = {"value": "true", "uris": [{"value": str(tmp_path / "no-such-file")}]}
        await launch(scheduler, stream, ("t1", "true"), extra={"command": command})
        (failed,) = await states_until(scheduler, stream, "TASK_FAILED")
        assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
        assert "no-such-file" in failed["message"]
        metrics = endpoints.metrics(agent)
        assert metrics["slave/container_launch_errors"] == 1.0
        assert metrics["containerizer/fetcher/task_fetches_failed"] == 1.0


@pytest.mark.parametrize(
    ("container", "message"),
    [
        (
            {"type": "DOCKER", "docker": {"image": "nginx"}},
            "None of the enabled containerizers (mesos) could create a container",
        ),
        (
            {"type": "MESOS", "mesos": {"image": {"type": "DOCKER", "docker": {"name": "nginx"}}}},
            "Failed to launch container: Unsupported container image type: DOCKER",
        ),
        (  # msh -interactive asks for one, then attaches to it
            {"type": "MESOS", "tty_info": {"window_size": {"rows": 24, "columns": 80}}},
            "a TTY (ContainerInfo.tty_info) needs the I/O switchboard",
        ),
    ],
)
async def test_containers_this_agent_cannot_make_fail_rather_than_run_on_the_host(
    master: MasterHandle, tmp_path: Path, container: dict[str, Any], message: str
) -> None:
    async with (
        registered_agent(master, tmp_path) as agent,
        subscribed_scheduler(master) as (scheduler, stream),
    ):
        touch = ("t1", f"touch {tmp_path / 'ran'}")
        await launch(scheduler, stream, touch, extra={"container": container})
        (failed,) = await states_until(scheduler, stream, "TASK_FAILED")
        assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
        assert message in failed["message"]
        assert not (tmp_path / "ran").exists()
        assert endpoints.metrics(agent)["slave/container_launch_errors"] == 1.0


async def test_the_advertised_ip_names_the_agent_everywhere(
    master: MasterHandle, tmp_path: Path
) -> None:
    async with registered_agent(master, tmp_path, "--advertise_ip=127.0.0.9") as agent:
        # The master's books and pid, the agent's own pid, and the tasks' network_infos.
        assert master.state.agents[agent.agent_id].ip == "127.0.0.9"
        assert endpoints.pid(agent) == f"slave(1)@127.0.0.9:{agent.flags_.port}"
        assert agent.flags["advertise_ip"] == "127.0.0.9"
        status = mesos_pb2.ContainerStatus()
        executor = ExecutorRecord(mesos_pb2.ExecutorInfo(), "fw", ExecutorKind.CUSTOM, "c1", "/")
        agent._add_container_status(status, executor)
        assert [a.ip_address for n in status.network_infos for a in n.ip_addresses] == ["127.0.0.9"]
    everywhere = options(tmp_path, ["127.0.0.1:5050"], 5051, "--ip=0.0.0.0")
    assert everywhere.advertised_ip is None  # the master takes the connection's address
    assert everywhere.advertised_host == socket.gethostname()  # not "0.0.0.0"
    with pytest.raises(FlagError, match="'advertise_ip': 'a1' is not an IP address"):
        options(tmp_path, ["127.0.0.1:5050"], 5051, "--advertise_ip=a1")


async def test_a_drain_survives_an_agent_restart(master: MasterHandle, tmp_path: Path) -> None:
    """Checkpointed, as Mesos checkpoints it: an agent restarted in the middle of a drain
    drains on at once, and forgets the drain once nothing runs."""
    info = framework_info(checkpoint=True)
    port = free_port()
    async with FakeScheduler(master.url) as scheduler:
        stream, _ = await scheduler.subscribe(info)
        first = running_agent(tmp_path, [master.address], port=port, keep_executors=True)
        async with first as agent:
            await until(lambda: agent.counters.registered, "registration")
            await launch(scheduler, stream, ("long", "sleep 60"))
            await states_until(scheduler, stream, "TASK_RUNNING")
            await until(lambda: not agent.updates.pending(), "acknowledgements")
            # As if it died right after the master's DRAIN, before killing anything.
            agent.checkpoints.write_drain(mesos_pb2.DrainConfig())
        async with running_agent(tmp_path, [master.address], port=port) as again:
            killed = await states_until(scheduler, stream, "TASK_KILLED")
            assert killed[-1]["reason"] == "REASON_AGENT_DRAINING"
            await until(lambda: again.drain_config is None, "the drain to finish")
            assert again.checkpoints.load().drain is None
