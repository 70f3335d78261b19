"""Cluster-wide commands: the first entry, leader changes, and the passage of time."""

from __future__ import annotations

from meseta.master import ledger
from meseta.master.appliers.agents import await_reregistration, expire_awaiting_agents
from meseta.master.appliers.frameworks import disconnect, expire_failovers, expire_filters
from meseta.master.appliers.offers import remove_offer
from meseta.master.events import (
    ClusterInitialized,
    CommandRejected,
    DomainEvent,
    LeaderElected,
    WeightsUpdated,
)
from meseta.master.state import FrameworkStatus, State
from meseta.master.v1 import commands_pb2
from meseta.master.validation import weight_milli, weights_error

Out = list[DomainEvent]


def init_cluster(state: State, command: commands_pb2.InitCluster, out: Out) -> None:
    if state.cluster_id:
        out.append(CommandRejected("init_cluster", "The cluster is already initialized"))
        return
    state.cluster_id = command.cluster_id
    out.append(ClusterInitialized(command.cluster_id))


def elect_leader(state: State, command: commands_pb2.ElectLeader, out: Out) -> None:
    """A new leader: every subscription ends, offers die, agents must re-register."""
    if command.term <= state.leader_term:
        out.append(CommandRejected("elect_leader", f"Stale term {command.term}"))
        return
    state.leader_term = command.term
    state.master_info = command.master_info
    state.config = command.config
    for offer in list(state.offers.values()):
        remove_offer(state, offer, "discarded", False, out)
    # Its streams died with the old leader, through no fault of the framework:
    # give it at least the agents' re-registration window to come back.
    grace_ns = state.config.agent_reregister_timeout_ns
    for framework in list(state.frameworks.values()):
        if framework.status is FrameworkStatus.CONNECTED:
            disconnect(state, framework, out, grace_ns)
    await_reregistration(state)
    out.append(LeaderElected(command.term, command.master_info))


def update_weights(state: State, command: commands_pb2.UpdateWeights, out: Out) -> None:
    """New role weights. As Mesos does, outstanding offers are rescinded when an updated
    role has frameworks, so the next allocation shares by the new weights."""
    error = weights_error(command.weight_infos)
    if error is not None:
        out.append(CommandRejected("update_weights", error))
        return
    updated = {info.role.strip(): weight_milli(info.weight) for info in command.weight_infos}
    state.weights.update(updated)
    in_use = any(
        role in updated
        for framework in state.frameworks.values()
        if framework.status is not FrameworkStatus.REMOVED
        for role in framework.roles
    )
    if in_use:
        for offer in list(state.offers.values()):
            remove_offer(state, offer, "rescinded", True, out)
    ledger.mark_all_dirty(state)
    out.append(WeightsUpdated(tuple(state.weights.items())))


def tick(state: State, command: commands_pb2.Tick, out: Out) -> None:
    expire_filters(state)
    expire_offers(state, out)
    expire_failovers(state, out)
    expire_awaiting_agents(state, out)


def expire_offers(state: State, out: Out) -> None:
    timeout_ns = state.config.offer_timeout_ns
    if timeout_ns <= 0:
        return
    due = []
    for offer in state.offers.values():  # oldest first: created in index order
        if offer.created_ns + timeout_ns > state.now_ns:
            break
        due.append(offer)
    for offer in due:
        remove_offer(state, offer, "expired", True, out)
