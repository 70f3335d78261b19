"""Maintenance primitives: the schedule, machines brought DOWN and UP, and inverse offers
(Mesos's master/http.cpp maintenance handlers, Master::updateUnavailability and the
allocator's generateInverseOffers).

A scheduled machine is DRAINING: offers from its agents carry its unavailability, and
every active framework that holds resources there (offered, or used by tasks and
executors) gets an inverse offer for the agent, which it accepts or declines (its
answer shows in the maintenance status). Inverse offers come back after each answer
unless refused by the answer's filter (none given: at once, as in Mesos). A DOWN
machine's agents are removed and may not register until an operator brings it UP,
which also takes it off the schedule.
"""

from __future__ import annotations

from collections.abc import Iterable

from meseta.master import ids
from meseta.master.appliers.agents import remove_agent
from meseta.master.appliers.offers import overdue, refuse_ns, remove_offers
from meseta.master.events import (
    CommandRejected,
    DomainEvent,
    InverseOfferRemoved,
    InverseOffersCreated,
    MaintenanceChanged,
)
from meseta.master.maintenance import (
    DOWN,
    DRAINING,
    machine_key,
    machine_text,
    machines_error,
    schedule_error,
)
from meseta.master.state import (
    REGISTERED_AGENT,
    Agent,
    AgentStatus,
    InverseOffer,
    Machine,
    MachineKey,
    State,
)
from meseta.master.v1 import commands_pb2
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.allocator import allocator_pb2
from meseta.proto.mesos.v1.maintenance import maintenance_pb2

Out = list[DomainEvent]
Status = allocator_pb2.InverseOfferStatus


def update_maintenance_schedule(
    state: State, command: commands_pb2.UpdateMaintenanceSchedule, out: Out
) -> None:
    schedule = command.schedule
    error = schedule_error(schedule, state.machines)
    if error is not None:
        out.append(CommandRejected("update_maintenance_schedule", error, 400))
        return
    windows: dict[MachineKey, tuple[mesos_pb2.MachineID, mesos_pb2.Unavailability]] = {}
    for window in schedule.windows:
        for machine_id in window.machine_ids:
            windows[machine_key(machine_id)] = (machine_id, window.unavailability)
    for key in list(state.machines):
        if key not in windows:  # back UP
            reset_agents(state, state.machines.pop(key), out)
    for key, (machine_id, unavailability) in windows.items():
        machine = state.machines.get(key)
        if machine is None:
            machine = Machine(machine_id, DRAINING, unavailability)
            machine.agents = {a.id: None for a in state.agents.values() if a.machine == key}
            state.machines[key] = machine
        elif machine.unavailability == unavailability:
            continue
        machine.unavailability = unavailability
        machine.statuses = {}
        reset_agents(state, machine, out)
    state.schedule = schedule
    changed(state, out)


def reset_agents(state: State, machine: Machine, out: Out) -> None:
    """Its agents' offers and inverse offers are rescinded, to be made again with what
    the schedule now says (Mesos's updateUnavailability)."""
    for agent_id in machine.agents:
        agent = state.agents[agent_id]
        remove_offers(state, list(agent.offers), "rescinded", True, out)
        for inverse_id in list(agent.inverse_offers):
            remove_inverse_offer(state, state.inverse_offers[inverse_id], True, out)


def start_maintenance(state: State, command: commands_pb2.StartMaintenance, out: Out) -> None:
    """DRAINING machines go DOWN; their registered agents are removed and shut down."""
    error = machines_error(command.machines) or mode_error(
        state, command.machines, DRAINING, "is not in DRAINING mode and cannot be brought down"
    )
    if error is not None:
        out.append(CommandRejected("start_maintenance", error, 400))
        return
    for machine_id in command.machines:
        machine = state.machines[machine_key(machine_id)]
        for agent_id in machine.agents:
            agent = state.agents[agent_id]
            if agent.status in REGISTERED_AGENT:
                remove_agent(state, agent, "maintenance", out)
        machine.mode = DOWN
        machine.statuses = {}
    changed(state, out)


def stop_maintenance(state: State, command: commands_pb2.StopMaintenance, out: Out) -> None:
    """DOWN machines are UP again and leave the schedule (windows left empty go too)."""
    error = machines_error(command.machines) or mode_error(
        state, command.machines, DOWN, "is not in DOWN mode and cannot be brought up"
    )
    if error is not None:
        out.append(CommandRejected("stop_maintenance", error, 400))
        return
    up = {machine_key(machine_id): None for machine_id in command.machines}
    for key in up:
        del state.machines[key]
    schedule = maintenance_pb2.Schedule()
    for window in state.schedule.windows:
        kept = [m for m in window.machine_ids if machine_key(m) not in up]
        if kept:
            schedule.windows.add(machine_ids=kept, unavailability=window.unavailability)
    state.schedule = schedule
    changed(state, out)


def mode_error(
    state: State, machines: Iterable[mesos_pb2.MachineID], mode: int, refusal: str
) -> str | None:
    for machine_id in machines:
        machine = state.machines.get(machine_key(machine_id))
        if machine is None:
            return f"Machine '{machine_text(machine_id)}' is not part of a maintenance schedule"
        if machine.mode != mode:
            return f"Machine '{machine_text(machine_id)}' {refusal}"
    return None


def respond_to_inverse_offers(
    state: State, command: commands_pb2.RespondToInverseOffers, out: Out
) -> None:
    """ACCEPT_INVERSE_OFFERS / DECLINE_INVERSE_OFFERS: the answer is kept for the machine's
    status; with filters, no new inverse offer for that agent until they expire."""
    framework = state.frameworks.get(command.framework_id)
    if framework is None:
        return
    answer = Status.ACCEPT if command.accept else Status.DECLINE
    for inverse_id in command.inverse_offer_ids:
        inverse = state.inverse_offers.get(inverse_id)
        if inverse is None or inverse.framework_id != framework.id:
            continue  # unknown or not its own: dropped, as Mesos drops them
        remove_inverse_offer(state, inverse, False, out)
        agent = state.agents[inverse.agent_id]
        machine = state.machines.get(agent.machine)
        if machine is not None and machine.mode == DRAINING:
            status = Status(status=answer)
            status.framework_id.value = framework.id
            status.timestamp.nanoseconds = state.now_ns
            machine.statuses[framework.id] = status
        if command.HasField("filters"):
            refuse = refuse_ns(command.filters)
            if refuse > 0:
                framework.inverse_filters[agent.id] = state.now_ns + refuse
    changed(state, out)


def expire_inverse_offers(state: State, out: Out) -> None:
    """Inverse offers unanswered for --offer_timeout are rescinded, as Mesos's are; with no
    filter left by the framework, the next is made at once (settle_inverse_offers)."""
    timeout_ns = state.config.offer_timeout_ns
    for inverse in overdue(state.inverse_offers.values(), timeout_ns, state.now_ns):
        remove_inverse_offer(state, inverse, True, out)


def remove_inverse_offer(state: State, inverse: InverseOffer, rescind: bool, out: Out) -> None:
    del state.inverse_offers[inverse.id]
    state.agents[inverse.agent_id].inverse_offers.pop(inverse.id, None)
    framework = state.frameworks.get(inverse.framework_id)
    if framework is not None:
        framework.inverse_offers.pop(inverse.id, None)
    out.append(InverseOfferRemoved(inverse.framework_id, inverse.id, rescind))


def settle_inverse_offers(state: State, out: Out) -> None:
    """After every entry while machines are scheduled: inverse offers that no longer hold
    (framework or agent gone away, machine no longer DRAINING) leave, and every active
    framework holding resources on a DRAINING machine's connected agent has one out for
    it, unless it refused them for a while."""
    if not state.machines and not state.inverse_offers:
        return
    for inverse in list(state.inverse_offers.values()):
        framework = state.frameworks.get(inverse.framework_id)
        agent = state.agents[inverse.agent_id]
        machine = state.machines.get(agent.machine)
        active = framework is not None and framework.active
        if (
            not active
            or agent.status is not AgentStatus.ACTIVE
            or machine is None
            or (machine.mode != DRAINING)
        ):
            remove_inverse_offer(state, inverse, active, out)
    created: dict[str, list[InverseOffer]] = {}
    for machine in state.machines.values():
        if machine.mode != DRAINING:
            continue
        for agent_id in machine.agents:
            agent = state.agents[agent_id]
            if agent.status is AgentStatus.ACTIVE:
                make_inverse_offers(state, agent, machine, created)
    for framework_id, inverse_offers in created.items():
        out.append(InverseOffersCreated(framework_id, tuple(inverse_offers)))


def make_inverse_offers(
    state: State, agent: Agent, machine: Machine, created: dict[str, list[InverseOffer]]
) -> None:
    holders = dict.fromkeys(state.offers[offer_id].framework_id for offer_id in agent.offers)
    holders.update((framework_id, None) for framework_id, _ in agent.tasks)
    holders.update((framework_id, None) for framework_id, _ in agent.executors)
    asked = {state.inverse_offers[i].framework_id for i in agent.inverse_offers}
    for framework_id in holders:
        framework = state.frameworks.get(framework_id)
        if framework is None or not framework.active or framework_id in asked:
            continue
        refused_until = framework.inverse_filters.get(agent.id)
        if refused_until is not None:
            if refused_until > state.now_ns:
                continue
            del framework.inverse_filters[agent.id]  # expired: forget it
        state.counters.offers += 1
        inverse = InverseOffer(
            ids.offer_id(state.cluster_id, state.counters.offers),
            framework_id,
            agent.id,
            machine.unavailability,
            state.now_ns,
        )
        state.inverse_offers[inverse.id] = inverse
        agent.inverse_offers[inverse.id] = None
        framework.inverse_offers[inverse.id] = None
        created.setdefault(framework_id, []).append(inverse)


def cluster_status(state: State) -> maintenance_pb2.ClusterStatus:
    """Mesos's ClusterStatus: DRAINING machines with the answers to their inverse offers,
    then DOWN machines."""
    status = maintenance_pb2.ClusterStatus()
    for machine in state.machines.values():
        if machine.mode == DRAINING:
            status.draining_machines.add(id=machine.id, statuses=list(machine.statuses.values()))
        else:
            status.down_machines.append(machine.id)
    return status


def changed(state: State, out: Out) -> None:
    out.append(MaintenanceChanged(state.schedule, cluster_status(state)))
