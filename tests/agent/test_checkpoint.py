"""LMDB checkpoints: what is written comes back after a reopen; removals stick."""

from __future__ import annotations

from pathlib import Path

from meseta.agent.checkpoint import Checkpoints
from meseta.agent.core import ExecutorKind, ExecutorRecord, TaskRecord
from meseta.agent.status_updates import UpdateStream
from meseta.proto.mesos.v1 import mesos_pb2


def records() -> tuple[mesos_pb2.FrameworkInfo, ExecutorRecord, TaskRecord, UpdateStream]:
    framework = mesos_pb2.FrameworkInfo(user="u", name="f", checkpoint=True)
    framework.id.value = "fw"
    info = mesos_pb2.ExecutorInfo()
    info.executor_id.value = "ex"
    executor = ExecutorRecord(info, "fw", ExecutorKind.COMMAND, "c1", "/sb", pid=42,
                              start_time=7, launched_ns=5)  # fmt: skip
    task_info = mesos_pb2.TaskInfo(name="t")
    task_info.task_id.value = "t"
    task_info.agent_id.value = "a"
    running = mesos_pb2.TaskStatus(state=mesos_pb2.TASK_RUNNING, uuid=b"1" * 16)
    running.task_id.value = "t"
    task = TaskRecord(task_info, "fw", "ex", mesos_pb2.TASK_RUNNING, [running])
    stream = UpdateStream("fw", "t", pending=[running], acked=[b"0" * 16])
    return framework, executor, task, stream


def test_round_trip_across_reopen(tmp_path: Path) -> None:
    framework, executor, task, stream = records()
    agent = mesos_pb2.AgentInfo(hostname="h")
    agent.id.value = "S1"
    checkpoints = Checkpoints(tmp_path)
    checkpoints.write_agent_info(agent, "boot-1")
    checkpoints.write_framework(framework)
    checkpoints.write_executor(executor)
    checkpoints.write_task(task, queued=False)
    checkpoints.write_stream(stream)
    checkpoints.close()

    loaded = Checkpoints(tmp_path)
    try:
        recovered = loaded.load()
    finally:
        loaded.close()
    assert recovered.info == agent and recovered.boot_id == "boot-1"
    assert recovered.frameworks == {"fw": framework}
    (back,) = recovered.executors
    assert (back.info, back.container_id, back.pid, back.start_time, back.kind) == (
        executor.info, "c1", 42, 7, ExecutorKind.COMMAND,
    )  # fmt: skip
    ((task_back, queued),) = recovered.tasks
    assert (task_back.info, task_back.state, task_back.statuses, queued) == (
        task.info, mesos_pb2.TASK_RUNNING, task.statuses, False,
    )  # fmt: skip
    (stream_back,) = recovered.streams
    assert (stream_back.pending, stream_back.acked) == (stream.pending, stream.acked)


def test_executor_removal_keeps_streams_framework_removal_drops_all(tmp_path: Path) -> None:
    framework, executor, task, stream = records()
    executor.tasks[task.task_id] = task
    checkpoints = Checkpoints(tmp_path)
    try:
        checkpoints.write_framework(framework)
        checkpoints.write_executor(executor)
        checkpoints.write_task(task, queued=False)
        checkpoints.write_stream(stream)
        checkpoints.remove_executor(executor)
        recovered = checkpoints.load()
        assert (recovered.executors, recovered.tasks) == ([], [])
        assert len(recovered.streams) == 1  # still to be acknowledged
        checkpoints.remove_framework("fw")
        recovered = checkpoints.load()
        assert (recovered.frameworks, recovered.streams) == ({}, [])
        checkpoints.write_framework(framework)
        checkpoints.wipe()
        assert checkpoints.load().frameworks == {}
    finally:
        checkpoints.close()
