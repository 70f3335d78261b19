"""Task statuses the master itself generates (no uuid: never retried, never acked).

Frameworks without PARTITION_AWARE see every partition-related state as
TASK_LOST (contract 5.4).
"""

from __future__ import annotations

from typing import cast

from meseta.master.exact import ratio
from meseta.master.state import Framework, Task
from meseta.proto.mesos.v1 import mesos_pb2

NS_PER_S = 1_000_000_000

PARTITION_STATES = frozenset(
    {
        mesos_pb2.TASK_DROPPED,
        mesos_pb2.TASK_UNREACHABLE,
        mesos_pb2.TASK_GONE,
        mesos_pb2.TASK_GONE_BY_OPERATOR,
        mesos_pb2.TASK_UNKNOWN,
    }
)


def visible_state(framework: Framework | None, state: int) -> int:
    """What a framework is told: partition states collapse to LOST without PARTITION_AWARE."""
    if state in PARTITION_STATES and (framework is None or not framework.partition_aware):
        return mesos_pb2.TASK_LOST
    return state


def master_status(
    *,
    task_id: str,
    state: int,
    reason: int,
    message: str,
    now_ns: int,
    agent_id: str = "",
    executor_id: str = "",
) -> mesos_pb2.TaskStatus:
    status = mesos_pb2.TaskStatus(source=mesos_pb2.TaskStatus.SOURCE_MASTER)
    status.state = cast(mesos_pb2.TaskState, state)
    status.task_id.value = task_id
    status.reason = cast(mesos_pb2.TaskStatus.Reason, reason)
    status.message = message
    status.timestamp = ratio(now_ns, NS_PER_S)
    if agent_id:
        status.agent_id.value = agent_id
    if executor_id:
        status.executor_id.value = executor_id
    return status


def task_status_copy(
    task: Task, *, state: int, reason: int, message: str, now_ns: int
) -> mesos_pb2.TaskStatus:
    """A fresh status for a known task, keeping what the latest one said about its health."""
    status = master_status(
        task_id=task.task_id,
        state=state,
        reason=reason,
        message=message,
        now_ns=now_ns,
        agent_id=task.agent_id,
        executor_id=task.executor_id,
    )
    latest = task.latest_status
    if latest is not None:
        if latest.HasField("healthy"):
            status.healthy = latest.healthy
        if latest.HasField("check_status"):
            status.check_status.CopyFrom(latest.check_status)
        if latest.HasField("container_status"):
            status.container_status.CopyFrom(latest.container_status)
        if latest.labels.labels:
            status.labels.CopyFrom(latest.labels)
    return status
