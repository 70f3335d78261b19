"""The default executor as a real process in a real container, against a scripted agent."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.fake_executor_api import (
    SHUTDOWN,
    FakeExecutorApi,
    command_task,
    kill,
    launch_group,
    start_executor,
)

from meseta.agent.containerizer import Containerizer, Launched
from meseta.proto.mesos.v1 import mesos_pb2

MODULE = "meseta.agent.default_executor"


@pytest.fixture
async def api() -> AsyncIterator[FakeExecutorApi]:
    async with FakeExecutorApi(executor_id="default") as fake:
        yield fake


async def start(
    api: FakeExecutorApi, containerizer: Containerizer, tmp_path: Path
) -> tuple[Launched, Path]:
    return await start_executor(MODULE, api, containerizer, tmp_path)


def by_task(updates: list[mesos_pb2.TaskStatus]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for update in updates:
        found.setdefault(update.task_id.value, []).append(mesos_pb2.TaskState.Name(update.state))
    return found


def last(updates: list[mesos_pb2.TaskStatus], task_id: str) -> mesos_pb2.TaskStatus:
    return [u for u in updates if u.task_id.value == task_id][-1]


async def test_each_task_runs_in_its_own_sandbox_and_the_executor_ends_after_the_group(
    api: FakeExecutorApi, containerizer: Containerizer, tmp_path: Path
) -> None:
    launched, sandbox = await start(api, containerizer, tmp_path)
    await api.send(
        launch_group(
            command_task("a", "echo a in $MESOS_SANDBOX; pwd >&2"),
            command_task("b", "sleep 0.3; echo b"),
        )
    )
    updates = await api.updates_until_terminal(2)
    assert by_task(updates) == {
        "a": ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"],
        "b": ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"],
    }
    assert last(updates, "a").message == "Command exited with status 0"
    assert all(u.source == mesos_pb2.TaskStatus.SOURCE_EXECUTOR for u in updates)
    task_a = sandbox / "tasks" / "a"
    assert (task_a / "stdout").read_text() == f"a in {task_a}\n"
    assert (task_a / "stderr").read_text() == f"{task_a}\n"
    assert (sandbox / "tasks" / "b" / "stdout").read_text() == "b\n"
    termination = await asyncio.wait_for(containerizer.wait(launched.container_id), 20)
    assert termination.status == 0


async def test_a_failing_task_kills_the_rest_of_its_group(
    api: FakeExecutorApi, containerizer: Containerizer, tmp_path: Path
) -> None:
    await start(api, containerizer, tmp_path)
    await api.send(
        launch_group(command_task("bad", "sleep 0.3; exit 2"), command_task("long", "sleep 60"))
    )
    updates = await api.updates_until_terminal(2)
    assert by_task(updates)["bad"] == ["TASK_STARTING", "TASK_RUNNING", "TASK_FAILED"]
    assert last(updates, "bad").message == "Command exited with status 2"
    assert by_task(updates)["long"] == ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLED"]
    assert last(updates, "long").message == "Command terminated with signal Terminated"


async def test_killing_one_task_kills_its_group_but_not_other_groups(
    containerizer: Containerizer, tmp_path: Path
) -> None:
    killing = mesos_pb2.FrameworkInfo.Capability.TASK_KILLING_STATE
    async with FakeExecutorApi(executor_id="default", capabilities=(killing,)) as api:
        launched, _ = await start(api, containerizer, tmp_path)
        await api.send(launch_group(command_task("x1", "sleep 60"), command_task("x2", "sleep 60")))
        await api.send(launch_group(command_task("y", "sleep 60", grace_s=0.2)))
        started = [await api.next_update() for _ in range(6)]  # STARTING, then RUNNING
        running = [u for u in started if u.state == mesos_pb2.TASK_RUNNING]
        assert {u.task_id.value for u in running} == {"x1", "x2", "y"}
        await api.send(kill("x1"))
        updates = await api.updates_until_terminal(2)
        assert by_task(updates) == {
            "x1": ["TASK_KILLING", "TASK_KILLED"],
            "x2": ["TASK_KILLING", "TASK_KILLED"],
        }
        # The other group still runs; a third group is accepted too.
        await api.send(launch_group(command_task("z", "true")))
        updates = await api.updates_until_terminal(1)
        assert by_task(updates) == {"z": ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]}
        await api.send(kill("y"))
        updates = await api.updates_until_terminal(1)
        assert by_task(updates) == {"y": ["TASK_KILLING", "TASK_KILLED"]}
        termination = await asyncio.wait_for(containerizer.wait(launched.container_id), 20)
        assert termination.status == 0


async def test_shutdown_kills_every_task(
    api: FakeExecutorApi, containerizer: Containerizer, tmp_path: Path
) -> None:
    launched, _ = await start(api, containerizer, tmp_path)
    await api.send(launch_group(command_task("a", "sleep 60"), command_task("b", "sleep 60")))
    started = [await api.next_update() for _ in range(4)]  # STARTING, then RUNNING
    assert [u.state for u in started].count(mesos_pb2.TASK_RUNNING) == 2
    await api.send(SHUTDOWN)
    updates = await api.updates_until_terminal(2)
    assert by_task(updates) == {"a": ["TASK_KILLED"], "b": ["TASK_KILLED"]}
    termination = await asyncio.wait_for(containerizer.wait(launched.container_id), 20)
    assert termination.status == 0


async def test_a_task_that_cannot_start_fails_and_its_group_is_killed(
    api: FakeExecutorApi, containerizer: Containerizer, tmp_path: Path
) -> None:
    await start(api, containerizer, tmp_path)
    await api.send(
        launch_group(
            command_task("ok", "sleep 60"),
            command_task("broken", argv=["/nonexistent/program"]),
            command_task("never", "sleep 60"),
        )
    )
    updates = await api.updates_until_terminal(3)
    tasks = by_task(updates)
    assert tasks["broken"] == tasks["never"] == ["TASK_STARTING", "TASK_FAILED"]
    assert last(updates, "broken").message.startswith("Failed to launch task:")
    assert tasks["ok"] == ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLED"]


async def test_a_task_past_its_max_completion_time_fails_and_takes_its_group_down(
    api: FakeExecutorApi, containerizer: Containerizer, tmp_path: Path
) -> None:
    await start(api, containerizer, tmp_path)
    slow = command_task("slow", "sleep 60")
    slow.max_completion_time.nanoseconds = 300_000_000
    await api.send(launch_group(slow, command_task("peer", "sleep 60")))
    updates = await api.updates_until_terminal(2)
    assert by_task(updates) == {
        "slow": ["TASK_STARTING", "TASK_RUNNING", "TASK_FAILED"],
        "peer": ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLED"],
    }
    assert last(updates, "slow").reason == mesos_pb2.TaskStatus.REASON_MAX_COMPLETION_TIME_REACHED


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
async def test_tasks_run_as_their_user_or_the_executor_commands_user(
    containerizer: Containerizer, tmp_path: Path
) -> None:
    async with FakeExecutorApi(executor_id="default", executor_user="nobody") as api:
        _, sandbox = await start(api, containerizer, tmp_path)
        as_root = command_task("as-root", "id -u")
        as_root.command.user = "root"
        await api.send(launch_group(command_task("inherits", "id -u; touch mine"), as_root))
        updates = await api.updates_until_terminal(2)
        assert by_task(updates)["inherits"][-1] == "TASK_FINISHED"
        assert (sandbox / "tasks" / "inherits" / "stdout").read_text() == "65534\n"
        assert (sandbox / "tasks" / "as-root" / "stdout").read_text() == "0\n"
        assert (sandbox / "tasks" / "inherits").stat().st_uid == 65534
