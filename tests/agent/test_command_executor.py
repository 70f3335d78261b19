"""The command executor as a real process in a real container, against a scripted agent."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from support.fake_executor_api import (
    SHUTDOWN,
    FakeExecutorApi,
    command_task,
    kill,
    launch,
    launch_group,
    start_executor,
)

from meseta.agent import launcher
from meseta.agent.command_executor import new_status
from meseta.agent.containerizer import Containerizer, Launched
from meseta.agent.executor_driver import (
    PROTOBUF,
    ExecutorDriver,
    ExecutorEnvironment,
    ExecutorEnvironmentError,
)
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.executor import executor_pb2

MODULE = "meseta.agent.command_executor"
S = mesos_pb2.TaskStatus


@pytest.fixture
async def api() -> AsyncIterator[FakeExecutorApi]:
    async with FakeExecutorApi(executor_id="task-1") as fake:
        yield fake


async def start(
    api: FakeExecutorApi, containerizer: Containerizer, tmp_path: Path, *, checkpoint: bool = True
) -> tuple[Launched, Path]:
    return await start_executor(MODULE, api, containerizer, tmp_path, checkpoint=checkpoint)


def states(updates: list[mesos_pb2.TaskStatus]) -> list[str]:
    return [mesos_pb2.TaskState.Name(update.state) for update in updates]


async def test_a_command_that_exits_0_finishes_and_the_executor_exits(
    api: FakeExecutorApi, containerizer: Containerizer, tmp_path: Path
) -> None:
    launched, sandbox = await start(api, containerizer, tmp_path)
    await api.send(launch(command_task("task-1", "echo hello from $MESOS_SANDBOX")))
    updates = await api.updates_until_terminal()
    assert states(updates) == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    assert updates[-1].message == "Command exited with status 0"
    assert all(u.source == S.SOURCE_EXECUTOR and u.executor_id.value == "task-1" for u in updates)
    assert len({u.uuid for u in updates}) == 3
    termination = await asyncio.wait_for(containerizer.wait(launched.container_id), 15)
    assert termination.status == 0  # it exited by itself once the update was acknowledged
    assert (sandbox / "stdout").read_text().strip().endswith(f"hello from {sandbox}")


async def test_a_nonzero_exit_fails_with_the_status_in_the_message(
    api: FakeExecutorApi, containerizer: Containerizer, tmp_path: Path
) -> None:
    await start(api, containerizer, tmp_path)
    await api.send(launch(command_task("task-1", "exit 3")))
    updates = await api.updates_until_terminal()
    assert states(updates)[-1] == "TASK_FAILED"
    assert updates[-1].message == "Command exited with status 3"
    assert not updates[-1].HasField("reason")


async def test_argv_form_gets_the_command_environment(
    api: FakeExecutorApi, containerizer: Containerizer, tmp_path: Path
) -> None:
    _, sandbox = await start(api, containerizer, tmp_path)
    task = command_task("task-1", argv=["env"], environment={"GREETING": "hi there"})
    await api.send(launch(task))
    updates = await api.updates_until_terminal()
    assert states(updates)[-1] == "TASK_FINISHED"
    assert "GREETING=hi there" in (sandbox / "stdout").read_text().splitlines()


async def test_a_missing_program_fails_the_task(
    api: FakeExecutorApi, containerizer: Containerizer, tmp_path: Path
) -> None:
    await start(api, containerizer, tmp_path)
    await api.send(launch(command_task("task-1", argv=["/nonexistent/program"])))
    updates = await api.updates_until_terminal()
    assert states(updates) == ["TASK_STARTING", "TASK_FAILED"]
    assert updates[-1].message.startswith("Failed to launch task subprocess:")


async def test_kill_sends_sigterm_to_the_tree_and_the_task_is_killed(
    api: FakeExecutorApi, containerizer: Containerizer, tmp_path: Path
) -> None:
    _, sandbox = await start(api, containerizer, tmp_path)
    script = "trap 'echo got TERM; exit 0' TERM; touch ready; while true; do sleep 0.05; done"
    await api.send(launch(command_task("task-1", script)))
    assert states([await api.next_update(), await api.next_update()])[-1] == "TASK_RUNNING"
    await until((sandbox / "ready").exists)
    await api.send(kill("task-1"))
    updates = await api.updates_until_terminal()
    assert states(updates) == ["TASK_KILLED"]  # no TASK_KILLING without the capability
    assert updates[-1].message == "Command exited with status 0"
    assert "got TERM" in (sandbox / "stdout").read_text()


async def test_kill_escalates_to_sigkill_after_the_grace_period_and_reaps_the_tree(
    containerizer: Containerizer, tmp_path: Path
) -> None:
    killing = mesos_pb2.FrameworkInfo.Capability.TASK_KILLING_STATE
    async with FakeExecutorApi(executor_id="task-1", capabilities=(killing,)) as api:
        launched, sandbox = await start(api, containerizer, tmp_path)
        script = "trap '' TERM; sleep 60 & sleep 60 & touch ready; wait"
        await api.send(launch(command_task("task-1", script, grace_s=30)))
        assert states([await api.next_update(), await api.next_update()])[-1] == "TASK_RUNNING"
        await until((sandbox / "ready").exists)
        tree = launcher.tree(launched.pid, launched.start_time)
        assert len(tree) >= 4  # launcher, executor, shell, two sleeps
        started = time.monotonic()
        await api.send(kill("task-1", grace_s=0.5))  # KILL's policy beats the task's 30 s
        updates = await api.updates_until_terminal()
        elapsed = time.monotonic() - started
        assert states(updates) == ["TASK_KILLING", "TASK_KILLED"]
        assert updates[-1].message == "Command terminated with signal Killed"
        assert 0.5 <= elapsed < 10
        await asyncio.wait_for(containerizer.wait(launched.container_id), 15)
        assert [p for p in tree if launcher.is_alive(p.pid, p.start_time)] == []


async def test_shutdown_kills_the_task(
    api: FakeExecutorApi, containerizer: Containerizer, tmp_path: Path
) -> None:
    launched, _ = await start(api, containerizer, tmp_path)
    await api.send(launch(command_task("task-1", "sleep 60")))
    assert states([await api.next_update(), await api.next_update()])[-1] == "TASK_RUNNING"
    await api.send(SHUTDOWN)
    updates = await api.updates_until_terminal()
    assert states(updates) == ["TASK_KILLED"]
    assert updates[-1].message == "Command terminated with signal Terminated"
    await asyncio.wait_for(containerizer.wait(launched.container_id), 15)


async def test_resubscribes_after_an_agent_restart_and_resends_unacknowledged_updates(
    containerizer: Containerizer, tmp_path: Path
) -> None:
    api = FakeExecutorApi(executor_id="task-1", auto_ack=False)
    await api.start()
    try:
        launched, _ = await start(api, containerizer, tmp_path)
        task = command_task("task-1", "sleep 1.5")
        await api.send(launch(task))
        first = [await api.next_update(), await api.next_update()]
        assert states(first) == ["TASK_STARTING", "TASK_RUNNING"]
        await api.stop()  # the agent dies before acknowledging anything
        await asyncio.sleep(0.3)
        api.auto_ack = True
        await api.start()  # same port
        resubscribe = await api.next_subscribe()
        replayed = [u.status for u in resubscribe.subscribe.unacknowledged_updates]
        assert [u.uuid for u in replayed][:2] == [u.uuid for u in first]
        assert [t.task_id.value for t in resubscribe.subscribe.unacknowledged_tasks] == ["task-1"]
        updates = await api.updates_until_terminal()
        assert states(updates) == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
        termination = await asyncio.wait_for(containerizer.wait(launched.container_id), 15)
        assert termination.status == 0
    finally:
        await api.stop()


async def test_without_checkpointing_a_lost_agent_makes_the_executor_kill_and_exit(
    api: FakeExecutorApi, containerizer: Containerizer, tmp_path: Path
) -> None:
    launched, _ = await start(api, containerizer, tmp_path, checkpoint=False)
    await api.send(launch(command_task("task-1", "sleep 60")))
    assert states([await api.next_update(), await api.next_update()])[-1] == "TASK_RUNNING"
    await api.stop()
    termination = await asyncio.wait_for(containerizer.wait(launched.container_id), 15)
    assert termination.status == 0


def driver_environment(
    api: FakeExecutorApi, tmp_path: Path, **changes: object
) -> ExecutorEnvironment:
    environment = ExecutorEnvironment.from_environ(api.environment(str(tmp_path)))
    return dataclasses.replace(environment, **changes)  # type: ignore[arg-type]


async def test_the_driver_speaks_protobuf_and_tracks_acknowledgements(tmp_path: Path) -> None:
    async with FakeExecutorApi(executor_id="e1", auto_ack=False) as api:
        events: list[int] = []
        driver = ExecutorDriver(
            driver_environment(api, tmp_path), lambda e: events.append(e.type), media_type=PROTOBUF
        )
        runner = asyncio.create_task(driver.run())
        try:
            await api.next_subscribe()
            await asyncio.wait_for(driver.subscribed.wait(), 10)
            assert driver.framework_info is not None and driver.framework_info.name == "fake"
            task = command_task("t1")
            driver.launched(task)
            sent = await driver.update(new_status("t1", mesos_pb2.TASK_RUNNING))
            status = await api.next_update()
            assert status.uuid == sent and len(sent) == 16
            assert status.executor_id.value == "e1" and status.timestamp > 0
            assert not await driver.wait_acknowledged(0.2)
            ack = executor_pb2.Event(type=executor_pb2.Event.ACKNOWLEDGED)
            ack.acknowledged.task_id.value = "t1"
            ack.acknowledged.uuid = sent
            await api.send(ack)
            assert await driver.wait_acknowledged(10)
            assert driver.unacknowledged() == []
            assert events == [executor_pb2.Event.SUBSCRIBED, executor_pb2.Event.ACKNOWLEDGED]
        finally:
            driver.stop()
            await asyncio.wait_for(runner, 10)


async def test_the_driver_posts_again_an_update_that_got_no_answer(tmp_path: Path) -> None:
    """The agent closing a kept-alive connection as an UPDATE goes out on it must not lose
    the update: the stream stays up, so no SUBSCRIBE would resend it."""
    async with FakeExecutorApi(executor_id="e1") as api:
        driver = ExecutorDriver(driver_environment(api, tmp_path), lambda e: None)
        runner = asyncio.create_task(driver.run())
        try:
            await api.next_subscribe()
            await asyncio.wait_for(driver.subscribed.wait(), 10)
            api.dropped_updates = 2
            sent = await driver.update(new_status("t1", mesos_pb2.TASK_FINISHED))
            assert (await api.next_update()).uuid == sent
            assert await driver.wait_acknowledged(10)
            assert api.dropped_updates == 0 and api.subscribes.empty()  # no re-subscription
        finally:
            driver.stop()
            await asyncio.wait_for(runner, 10)


async def test_the_driver_shuts_down_when_the_agent_stays_away_past_the_recovery_timeout(
    tmp_path: Path,
) -> None:
    api = FakeExecutorApi(executor_id="e1")
    await api.start()
    try:
        events: list[int] = []
        environment = driver_environment(api, tmp_path, recovery_timeout_s=0.5)
        driver = ExecutorDriver(environment, lambda e: events.append(e.type))
        runner = asyncio.create_task(driver.run())
        await api.next_subscribe()
        await api.stop()
        started = time.monotonic()
        await asyncio.wait_for(runner, 10)
        assert 0.4 <= time.monotonic() - started < 5
        assert events == [executor_pb2.Event.SUBSCRIBED, executor_pb2.Event.SHUTDOWN]
    finally:
        await api.stop()


def test_the_environment_must_name_the_framework_and_executor(tmp_path: Path) -> None:
    with pytest.raises(ExecutorEnvironmentError, match="Expecting 'MESOS_FRAMEWORK_ID'"):
        ExecutorEnvironment.from_environ({"MESOS_EXECUTOR_ID": "e"})
    api = FakeExecutorApi()
    environment = api.environment(str(tmp_path)) | {"MESOS_RECOVERY_TIMEOUT": "soon"}
    with pytest.raises(ExecutorEnvironmentError, match="invalid duration 'soon'"):
        ExecutorEnvironment.from_environ(environment)
    parsed = ExecutorEnvironment.from_environ(api.environment(str(tmp_path)))
    assert (parsed.checkpoint, parsed.shutdown_grace_s, parsed.recovery_timeout_s) == (True, 5, 15)


async def test_the_executor_stays_until_the_terminal_update_is_acknowledged(
    containerizer: Containerizer, tmp_path: Path
) -> None:
    async with FakeExecutorApi(executor_id="task-1", auto_ack=False) as api:
        launched, _ = await start(api, containerizer, tmp_path)
        await api.send(launch(command_task("task-1", "true")))
        updates = await api.updates_until_terminal()
        assert states(updates)[-1] == "TASK_FINISHED"
        await asyncio.sleep(0.5)
        assert containerizer.containers() == ["executor"]  # still waiting for the ACK
        for update in updates:
            ack = executor_pb2.Event(type=executor_pb2.Event.ACKNOWLEDGED)
            ack.acknowledged.task_id.value = "task-1"
            ack.acknowledged.uuid = update.uuid
            await api.send(ack)
        termination = await asyncio.wait_for(containerizer.wait(launched.container_id), 15)
        assert termination.status == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
async def test_the_task_runs_as_its_command_user(
    api: FakeExecutorApi, containerizer: Containerizer, tmp_path: Path
) -> None:
    _, sandbox = await start(api, containerizer, tmp_path)
    task = command_task("task-1", "id -u; id -g")
    task.command.user = "nobody"
    await api.send(launch(task))
    updates = await api.updates_until_terminal()
    assert states(updates)[-1] == "TASK_FINISHED"
    assert (sandbox / "stdout").read_text().split()[-2:] == ["65534", "65534"]


async def until(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.02)


async def test_a_task_past_its_max_completion_time_is_killed_and_fails(
    api: FakeExecutorApi, containerizer: Containerizer, tmp_path: Path
) -> None:
    await start(api, containerizer, tmp_path)
    task = command_task("task-1", "sleep 60")
    task.max_completion_time.nanoseconds = 300_000_000
    await api.send(launch(task))
    updates = await api.updates_until_terminal()
    assert states(updates) == ["TASK_STARTING", "TASK_RUNNING", "TASK_FAILED"]
    assert updates[-1].reason == S.REASON_MAX_COMPLETION_TIME_REACHED
    assert updates[-1].message == "Command terminated with signal Terminated"


async def test_the_authentication_token_is_sent_and_hidden_from_the_task(
    api: FakeExecutorApi, containerizer: Containerizer, tmp_path: Path
) -> None:
    token = {"MESOS_EXECUTOR_AUTHENTICATION_TOKEN": "t0k"}
    _, sandbox = await start_executor(MODULE, api, containerizer, tmp_path, extra_environment=token)
    await api.send(launch(command_task("task-1", "env")))
    updates = await api.updates_until_terminal()
    assert states(updates)[-1] == "TASK_FINISHED"
    assert set(api.authorizations) == {"Bearer t0k"}
    assert "t0k" not in (sandbox / "stdout").read_text()


async def test_the_task_dies_with_its_container_even_if_the_executor_is_killed(
    api: FakeExecutorApi, containerizer: Containerizer, tmp_path: Path
) -> None:
    launched, sandbox = await start(api, containerizer, tmp_path)
    await api.send(launch(command_task("task-1", "echo $$ > taskpid; exec sleep 60")))
    await until((sandbox / "taskpid").exists)
    await until(lambda: (sandbox / "taskpid").read_text().endswith("\n"))
    task_pid = int((sandbox / "taskpid").read_text())
    task_start = launcher.start_time(task_pid)
    assert task_start is not None
    os.killpg(launched.pid, signal.SIGKILL)  # launcher and executor, not the task's own group
    await asyncio.wait_for(containerizer.wait(launched.container_id), 15)
    await until(lambda: not launcher.is_alive(task_pid, task_start))


async def test_the_driver_retries_a_recovering_agent_and_gives_up_on_a_refusal(
    tmp_path: Path,
) -> None:
    async with FakeExecutorApi(executor_id="e1") as api:
        api.refusals = [503, 503]  # "Agent has not finished recovery"
        events: list[executor_pb2.Event] = []
        driver = ExecutorDriver(driver_environment(api, tmp_path), events.append)
        runner = asyncio.create_task(driver.run())
        try:
            await api.next_subscribe()
            assert len(api.calls) == 3
        finally:
            driver.stop()
            await asyncio.wait_for(runner, 10)
        api.refusals = [400]  # e.g. "Executor cannot be found": no point in retrying
        events.clear()
        await asyncio.wait_for(
            ExecutorDriver(driver_environment(api, tmp_path), events.append).run(), 10
        )
        assert [e.type for e in events] == [executor_pb2.Event.ERROR, executor_pb2.Event.SHUTDOWN]
        assert "refused SUBSCRIBE (400): refused by the test" in events[0].error.message


async def test_a_second_task_or_a_task_group_is_refused(
    api: FakeExecutorApi, containerizer: Containerizer, tmp_path: Path
) -> None:
    await start(api, containerizer, tmp_path)
    await api.send(launch(command_task("task-1", "sleep 60")))
    assert states([await api.next_update(), await api.next_update()])[-1] == "TASK_RUNNING"
    await api.send(launch(command_task("task-2", "true")))
    second = await api.next_update()
    assert (second.task_id.value, states([second])) == ("task-2", ["TASK_FAILED"])
    assert second.message == 'Attempted to run multiple tasks using a "command" executor'
    await api.send(launch_group(command_task("grouped", "true")))
    grouped = await api.next_update()
    assert (grouped.task_id.value, states([grouped])) == ("grouped", ["TASK_FAILED"])
    await api.send(kill("task-1"))
    assert states(await api.updates_until_terminal()) == ["TASK_KILLED"]
