"""Frameworks: subscribe, fail over, disconnect, update, revive/suppress, remove.

Semantic SUBSCRIBE failures become an in-stream ERROR (contract 2.3). A
disconnected framework keeps its tasks for `failover_timeout`; a removed one
has its tasks killed and can never subscribe again (contract 7.7).
"""

from __future__ import annotations

import heapq

from meseta.master import ids, ledger
from meseta.master.appliers.offers import remove_offers
from meseta.master.appliers.tasks import complete_task, master_transition, remove_executor
from meseta.master.events import (
    CommandRejected,
    DomainEvent,
    FrameworkDisconnected,
    FrameworkFailedOver,
    FrameworkRemoved,
    FrameworkShutdownRequested,
    FrameworkSubscribed,
    FrameworkUpdated,
    SubscriptionRejected,
)
from meseta.master.state import AgentStatus, Framework, FrameworkStatus, State, is_terminal
from meseta.master.statuses import task_status_copy
from meseta.master.v1 import commands_pb2
from meseta.master.validation import (
    failover_timeout_ns,
    framework_info_error,
    framework_roles,
    suppressed_roles_error,
)
from meseta.proto.mesos.v1 import mesos_pb2

Out = list[DomainEvent]


def subscribe_framework(state: State, command: commands_pb2.SubscribeFramework, out: Out) -> None:
    info = command.framework_info
    error = framework_info_error(info) or suppressed_roles_error(
        framework_roles(info), list(command.suppressed_roles)
    )
    known = state.frameworks.get(info.id.value) if info.HasField("id") else None
    if error is None and known is not None:
        error = resubscribe_error(known, info)
    if error is not None:
        out.append(SubscriptionRejected(command.stream_id, error))
        return
    if known is None:
        framework = add_framework(state, command)
    else:
        framework = known
        failover(state, framework, command, out)
    ledger.mark_all_dirty(state)
    out.append(
        FrameworkSubscribed(
            framework.id,
            command.stream_id,
            framework.info,
            known is not None,
            framework.offer_constraints,
        )
    )


def resubscribe_error(framework: Framework, info: mesos_pb2.FrameworkInfo) -> str | None:
    if framework.status is FrameworkStatus.REMOVED:
        return "Framework has been removed"
    if info.principal != framework.info.principal:
        return (
            f"Changing framework's principal is not allowed (from"
            f" '{framework.info.principal}' to '{info.principal}')"
        )
    return None


def capabilities_of(info: mesos_pb2.FrameworkInfo) -> frozenset[int]:
    return frozenset(capability.type for capability in info.capabilities)


def add_framework(state: State, command: commands_pb2.SubscribeFramework) -> Framework:
    info = mesos_pb2.FrameworkInfo()
    info.CopyFrom(command.framework_info)
    if not info.HasField("id"):
        # Skip ids a framework brought along (reconstructed from its own FrameworkInfo).
        while True:
            state.counters.frameworks += 1
            info.id.value = ids.framework_id(state.cluster_id, state.counters.frameworks - 1)
            if info.id.value not in state.frameworks:
                break
    framework = Framework(
        id=info.id.value,
        info=info,
        roles=framework_roles(info),
        status=FrameworkStatus.CONNECTED,
        stream_id=command.stream_id,
        registered_ns=state.now_ns,
        failover_timeout_ns=failover_timeout_ns(info),
        suppressed_roles=dict.fromkeys(command.suppressed_roles),
        offer_constraints=command.offer_constraints
        if command.HasField("offer_constraints")
        else None,
        capabilities=capabilities_of(info),
    )
    state.frameworks[framework.id] = framework
    return framework


def failover(
    state: State, framework: Framework, command: commands_pb2.SubscribeFramework, out: Out
) -> None:
    """A known framework subscribes again: the new stream replaces the old one."""
    if framework.status is FrameworkStatus.CONNECTED:
        out.append(FrameworkFailedOver(framework.id, framework.stream_id))
    # Offers never survive a resubscription; the scheduler drops its cached ones.
    remove_offers(state, list(framework.offers), "discarded", False, out)
    info = mesos_pb2.FrameworkInfo()
    info.CopyFrom(command.framework_info)
    # Mesos keeps the original user and checkpoint on resubscription.
    info.user = framework.info.user
    info.checkpoint = framework.info.checkpoint
    set_info(framework, info)
    framework.status = FrameworkStatus.CONNECTED
    framework.stream_id = command.stream_id
    framework.reregistered_ns = state.now_ns
    framework.disconnected_ns = 0
    state.failover_deadlines.pop(framework.id, None)
    framework.suppressed_roles = dict.fromkeys(command.suppressed_roles)
    framework.offer_constraints = (
        command.offer_constraints if command.HasField("offer_constraints") else None
    )


def set_info(framework: Framework, info: mesos_pb2.FrameworkInfo) -> None:
    framework.info = info
    framework.roles = framework_roles(info)
    framework.capabilities = capabilities_of(info)
    framework.failover_timeout_ns = failover_timeout_ns(info)


def disconnect_framework(state: State, command: commands_pb2.DisconnectFramework, out: Out) -> None:
    framework = state.frameworks.get(command.framework_id)
    if framework is None or framework.status is not FrameworkStatus.CONNECTED:
        return
    if framework.stream_id != command.stream_id:
        return  # an older stream of a framework that has already failed over
    disconnect(state, framework, out)


def disconnect(state: State, framework: Framework, out: Out, grace_ns: int = 0) -> None:
    """Start the failover timer: `failover_timeout`, but at least `grace_ns`."""
    framework.status = FrameworkStatus.DISCONNECTED
    framework.disconnected_ns = state.now_ns
    remove_offers(state, list(framework.offers), "discarded", False, out)
    out.append(FrameworkDisconnected(framework.id, framework.stream_id))
    timeout_ns = max(framework.failover_timeout_ns, grace_ns)
    if timeout_ns == 0:
        remove_framework(state, framework, out)
    else:
        state.failover_deadlines[framework.id] = state.now_ns + timeout_ns


def teardown_framework(state: State, command: commands_pb2.TeardownFramework, out: Out) -> None:
    framework = state.frameworks.get(command.framework_id)
    if framework is None or framework.status is FrameworkStatus.REMOVED:
        # Mesos's operator TEARDOWN text (a scheduler's own is refused before the fold).
        out.append(CommandRejected("teardown", "No framework found with specified ID"))
        return
    remove_framework(state, framework, out)


def remove_framework(state: State, framework: Framework, out: Out) -> None:
    """Kill its tasks (REASON_FRAMEWORK_REMOVED), shut its executors down, forget its offers."""
    remove_offers(state, list(framework.offers), "discarded", False, out)
    agents: dict[str, None] = {}
    message = f"Framework {framework.id} removed"
    if state.schema_version < 3:
        message = "Framework removed"
    for task in [*framework.tasks.values(), *framework.unreachable_tasks.values()]:
        agents[task.agent_id] = None
        if not is_terminal(task.state):
            status = task_status_copy(
                task,
                state=mesos_pb2.TASK_KILLED,
                reason=mesos_pb2.TaskStatus.REASON_FRAMEWORK_REMOVED,
                message=message,
                now_ns=state.now_ns,
            )
            master_transition(state, task, status, out, forward=False)
        complete_task(state, task, out)
    for agent in state.agents.values():
        executors = [key for key in agent.executors if key[0] == framework.id]
        for key in executors:
            remove_executor(state, agent, key[0], key[1])
        if (executors or agent.id in agents) and agent.status is AgentStatus.ACTIVE:
            out.append(FrameworkShutdownRequested(agent.id, framework.id))
    framework.status = FrameworkStatus.REMOVED
    framework.removed_ns = state.now_ns
    framework.filters.clear()
    state.failover_deadlines.pop(framework.id, None)
    out.append(FrameworkRemoved(framework.id, framework.stream_id, framework.info))


def update_framework(state: State, command: commands_pb2.UpdateFramework, out: Out) -> None:
    info = command.framework_info
    framework = state.frameworks.get(info.id.value)
    if framework is None or framework.status is FrameworkStatus.REMOVED:
        out.append(CommandRejected("update_framework", "Framework cannot be found"))
        return
    roles = framework_roles(info)
    error = (
        framework_info_error(info)
        or suppressed_roles_error(roles, list(command.suppressed_roles))
        or immutable_change_error(framework.info, info)
    )
    if error is not None:
        out.append(CommandRejected("update_framework", error))
        return
    removed_roles = [role for role in framework.roles if role not in roles]
    stale = [o for o in framework.offers if state.offers[o].role in removed_roles]
    remove_offers(state, stale, "rescinded", True, out)
    suppressed = dict.fromkeys(command.suppressed_roles)
    for role in framework.suppressed_roles:
        if role not in suppressed:
            clear_filters(framework, role)
    stored = mesos_pb2.FrameworkInfo()
    stored.CopyFrom(info)
    set_info(framework, stored)
    framework.suppressed_roles = suppressed
    framework.offer_constraints = (
        command.offer_constraints if command.HasField("offer_constraints") else None
    )
    ledger.mark_all_dirty(state)
    out.append(FrameworkUpdated(framework.id, stored, framework.offer_constraints))


def immutable_change_error(
    old: mesos_pb2.FrameworkInfo, new: mesos_pb2.FrameworkInfo
) -> str | None:
    for name in ("principal", "user", "checkpoint"):
        if getattr(old, name) != getattr(new, name):
            return f"Updating 'FrameworkInfo.{name}' is unsupported"
    return None


def clear_filters(framework: Framework, role: str) -> None:
    for key in [key for key in framework.filters if key[1] == role]:
        del framework.filters[key]


def revive_offers(state: State, command: commands_pb2.ReviveOffers, out: Out) -> None:
    framework = state.frameworks.get(command.framework_id)
    if framework is None or framework.status is FrameworkStatus.REMOVED:
        return
    for role in list(command.roles) or list(framework.roles):
        if role in framework.roles:
            framework.suppressed_roles.pop(role, None)
            clear_filters(framework, role)
    ledger.mark_all_dirty(state)


def suppress_offers(state: State, command: commands_pb2.SuppressOffers, out: Out) -> None:
    framework = state.frameworks.get(command.framework_id)
    if framework is None or framework.status is FrameworkStatus.REMOVED:
        return
    for role in list(command.roles) or list(framework.roles):
        if role in framework.roles:
            framework.suppressed_roles[role] = None


def expire_failovers(state: State, out: Out) -> None:
    due = [fid for fid, deadline in state.failover_deadlines.items() if deadline <= state.now_ns]
    for framework_id in due:
        remove_framework(state, state.frameworks[framework_id], out)


def expire_filters(state: State) -> None:
    heap = state.filter_expiries
    while heap and heap[0][0] <= state.now_ns:
        expires_ns, framework_id, agent_id, role = heapq.heappop(heap)
        framework = state.frameworks.get(framework_id)
        if framework is None:
            continue
        active = framework.filters.get((agent_id, role))
        if active is not None and active.expires_ns == expires_ns:
            del framework.filters[(agent_id, role)]
            if agent_id in state.agents:
                ledger.mark_dirty(state, agent_id)
