"""Checks and health checks run by our executors (real processes, real containers), probing
servers this test runs on loopback."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from support.fake_executor_api import (
    FakeExecutorApi,
    command_task,
    kill,
    launch,
    launch_group,
    start_executor,
)

from meseta.agent import launcher
from meseta.agent.checker import CommandContext, ProbeFailed, perform
from meseta.agent.checks import CheckInfo, Probe
from meseta.agent.containerizer import Containerizer
from meseta.proto.mesos.v1 import mesos_pb2

HealthCheck = mesos_pb2.HealthCheck
Reason = mesos_pb2.TaskStatus.Reason
HEALTH_UPDATED = Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED
CHECK_UPDATED = Reason.REASON_TASK_CHECK_STATUS_UPDATED
FAST = {"delay_seconds": 0.0, "interval_seconds": 0.2, "timeout_seconds": 5.0}


class Switch:
    """A loopback HTTP server whose answer the test flips."""

    def __init__(self) -> None:
        self.status = 200
        self.requests = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _health(self, _: web.Request) -> web.Response:
        self.requests += 1
        return web.Response(status=self.status)


@pytest.fixture
async def api() -> AsyncIterator[FakeExecutorApi]:
    async with FakeExecutorApi(executor_id="task-1") as fake:
        yield fake


@pytest.fixture
async def switch() -> AsyncIterator[Switch]:
    server = Switch()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def http_health(port: int, *, failures: int = 2, grace_s: float = 0.0) -> mesos_pb2.HealthCheck:
    check = HealthCheck(
        type=HealthCheck.HTTP, consecutive_failures=failures, grace_period_seconds=grace_s, **FAST
    )
    check.http.port = port
    check.http.path = "/health"
    return check


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def next_update_where(
    api: FakeExecutorApi, wanted: object, timeout_s: float = 20.0
) -> list[mesos_pb2.TaskStatus]:
    """Updates up to and including the first one `wanted(update)` accepts."""
    seen: list[mesos_pb2.TaskStatus] = []
    deadline = time.monotonic() + timeout_s
    while not seen or not wanted(seen[-1]):  # type: ignore[operator]
        seen.append(await api.next_update(max(deadline - time.monotonic(), 0.01)))
    return seen


async def test_an_http_health_check_reports_health_and_kills_after_consecutive_failures(
    containerizer: Containerizer, tmp_path: Path, switch: Switch
) -> None:
    killing = mesos_pb2.FrameworkInfo.Capability.TASK_KILLING_STATE
    async with FakeExecutorApi(executor_id="task-1", capabilities=(killing,)) as api:
        await start_executor("meseta.agent.command_executor", api, containerizer, tmp_path)
        task = command_task("task-1", "sleep 60")
        task.health_check.CopyFrom(http_health(switch.port))
        await api.send(launch(task))
        updates = await next_update_where(api, lambda u: u.HasField("healthy"))
        assert [mesos_pb2.TaskState.Name(u.state) for u in updates] == [
            "TASK_STARTING",
            "TASK_RUNNING",
            "TASK_RUNNING",
        ]
        healthy = updates[-1]
        assert healthy.healthy and healthy.reason == HEALTH_UPDATED
        assert healthy.uuid != updates[1].uuid  # (tests/unit/test_checks.py: what it keeps)
        requests = switch.requests
        await asyncio.sleep(0.6)
        assert switch.requests > requests  # still probing, but a steady health is not re-sent
        assert api.updates.empty()
        switch.status = 503
        updates = await api.updates_until_terminal()
        states = [mesos_pb2.TaskState.Name(u.state) for u in updates]
        assert states == ["TASK_RUNNING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED"]
        assert [u.healthy for u in updates[:2]] == [False, False]
        assert all(u.reason == HEALTH_UPDATED for u in updates[:2])
        killed = updates[-1]
        assert killed.HasField("healthy") and not killed.healthy
        await asyncio.sleep(0.5)
        assert api.updates.empty()  # nothing after the terminal update


async def test_a_health_check_recovers_before_the_limit_and_the_task_runs_on(
    api: FakeExecutorApi, containerizer: Containerizer, tmp_path: Path, switch: Switch
) -> None:
    await start_executor("meseta.agent.command_executor", api, containerizer, tmp_path)
    task = command_task("task-1", "sleep 60")
    task.health_check.CopyFrom(http_health(switch.port, failures=100))
    await api.send(launch(task))
    await next_update_where(api, lambda u: u.HasField("healthy") and u.healthy)
    switch.status = 500
    unhealthy = await next_update_where(api, lambda u: u.HasField("healthy"))
    assert not unhealthy[-1].healthy
    switch.status = 200
    recovered = await next_update_where(api, lambda u: u.HasField("healthy") and u.healthy)
    assert all(u.state == mesos_pb2.TASK_RUNNING for u in recovered)
    await api.send(kill("task-1"))
    updates = await api.updates_until_terminal()
    assert updates[-1].state == mesos_pb2.TASK_KILLED
    assert not updates[-1].HasField("healthy")  # killed by the framework, not by its health


async def test_a_command_check_reports_its_exit_code_on_every_change(
    api: FakeExecutorApi, containerizer: Containerizer, tmp_path: Path
) -> None:
    _, sandbox = await start_executor("meseta.agent.command_executor", api, containerizer, tmp_path)
    task = command_task("task-1", "sleep 60", environment={"MARKER": "ok"})
    task.check.type = CheckInfo.COMMAND
    # The check sees the task's sandbox and environment.
    task.check.command.command.value = 'test -f "$MARKER"'
    for name, value in FAST.items():
        setattr(task.check, name, value)
    await api.send(launch(task))
    starting, running = await api.next_update(), await api.next_update()
    empty = mesos_pb2.CheckStatusInfo(type=CheckInfo.COMMAND)
    empty.command.SetInParent()
    assert starting.check_status == empty and running.check_status == empty
    failed = await api.next_update()
    assert failed.reason == CHECK_UPDATED and failed.state == mesos_pb2.TASK_RUNNING
    assert failed.check_status.command.exit_code == 1
    (sandbox / "ok").touch()
    passed = await api.next_update()
    assert passed.check_status.command.HasField("exit_code")
    assert passed.check_status.command.exit_code == 0
    await asyncio.sleep(0.6)
    assert api.updates.empty()  # unchanged results are not reported
    await api.send(kill("task-1"))
    updates = await api.updates_until_terminal()
    assert [u.state for u in updates] == [mesos_pb2.TASK_KILLED]
    assert updates[0].check_status == empty  # a fresh status, as Mesos builds terminal ones


async def test_the_default_executor_kills_an_unhealthy_task_and_its_group(
    api: FakeExecutorApi, containerizer: Containerizer, tmp_path: Path
) -> None:
    await start_executor("meseta.agent.default_executor", api, containerizer, tmp_path)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        port = listener.getsockname()[1]
        checked = command_task("checked", "sleep 60")
        checked.health_check.CopyFrom(HealthCheck(type=HealthCheck.TCP, **FAST))
        checked.health_check.tcp.port = port
        checked.health_check.consecutive_failures = 1
        checked.health_check.grace_period_seconds = 0
        await api.send(launch_group(checked, command_task("sibling", "sleep 60")))
        updates = await next_update_where(api, lambda u: u.HasField("healthy"))
        assert updates[-1].task_id.value == "checked" and updates[-1].healthy
    finally:
        listener.close()  # connections are refused from now on
    updates = await api.updates_until_terminal(2)
    final = {u.task_id.value: u for u in updates if u.state == mesos_pb2.TASK_KILLED}
    assert set(final) == {"checked", "sibling"}
    assert not final["checked"].healthy and not final["sibling"].HasField("healthy")
    unhealthy = [u for u in updates if u.HasField("healthy") and u.state == mesos_pb2.TASK_RUNNING]
    assert [u.healthy for u in unhealthy] == [False]


async def test_a_command_probe_that_times_out_fails_and_leaves_no_process(tmp_path: Path) -> None:
    command = mesos_pb2.CommandInfo(value="sleep 30 & echo $! > pid; wait")
    probe = Probe(CheckInfo.COMMAND, 0.0, 1.0, 0.5, command=command)
    context = CommandContext(str(tmp_path), dict(os.environ))
    started = time.monotonic()
    with pytest.raises(ProbeFailed, match=r"COMMAND check timed out after 0\.5s"):
        await perform(probe, context)
    assert time.monotonic() - started < 10
    pid = int((tmp_path / "pid").read_text())
    deadline = time.monotonic() + 10
    while launcher.is_alive(pid, launcher.start_time(pid) or 0) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not launcher.is_alive(pid, launcher.start_time(pid) or 0)


async def test_tcp_and_http_probes_tell_refused_from_answered(switch: Switch) -> None:
    context = CommandContext("/", {})
    refused = await perform(Probe(CheckInfo.TCP, 0, 1, 5.0, port=free_port()), context)
    assert refused.HasField("tcp") and not refused.tcp.succeeded
    answered = await perform(Probe(CheckInfo.TCP, 0, 1, 5.0, port=switch.port), context)
    assert answered.tcp.succeeded
    switch.status = 404
    probe = Probe(CheckInfo.HTTP, 0, 1, 5.0, port=switch.port, path="/health")
    assert (await perform(probe, context)).http.status_code == 404
    with pytest.raises(ProbeFailed, match=r"GET http://127\.0\.0\.1:"):
        await perform(Probe(CheckInfo.HTTP, 0, 1, 5.0, port=free_port()), context)
