"""Reservations and persistent volumes on agents: RESERVE, UNRESERVE, CREATE,
DESTROY, GROW_VOLUME and SHRINK_VOLUME inside a scheduler's ACCEPT, and the
operator's RESERVE_RESOURCES, UNRESERVE_RESOURCES, CREATE_VOLUMES,
DESTROY_VOLUMES, GROW_VOLUME and SHRINK_VOLUME (Mesos's master.cpp _accept and
http.cpp _operation).

An operation converts part of the agent's total (`master.operations`). The
master keeps the agent's reservations and volumes: they survive the agent's
re-registration, and the agent is told its whole total (CHECKPOINT_RESOURCES)
after every change, as Mesos's agent checkpoints what its master applied.
"""

from __future__ import annotations

from meseta.master import ledger
from meseta.master.appliers.offers import install_filter, refuse_ns, remove_offer
from meseta.master.events import (
    AgentResourcesChanged,
    CommandRejected,
    DomainEvent,
    OperationStatusUpdated,
)
from meseta.master.operations import (
    RESIZES,
    Conversion,
    OperationError,
    agent_label,
    conversion,
)
from meseta.master.resources import EMPTY, Resources, format_resources, is_volume
from meseta.master.state import REACHABLE_AGENT, REGISTERED_AGENT, Agent, Framework, State
from meseta.master.v1 import commands_pb2
from meseta.master.validation import resource_role_error
from meseta.proto.mesos.v1 import mesos_pb2

Out = list[DomainEvent]
Operation = mesos_pb2.Offer.Operation


def operation_error(framework: Framework, operation: Operation, message: str, out: Out) -> None:
    """Mesos's drop(): an operation with an id hears OPERATION_ERROR, others are dropped."""
    if not operation.HasField("id"):
        return
    status = mesos_pb2.OperationStatus(state=mesos_pb2.OPERATION_ERROR, message=message)
    status.operation_id.CopyFrom(operation.id)
    out.append(OperationStatusUpdated(framework.id, status))


def operation_resources(operation: Operation) -> list[mesos_pb2.Resource]:
    kind = operation.type
    if kind == Operation.RESERVE:
        return [*operation.reserve.source, *operation.reserve.resources]
    if kind == Operation.UNRESERVE:
        return list(operation.unreserve.resources)
    if kind == Operation.CREATE:
        return list(operation.create.volumes)
    if kind == Operation.GROW_VOLUME:
        return [operation.grow_volume.volume, operation.grow_volume.addition]
    if kind == Operation.SHRINK_VOLUME:
        return [operation.shrink_volume.volume]
    return list(operation.destroy.volumes)


def accept_operation(
    state: State,
    framework: Framework,
    agent: Agent,
    role: str,
    operation: Operation,
    pool: Resources,
    out: Out,
) -> Resources:
    """Apply a resource operation of an ACCEPT to the pool; return what is left of it."""
    if operation.HasField("id"):
        # Feedback needs resource providers, which no meseta agent has (as Mesos says).
        why = (
            f"Operation requested feedback, but agent {agent.id} does not have the required"
            " RESOURCE_PROVIDER capability"
        )
        operation_error(framework, operation, why, out)
        return pool
    error = resource_role_error(operation_resources(operation), role)
    if error is None:
        try:
            change = conversion(operation, agent, framework, role)
        except OperationError as exc:
            error = f"{exc}; on agent {agent_label(agent)}"
    if error is not None:
        operation_error(framework, operation, error, out)
        return pool
    if not pool.contains(change.consumed):
        why = f"{format_resources(pool)} does not contain {format_resources(change.consumed)}"
        if operation.type in RESIZES:
            why = f"Invalid {Operation.Type.Name(operation.type)} operation: {why}"
        operation_error(framework, operation, why, out)
        return pool
    if operation.type == Operation.DESTROY:
        rescind_holding(state, agent, change.consumed, out)
    convert(state, agent, change, out)
    if operation.type in RESIZES:
        return pool - change.consumed  # the resized volume is offered again, not pooled
    return pool - change.consumed + change.converted


def rescind_holding(state: State, agent: Agent, volumes: Resources, out: Out) -> None:
    """Offers of volumes being destroyed are rescinded (shared ones could be in several)."""
    for offer_id in list(agent.offers):
        offer = state.offers[offer_id]
        if any(key in offer.resources.items for key in volumes.items if is_volume(key)):
            remove_offer(state, offer, "rescinded", True, out)


def apply_resource_operation(
    state: State, command: commands_pb2.ApplyResourceOperation, out: Out
) -> None:
    """An operator's operation: on the agent's unallocated resources, rescinding offers
    until they suffice; 202 once applied, 409 when they do not."""
    agent = state.agents.get(command.agent_id)
    if agent is None or agent.status not in REGISTERED_AGENT:
        reject("No agent found with specified ID", 400, out)
        return
    operation = command.operation
    try:
        change = conversion(operation, agent)
    except OperationError as exc:
        reject(f"{refusal_prefix(operation, agent)}: {exc}", 400, out)
        return
    if operation.type == Operation.DESTROY:
        rescind_holding(state, agent, change.consumed, out)
    rescind_for(state, agent, change.consumed, out)
    available = agent.available
    if not available.contains(change.consumed):
        why = f"{format_resources(available)} does not contain {format_resources(change.consumed)}"
        reject(why, 409, out)
        return
    convert(state, agent, change, out)


def refusal_prefix(operation: Operation, agent: Agent) -> str:
    """Mesos's words before a refused operator operation's reason."""
    name = Operation.Type.Name(operation.type)
    if operation.type in (Operation.UNRESERVE, Operation.DESTROY):
        return f"Invalid {name} operation"
    return f"Invalid {name} operation on agent {agent_label(agent)}"


def rescind_for(state: State, agent: Agent, consumed: Resources, out: Out) -> None:
    """Mesos's greedy rescinding: offers on the agent that hold some of what the
    unallocated resources lack, one at a time, until what they gave back covers it.
    (Mesos rescinds even when the unallocated resources suffice, against a race with
    its allocator that the fold does not have.) Their frameworks keep away from those
    resources for the default refusal (5 s), so the operation wins the race."""
    needed = consumed - agent.available
    recovered = EMPTY
    for offer_id in list(agent.offers):
        if recovered.contains(needed):
            return
        offer = state.offers[offer_id]
        if needed - offer.resources == needed:
            continue
        recovered = recovered + offer.resources
        remove_offer(state, offer, "rescinded", True, out)
        framework = state.frameworks.get(offer.framework_id)
        if framework is not None:
            install_filter(state, framework, agent.id, offer.role, offer.resources, refuse_ns(None))


def convert(state: State, agent: Agent, change: Conversion, out: Out) -> None:
    """Swap the consumed resources for the converted ones in the agent's total."""
    agent.total = agent.total - change.consumed + change.converted
    if agent.status in REACHABLE_AGENT:
        cluster = state.cluster_total - ledger.scalars(change.consumed)
        state.cluster_total = cluster + ledger.scalars(change.converted)
    ledger.mark_dirty(state, agent.id)
    out.append(AgentResourcesChanged(agent.id, agent.total))


def reject(message: str, status: int, out: Out) -> None:
    out.append(CommandRejected("apply_resource_operation", message, status))
