"""Agents: register, re-register, disconnect, become unreachable, gone or removed.

A reachable agent (active, disconnected, or awaiting re-registration after
a leader change) counts towards the cluster total. Leaving that set releases
everything held on it; its tasks turn UNREACHABLE (they may come back),
GONE_BY_OPERATOR or GONE (contract 5.4, 7.2).
"""

from __future__ import annotations

from collections.abc import Iterable

from meseta.master import ids, ledger
from meseta.master.appliers.launches import add_executor, parsed, shape_of
from meseta.master.appliers.offers import remove_offers
from meseta.master.appliers.tasks import (
    complete_task,
    master_transition,
    release_task,
    remove_executor,
)
from meseta.master.durations import format_duration
from meseta.master.events import (
    AgentDisconnected,
    AgentDrainRequested,
    AgentGone,
    AgentLost,
    AgentRegistered,
    AgentRegistrationRejected,
    AgentRemoved,
    AgentResourcesChanged,
    AgentUnreachable,
    CommandRejected,
    DomainEvent,
    FrameworkShutdownRequested,
    KillRequested,
    TaskAdded,
    TasksReconcileRequested,
    TaskStatusUpdated,
)
from meseta.master.maintenance import DOWN
from meseta.master.resources import ResourceError, Resources, declared
from meseta.master.state import (
    REACHABLE_AGENT,
    REGISTERED_AGENT,
    Agent,
    AgentStatus,
    FrameworkStatus,
    State,
    Task,
    is_terminal,
    machine_key,
)
from meseta.master.statuses import task_status_copy, visible_state
from meseta.master.v1 import commands_pb2
from meseta.master.wire import proto_field, renumbered
from meseta.proto.mesos.v1 import mesos_pb2

Out = list[DomainEvent]
Reason = mesos_pb2.TaskStatus


def register_agent(state: State, command: commands_pb2.RegisterAgent, out: Out) -> None:
    info = mesos_pb2.AgentInfo()
    info.CopyFrom(command.agent_info)
    try:
        total = declared_resources(info.resources)
    except ResourceError as exc:
        out.append(AgentRegistrationRejected(command.stream_id, str(exc)))
        return
    if machine_down(state, info, command.ip):
        out.append(AgentRegistrationRejected(command.stream_id, MACHINE_DOWN, shutdown=True))
        return
    for other_id in state.agents_at.get((info.hostname, info.port), []):
        other = state.agents[other_id]
        if other.status in REACHABLE_AGENT:
            remove_agent(state, other, "registered", out)
    # Skip ids an agent brought along (an unknown agent re-registering adopts its own id).
    while True:
        state.counters.agents += 1
        info.id.value = ids.agent_id(state.cluster_id, state.counters.agents - 1)
        if info.id.value not in state.agents:
            break
    agent = Agent(info.id.value, info, AgentStatus.ACTIVE, total, state.now_ns)
    set_connection(agent, command)
    add_agent(state, agent)
    on_machine(state, agent)
    state.cluster_total = state.cluster_total + ledger.scalars(total)
    ledger.mark_dirty(state, agent.id)
    out.append(registered(agent, False))


def add_agent(state: State, agent: Agent) -> None:
    state.agents[agent.id] = agent
    state.agents_at.setdefault((agent.info.hostname, agent.info.port), []).append(agent.id)


def set_connection(
    agent: Agent, command: commands_pb2.RegisterAgent | commands_pb2.ReregisterAgent
) -> None:
    agent.stream_id = command.stream_id
    agent.version = command.version
    agent.capabilities = tuple(c.type for c in command.capabilities)
    agent.ip = command.ip


def registered(agent: Agent, reregistered: bool) -> AgentRegistered:
    return AgentRegistered(
        agent.id,
        agent.stream_id,
        agent.info,
        reregistered,
        agent.version,
        agent.capabilities,
        agent.ip,
    )


def reregister_agent(state: State, command: commands_pb2.ReregisterAgent, out: Out) -> None:
    info = mesos_pb2.AgentInfo()
    info.CopyFrom(command.agent_info)
    agent = state.agents.get(info.id.value)
    error = reregister_error(agent, info)
    if error is None and machine_down(state, info, command.ip):
        error = MACHINE_DOWN
    if error is not None:
        out.append(AgentRegistrationRejected(command.stream_id, error, shutdown=True))
        return
    try:
        total = declared_resources(info.resources)  # it comes back with what it had
    except ResourceError as exc:
        out.append(AgentRegistrationRejected(command.stream_id, str(exc)))
        return
    if agent is None:
        agent = Agent(info.id.value, info, AgentStatus.UNREACHABLE, total, state.now_ns)
        add_agent(state, agent)
    total = with_operations(total, agent.total.shaped())
    if agent.status in REACHABLE_AGENT:
        state.cluster_total = state.cluster_total - ledger.scalars(agent.total)
    agent.info, agent.total, agent.status = info, total, AgentStatus.ACTIVE
    agent.reregistered_ns, agent.unreachable_ns = state.now_ns, 0
    set_connection(agent, command)
    on_machine(state, agent)
    state.cluster_total = state.cluster_total + ledger.scalars(total)
    state.awaiting_agents.pop(agent.id, None)
    reported = adopt_reported(state, agent, command, out)
    if agent.offers and not agent.total.contains(agent.allocated):
        # Offers made before the agent reported tasks the master did not know: they
        # promise what those tasks hold (Mesos rescinds offers when an agent changes).
        remove_offers(state, list(agent.offers), "rescinded", True, out)
    request_reconciliation(state, agent, reported, out)
    resend_kills(agent, out)
    ledger.mark_dirty(state, agent.id)
    out.append(registered(agent, True))
    if agent.total.shaped():
        out.append(AgentResourcesChanged(agent.id, agent.total))
    if agent.drain is not None:
        # Sent whether DRAINING or DRAINED, as Mesos does: the agent handles either.
        out.append(AgentDrainRequested(agent.id, agent.drain.config))


MACHINE_DOWN = "Machine is `DOWN`"


def machine_down(state: State, info: mesos_pb2.AgentInfo, ip: str) -> bool:
    """Agents of a machine in maintenance (DOWN) may not register (Mesos shuts them down)."""
    if not state.machines:
        return False
    machine = state.machines.get(machine_key(info.hostname, ip))
    return machine is not None and machine.mode == DOWN


def on_machine(state: State, agent: Agent) -> None:
    """Count the agent among its machine's, if the machine is scheduled for maintenance."""
    if state.machines:
        machine = state.machines.get(agent.machine)
        if machine is not None:
            machine.agents[agent.id] = None


def declared_resources(given: Iterable[mesos_pb2.Resource]) -> Resources:
    """What an agent declares: no dynamic reservation or volume (operations make those)."""
    total = parsed(given)
    if total.shaped():
        raise ResourceError(
            "An agent cannot declare dynamically reserved resources or persistent volumes"
        )
    return total


def with_operations(base: Resources, shaped: Resources) -> Resources:
    """A returning agent's total: what it declares with the reservations and volumes the
    master made on it (Mesos's agent checkpoints them; here the log keeps them). Should
    its declared resources no longer hold what they were made of, they are dropped."""
    if not shaped:
        return base
    made_of = shaped.convert(declared)
    if not base.contains(made_of):
        return base
    return base - made_of + shaped


def reregister_error(agent: Agent | None, info: mesos_pb2.AgentInfo) -> str | None:
    """Why this agent may not come back under its id at all (Mesos shuts it down)."""
    if agent is None:
        return None
    if agent.status is AgentStatus.GONE:
        return f"Agent {agent.id} has been marked gone"
    if agent.status is AgentStatus.REMOVED:
        return f"Agent {agent.id} has been removed"
    if (agent.info.hostname, agent.info.port) != (info.hostname, info.port):
        return f"Agent {agent.id} changed its hostname or port"
    return None


def adopt_reported(
    state: State, agent: Agent, command: commands_pb2.ReregisterAgent, out: Out
) -> dict[tuple[str, str], None]:
    """Take in the executors and tasks the agent reports; return the reported task keys.

    Each id is read off the protobuf once: the whole re-registration is on every
    replica's fold, once per agent of a storm.
    """
    # The frameworks the agent names, in order of first mention.
    framework_ids: dict[str, None] = {}
    for executor_info in command.executors:
        framework_id = executor_info.framework_id.value
        framework_ids[framework_id] = None
        framework = state.frameworks.get(framework_id)
        if framework is not None and framework.status is not FrameworkStatus.REMOVED:
            role = allocation_role(executor_info.resources, framework.roles)
            add_executor(state, framework, agent, role, executor_info)
    reported: dict[tuple[str, str], None] = {}
    # What adopted tasks hold, per (framework, role): the books take each sum once (an
    # agent reports all its tasks, and sums do not depend on the order).
    held: dict[tuple[str, str], Resources] = {}
    for report in command.tasks:
        framework_id, task_id = report.framework_id.value, report.task_id.value
        framework_ids[framework_id] = None
        reported[(framework_id, task_id)] = None
        adopt_task(state, agent, report, framework_id, task_id, held, out)
    for (framework_id, role), resources in held.items():
        ledger.hold(state, agent, state.frameworks[framework_id], role, resources)
    shutdown_removed_frameworks(state, agent, framework_ids, out)
    return reported


def shutdown_removed_frameworks(
    state: State, agent: Agent, framework_ids: Iterable[str], out: Out
) -> None:
    """Frameworks removed at the master are shut down on a returning agent (contract 7.2)."""
    for framework_id in framework_ids:
        framework = state.frameworks.get(framework_id)
        if framework is not None and framework.status is FrameworkStatus.REMOVED:
            out.append(FrameworkShutdownRequested(agent.id, framework_id))


def allocation_role(resources: Iterable[mesos_pb2.Resource], roles: tuple[str, ...]) -> str:
    """The role reported resources were allocated to (else the framework's first role)."""
    for resource in resources:
        if resource.HasField("allocation_info"):
            return resource.allocation_info.role
    return default_role(roles)


def default_role(roles: tuple[str, ...]) -> str:
    return roles[0] if roles else "*"


# A reported Task's fields as TaskInfo numbers them (mesos.proto): name, task_id, agent_id,
# resources, labels, discovery, container, health_check, kill_policy and limits.
INFO_OF_REPORT = {1: 1, 2: 2, 5: 3, 7: 4, 11: 10, 12: 11, 13: 9, 15: 8, 16: 12, 17: 15}
INFO_COMMAND, COMMAND_USER = 7, 5  # TaskInfo.command, CommandInfo.user (a Task's `user`)


def reported_info(report: mesos_pb2.Task) -> mesos_pb2.TaskInfo:
    """The TaskInfo behind a task an agent reports, as far as a Task tells it. Its fields
    are renumbered from the report's bytes rather than copied one at a time: a storm of
    returning agents brings every one of their tasks here, on every replica."""
    encoded = renumbered(report.SerializePartialToString(), INFO_OF_REPORT)
    if report.HasField("user"):
        encoded += proto_field(INFO_COMMAND, proto_field(COMMAND_USER, report.user.encode()))
    return mesos_pb2.TaskInfo.FromString(encoded)


def adopt_task(
    state: State,
    agent: Agent,
    report: mesos_pb2.Task,
    framework_id: str,
    task_id: str,
    held: dict[tuple[str, str], Resources],
    out: Out,
) -> None:
    """Take in one reported task (of `framework_id`, `task_id`); what it holds is added to
    `held` for the caller to book."""
    framework = state.frameworks.get(framework_id)
    if framework is None or framework.status is FrameworkStatus.REMOVED:
        return
    task = framework.unreachable_tasks.get(task_id)
    if task is not None:
        # Only its own agent brings an unreachable task back.
        if task.agent_id == agent.id:
            del framework.unreachable_tasks[task_id]
            restore_task(state, framework.id, task, report.state, out)
        return
    if task_id in framework.tasks:
        return
    try:
        shape = shape_of(report.resources)  # agents report a few shapes many times
    except ResourceError:
        return
    role = shape.allocated[0][1] if shape.allocated else default_role(framework.roles)
    task = Task(
        task_id,
        framework.id,
        agent.id,
        report.executor_id.value,
        reported_info(report),
        role,
        shape.resources,
        report.state,
        state.now_ns,
        holds_resources=False,
    )
    task.statuses.extend(report.statuses)
    framework.tasks[task_id] = task
    agent.tasks[(framework.id, task_id)] = task
    if not is_terminal(task.state):
        task.holds_resources = True
        key = (framework.id, role)
        have = held.get(key)
        held[key] = shape.resources if have is None else have + shape.resources
    # A task the master learns from a re-registering agent: operators hear TASK_ADDED, as
    # Mesos sends it for tasks of re-registered agents.
    out.append(TaskAdded(task))


def restore_task(state: State, framework_id: str, task: Task, reported: int, out: Out) -> None:
    """An unreachable task whose agent came back: books and scheduler learn its state."""
    framework = state.frameworks[framework_id]
    agent = state.agents[task.agent_id]
    task.state = reported
    framework.tasks[task.task_id] = task
    agent.tasks[(framework_id, task.task_id)] = task
    if not is_terminal(reported):
        task.holds_resources = True
        ledger.hold(state, agent, framework, task.role, task.resources)
    status = task_status_copy(
        task,
        state=reported,
        reason=Reason.REASON_AGENT_REREGISTERED,
        message="Agent reregistered",
        now_ns=state.now_ns,
    )
    out.append(TaskStatusUpdated(framework_id, task.task_id, task.agent_id, reported, status))


def request_reconciliation(
    state: State, agent: Agent, reported: dict[tuple[str, str], None], out: Out
) -> None:
    missing: dict[str, list[str]] = {}
    for key, task in agent.tasks.items():
        if key not in reported and not is_terminal(task.state):
            missing.setdefault(key[0], []).append(key[1])
    for framework_id, task_ids in missing.items():
        out.append(TasksReconcileRequested(agent.id, framework_id, tuple(task_ids)))


def resend_kills(agent: Agent, out: Out) -> None:
    for task in agent.tasks.values():
        if task.kill_pending and not is_terminal(task.state):
            out.append(KillRequested(agent.id, task.framework_id, task.task_id, task.kill_policy))


def disconnect_agent(state: State, command: commands_pb2.DisconnectAgent, out: Out) -> None:
    agent = state.agents.get(command.agent_id)
    if agent is None or agent.status is not AgentStatus.ACTIVE:
        return
    if agent.stream_id != command.stream_id:
        return  # an older connection of an agent that has already re-registered
    agent.status = AgentStatus.DISCONNECTED
    agent.disconnected_ns = state.now_ns
    state.awaiting_agents[agent.id] = state.now_ns
    remove_offers(state, list(agent.offers), "rescinded", True, out)
    # Non-checkpointing frameworks lose everything on the agent at once, as in
    # Mesos's removeFramework(slave, framework): the LOST update carries no
    # uuid, so no acknowledgement would ever complete the task.
    for task in list(agent.tasks.values()):
        if checkpointing(state, task.framework_id):
            continue
        if not is_terminal(task.state):
            status = task_status_copy(
                task,
                state=mesos_pb2.TASK_LOST,
                reason=Reason.REASON_AGENT_DISCONNECTED,
                message="Agent disconnected",
                now_ns=state.now_ns,
            )
            master_transition(state, task, status, out)
        complete_task(state, task, out)
    for framework_id, executor_id in list(agent.executors):
        if not checkpointing(state, framework_id):
            remove_executor(state, agent, framework_id, executor_id)
    out.append(AgentDisconnected(agent.id, command.stream_id))


def checkpointing(state: State, framework_id: str) -> bool:
    framework = state.frameworks.get(framework_id)
    return framework is not None and framework.info.checkpoint


def mark_agent_unreachable(
    state: State, command: commands_pb2.MarkAgentUnreachable, out: Out
) -> None:
    agent = state.agents.get(command.agent_id)
    if agent is None or agent.status not in REACHABLE_AGENT:
        return
    mark_unreachable(state, agent, out, command.message or UNREACHABLE)


# What an unreachable agent's tasks said before entries named why (schema 1 and 2).
UNREACHABLE = "Agent is unreachable"


def mark_unreachable(state: State, agent: Agent, out: Out, message: str) -> None:
    leave_cluster(state, agent, AgentStatus.UNREACHABLE, out)
    agent.unreachable_ns = state.now_ns
    for task in list(agent.tasks.values()):
        framework = state.frameworks[task.framework_id]
        if is_terminal(task.state):
            continue
        status = task_status_copy(
            task,
            state=visible_state(framework, mesos_pb2.TASK_UNREACHABLE),
            reason=Reason.REASON_AGENT_REMOVED,
            message=message,
            now_ns=state.now_ns,
        )
        status.unreachable_time.nanoseconds = state.now_ns
        master_transition(state, task, status, out)
        task.state = mesos_pb2.TASK_UNREACHABLE  # kept non-terminal: it may come back
        release_task(state, task)
        framework.tasks.pop(task.task_id, None)
        agent.tasks.pop((task.framework_id, task.task_id), None)
        framework.unreachable_tasks[task.task_id] = task
    out.append(AgentUnreachable(agent.id))
    out.append(AgentLost(agent.id))


def mark_agent_gone(state: State, command: commands_pb2.MarkAgentGone, out: Out) -> None:
    agent = state.agents.get(command.agent_id)
    if agent is None:
        out.append(CommandRejected("mark_agent_gone", f"Agent '{command.agent_id}' not found", 404))
        return
    if agent.status is AgentStatus.GONE:
        return
    mark_gone(state, agent, out)


def mark_gone(state: State, agent: Agent, out: Out) -> None:
    was_reachable = agent.status in REACHABLE_AGENT
    end_tasks(
        state,
        agent,
        mesos_pb2.TASK_GONE_BY_OPERATOR,
        Reason.REASON_AGENT_REMOVED_BY_OPERATOR,
        "Agent marked gone by an operator",
        out,
        legacy_reason=Reason.REASON_AGENT_REMOVED,  # TASK_LOST comes with AGENT_REMOVED
    )
    leave_cluster(state, agent, AgentStatus.GONE, out)
    out.append(AgentGone(agent.id))
    if was_reachable:
        out.append(AgentLost(agent.id))


def unregister_agent(state: State, command: commands_pb2.UnregisterAgent, out: Out) -> None:
    """The agent leaves for good (Mesos's unregisterSlave): removed, and its id may not
    come back."""
    agent = state.agents.get(command.agent_id)
    if agent is None or agent.status not in REACHABLE_AGENT:
        why = f"Agent '{command.agent_id}' is not registered"
        out.append(CommandRejected("unregister_agent", why, 404))
        return
    remove_agent(state, agent, "unregistered", out)


# Why an agent was removed (AgentRemoved.cause, Mesos's removal reason) -> the words
# Mesos's status updates give for it.
REMOVAL_CAUSES = {
    "registered": "a new agent registered at the same address",
    "unregistered": "the agent unregistered",
    "maintenance": "Operator initiated 'Machine DOWN'",
}


def remove_agent(state: State, agent: Agent, cause: str, out: Out) -> None:
    """Mesos's _removeSlave: every task TASK_LOST / REASON_AGENT_REMOVED, to
    partition-aware frameworks too, and the agent leaves the cluster for good."""
    if cause == "registered" and state.schema_version < 2:
        # Schema 1 ended a replaced agent's tasks as gone.
        message = "Agent replaced by a new agent at the same address"
        end_tasks(state, agent, mesos_pb2.TASK_GONE, Reason.REASON_AGENT_RESTARTED, message, out)
    else:
        message = f"Agent {agent.info.hostname} removed: {REMOVAL_CAUSES[cause]}"
        end_tasks(state, agent, mesos_pb2.TASK_LOST, Reason.REASON_AGENT_REMOVED, message, out)
    leave_cluster(state, agent, AgentStatus.REMOVED, out)
    out.append(AgentRemoved(agent.id, cause))
    out.append(AgentLost(agent.id))


def end_tasks(
    state: State,
    agent: Agent,
    task_state: int,
    reason: int,
    message: str,
    out: Out,
    *,
    legacy_reason: int | None = None,
) -> None:
    """Terminate every task of the agent, reachable or not, and drop it from the books.

    `legacy_reason`, when given, replaces `reason` for frameworks that are not
    PARTITION_AWARE (they are told TASK_LOST).
    """
    tasks = list(agent.tasks.values())
    for framework in state.frameworks.values():
        tasks += [t for t in framework.unreachable_tasks.values() if t.agent_id == agent.id]
    for task in tasks:
        framework = state.frameworks[task.framework_id]
        if not is_terminal(task.state):
            legacy = legacy_reason is not None and not framework.partition_aware
            status = task_status_copy(
                task,
                state=visible_state(framework, task_state),
                reason=legacy_reason if legacy and legacy_reason is not None else reason,
                message=message,
                now_ns=state.now_ns,
            )
            master_transition(state, task, status, out)
            task.state = task_state
        complete_task(state, task, out)


def leave_cluster(state: State, agent: Agent, status: AgentStatus, out: Out) -> None:
    """Release everything held on the agent and stop counting it."""
    remove_offers(state, list(agent.offers), "rescinded", True, out)
    for framework_id, executor_id in list(agent.executors):
        remove_executor(state, agent, framework_id, executor_id)
    if agent.status in REACHABLE_AGENT:
        state.cluster_total = state.cluster_total - ledger.scalars(agent.total)
    agent.status = status
    state.awaiting_agents.pop(agent.id, None)
    state.dirty_agents.pop(agent.id, None)
    if status is not AgentStatus.UNREACHABLE:
        # Gone for good: its deactivation and drain go with it, as in Mesos.
        agent.deactivated, agent.drain, agent.drain_started_ns = False, None, 0
        state.draining_agents.pop(agent.id, None)


def expire_awaiting_agents(state: State, out: Out) -> None:
    deadline = state.now_ns - state.config.agent_reregister_timeout_ns
    due = [agent_id for agent_id, since in state.awaiting_agents.items() if since <= deadline]
    timeout = format_duration(state.config.agent_reregister_timeout_ns)
    for agent_id in due:
        agent = state.agents[agent_id]
        if state.schema_version < 3:
            message = UNREACHABLE
        elif agent.status is AgentStatus.DISCONNECTED:
            message = f"agent did not reregister within {timeout} after disconnecting"
        else:  # awaited since a leader change
            message = f"did not reregister within {timeout} after master failover"
        mark_unreachable(state, agent, out, message)


def await_reregistration(state: State) -> None:
    """After a leader change every reachable agent must re-register (contract 7.9)."""
    for agent in state.agents.values():
        if agent.status in REGISTERED_AGENT:
            agent.status = AgentStatus.RECOVERING
            state.awaiting_agents[agent.id] = state.now_ns
