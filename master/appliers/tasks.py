"""Task lifecycle: status updates, acknowledgements, kills, executors.

Mesos's rules (contract 5.1, 7.6): the master never changes a task's state
once terminal; `status_update_state/uuid` track the update being delivered;
resources are released when a task turns terminal or unreachable; the task
leaves the active set when the scheduler acknowledges its terminal update.
"""

from __future__ import annotations

from meseta.master import ledger
from meseta.master.events import (
    AcknowledgementForwarded,
    CommandRejected,
    DomainEvent,
    ExecutorExited,
    ExecutorShutdownRequested,
    KillRequested,
    TaskCompleted,
    TaskStatusUpdated,
)
from meseta.master.reconciliation import explicit_reply
from meseta.master.state import TERMINAL_STATES, Agent, AgentStatus, State, Task, is_terminal
from meseta.master.v1 import commands_pb2
from meseta.proto.mesos.v1 import mesos_pb2

Out = list[DomainEvent]

# A task entering one of these gives its resources back.
RELEASING_STATES = TERMINAL_STATES | {mesos_pb2.TASK_UNREACHABLE}
STAGING = mesos_pb2.TASK_STAGING


def record_status(task: Task, status: mesos_pb2.TaskStatus) -> None:
    """Append to the history, collapsing consecutive identical states; `data` is not kept."""
    # A copy: a status parsed from an entry would pin the whole entry's arena.
    kept = mesos_pb2.TaskStatus()
    kept.CopyFrom(status)
    if kept.HasField("data"):
        kept.ClearField("data")
    statuses = task.statuses
    if statuses and statuses[-1].state == kept.state:
        statuses[-1] = kept
    else:
        statuses.append(kept)


def release_task(state: State, task: Task) -> None:
    if not task.holds_resources:
        return
    task.holds_resources = False
    agent = state.agents.get(task.agent_id)
    if agent is not None:
        ledger.release(
            state, agent, state.frameworks.get(task.framework_id), task.role, task.resources
        )


def set_state(state: State, task: Task, new_state: int) -> None:
    if task.state in TERMINAL_STATES:
        return
    task.state = new_state
    if new_state in RELEASING_STATES:
        release_task(state, task)


def complete_task(state: State, task: Task, out: Out) -> None:
    """Drop a task from the active books (it lives on in projections)."""
    release_task(state, task)
    framework = state.frameworks.get(task.framework_id)
    if framework is not None:
        framework.tasks.pop(task.task_id, None)
        framework.unreachable_tasks.pop(task.task_id, None)
    agent = state.agents.get(task.agent_id)
    if agent is not None:
        agent.tasks.pop((task.framework_id, task.task_id), None)
        executor = agent.executors.get((task.framework_id, task.executor_id))
        if executor is not None:
            executor.task_ids.pop(task.task_id, None)
    out.append(TaskCompleted(task))


def master_transition(
    state: State, task: Task, status: mesos_pb2.TaskStatus, out: Out, *, forward: bool = True
) -> None:
    """A master-generated update (no uuid): change the books and tell the scheduler."""
    set_state(state, task, status.state)
    record_status(task, status)
    out.append(
        TaskStatusUpdated(
            task.framework_id, task.task_id, task.agent_id, task.state, status, forward
        )
    )


def update_task_status(state: State, command: commands_pb2.UpdateTaskStatus, out: Out) -> None:
    # The hottest applier (with acknowledgements): each protobuf read is done once.
    status = command.status
    task_id = status.task_id.value
    agent_id = command.agent_id
    framework_id = command.framework_id
    framework = state.frameworks.get(framework_id)
    task = None
    if framework is not None:
        task = framework.tasks.get(task_id) or framework.unreachable_tasks.get(task_id)
    update_state = status.state
    if task is None or task.agent_id != agent_id:
        # Unknown here (e.g. already completed): still forward so the agent gets its ack.
        out.append(TaskStatusUpdated(framework_id, task_id, agent_id, update_state, status))
        return
    if status.agent_id.value == agent_id and (
        not task.executor_id or status.HasField("executor_id")
    ):
        forwarded = status  # complete as sent; the history keeps its own copy
    else:
        forwarded = mesos_pb2.TaskStatus()
        forwarded.CopyFrom(status)
        forwarded.agent_id.value = agent_id
        if task.executor_id and not forwarded.HasField("executor_id"):
            forwarded.executor_id.value = task.executor_id
    # An unset optional enum reads as its first value: only then is HasField needed.
    latest_state = command.latest_state
    if latest_state == STAGING and not command.HasField("latest_state"):
        latest_state = update_state
    set_state(state, task, latest_state)
    uuid = status.uuid
    if uuid:
        task.status_update_state = update_state
        task.status_update_uuid = uuid
    record_status(task, forwarded)
    out.append(TaskStatusUpdated(framework_id, task_id, agent_id, task.state, forwarded))


def acknowledge_task_status(
    state: State, command: commands_pb2.AcknowledgeTaskStatus, out: Out
) -> None:
    framework_id = command.framework_id
    framework = state.frameworks.get(framework_id)
    if framework is None:
        out.append(CommandRejected("acknowledge", "Framework cannot be found"))
        return
    task_id, agent_id, uuid = command.task_id, command.agent_id, command.uuid
    task = framework.tasks.get(task_id)
    if (
        task is not None
        and task.agent_id == agent_id
        and task.status_update_uuid == uuid
        and task.status_update_state in TERMINAL_STATES
    ):
        complete_task(state, task, out)
    agent = state.agents.get(agent_id)
    if agent is not None and agent.status is AgentStatus.ACTIVE:
        out.append(AcknowledgementForwarded(agent_id, framework_id, task_id, uuid))


def kill_task(state: State, command: commands_pb2.KillTask, out: Out) -> None:
    framework = state.frameworks.get(command.framework_id)
    if framework is None:
        out.append(CommandRejected("kill", "Framework cannot be found"))
        return
    task = framework.tasks.get(command.task_id) or framework.unreachable_tasks.get(command.task_id)
    if task is None:
        # Unknown task: answer as an explicit reconciliation would (contract 2.6).
        reply = explicit_reply(state, framework, command.task_id, command.agent_id or None)
        if reply is not None:
            out.append(
                TaskStatusUpdated(
                    framework.id, command.task_id, reply.agent_id.value, reply.state, reply
                )
            )
        return
    if command.agent_id and command.agent_id != task.agent_id:
        return
    if is_terminal(task.state):
        return
    policy = command.kill_policy if command.HasField("kill_policy") else None
    task.kill_pending = True  # resent when the agent re-registers, until the task ends
    task.kill_policy = policy
    agent = state.agents.get(task.agent_id)
    if agent is not None and agent.status is AgentStatus.ACTIVE:
        out.append(KillRequested(task.agent_id, framework.id, task.task_id, policy))


def shutdown_executor(state: State, command: commands_pb2.ShutdownExecutor, out: Out) -> None:
    # As Mesos: sent to any registered agent, whether the master knows the executor or not
    # (a command executor, whose id is its task's, is the agent's own business).
    agent = state.agents.get(command.agent_id)
    if agent is None:
        return
    if agent.status is AgentStatus.ACTIVE:
        out.append(ExecutorShutdownRequested(agent.id, command.framework_id, command.executor_id))


def remove_executor(state: State, agent: Agent, framework_id: str, executor_id: str) -> None:
    executor = agent.executors.pop((framework_id, executor_id), None)
    if executor is not None:
        ledger.release(
            state, agent, state.frameworks.get(framework_id), executor.role, executor.resources
        )


def exit_executor(state: State, command: commands_pb2.ExitExecutor, out: Out) -> None:
    agent = state.agents.get(command.agent_id)
    if agent is None:
        return
    remove_executor(state, agent, command.framework_id, command.executor_id)
    status = command.status if command.HasField("status") else None
    out.append(ExecutorExited(agent.id, command.framework_id, command.executor_id, status))
