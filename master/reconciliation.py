"""Answers to RECONCILE (contract 7.1): pure functions of the folded state.

Every reply is a master-generated status: source MASTER, reason
RECONCILIATION, no uuid. Partition states reach frameworks that are not
PARTITION_AWARE as TASK_LOST.
"""

from __future__ import annotations

from meseta.master.state import AgentStatus, Framework, State, Task
from meseta.master.statuses import master_status, task_status_copy, visible_state
from meseta.proto.mesos.v1 import mesos_pb2

RECONCILIATION = mesos_pb2.TaskStatus.REASON_RECONCILIATION

_UNKNOWN_TASK_REPLIES = {
    AgentStatus.ACTIVE: (mesos_pb2.TASK_GONE, "Reconciliation: Task is unknown to the agent"),
    AgentStatus.DISCONNECTED: (mesos_pb2.TASK_GONE, "Reconciliation: Task is unknown to the agent"),
    AgentStatus.UNREACHABLE: (mesos_pb2.TASK_UNREACHABLE, "Reconciliation: Agent is unreachable"),
    AgentStatus.GONE: (mesos_pb2.TASK_GONE_BY_OPERATOR, "Reconciliation: Agent was marked gone"),
    AgentStatus.REMOVED: (mesos_pb2.TASK_UNKNOWN, "Reconciliation: Task is unknown"),
}


def known_task_reply(state: State, framework: Framework, task: Task) -> mesos_pb2.TaskStatus:
    if task.state == mesos_pb2.TASK_UNREACHABLE:
        # Its agent is partitioned: the update last delivered (say RUNNING) is stale.
        latest = task.state
    elif task.status_update_state is not None:
        latest = task.status_update_state
    else:
        latest = task.state
    status = task_status_copy(
        task,
        state=visible_state(framework, latest),
        reason=RECONCILIATION,
        message="Reconciliation: Latest task state",
        now_ns=state.now_ns,
    )
    if latest == mesos_pb2.TASK_UNREACHABLE:
        agent = state.agents.get(task.agent_id)
        if agent is not None and agent.unreachable_ns:
            status.unreachable_time.nanoseconds = agent.unreachable_ns
    return status


def explicit_reply(
    state: State, framework: Framework, task_id: str, agent_id: str | None
) -> mesos_pb2.TaskStatus | None:
    """The reply for one listed task; None while its agent may still come back."""
    task = framework.tasks.get(task_id) or framework.unreachable_tasks.get(task_id)
    if task is not None:
        return known_task_reply(state, framework, task)
    if agent_id is None:
        if any(a.status is AgentStatus.RECOVERING for a in state.agents.values()):
            return None
        return unknown_reply(
            state, framework, task_id, "", mesos_pb2.TASK_UNKNOWN, "Reconciliation: Task is unknown"
        )
    agent = state.agents.get(agent_id)
    if agent is None:
        return unknown_reply(
            state,
            framework,
            task_id,
            agent_id,
            mesos_pb2.TASK_UNKNOWN,
            "Reconciliation: Task is unknown",
        )
    if agent.status is AgentStatus.RECOVERING:
        return None
    task_state, message = _UNKNOWN_TASK_REPLIES[agent.status]
    reply = unknown_reply(state, framework, task_id, agent_id, task_state, message)
    if task_state == mesos_pb2.TASK_UNREACHABLE and agent.unreachable_ns:
        reply.unreachable_time.nanoseconds = agent.unreachable_ns
    return reply


def unknown_reply(
    state: State, framework: Framework, task_id: str, agent_id: str, task_state: int, message: str
) -> mesos_pb2.TaskStatus:
    return master_status(
        task_id=task_id,
        state=visible_state(framework, task_state),
        reason=RECONCILIATION,
        message=message,
        now_ns=state.now_ns,
        agent_id=agent_id,
    )


def reconcile(
    state: State, framework: Framework, tasks: list[tuple[str, str | None]]
) -> list[mesos_pb2.TaskStatus]:
    """Implicit when `tasks` is empty (every active task), explicit otherwise."""
    if not tasks:
        return [known_task_reply(state, framework, task) for task in framework.tasks.values()]
    replies = []
    for task_id, agent_id in tasks:
        reply = explicit_reply(state, framework, task_id, agent_id)
        if reply is not None:
            replies.append(reply)
    return replies
