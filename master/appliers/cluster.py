"""Cluster-wide commands: the first entry, leader changes, and the passage of time."""

from __future__ import annotations

from meseta.master import ledger
from meseta.master import quota as quotas
from meseta.master.appliers.agents import await_reregistration, expire_awaiting_agents
from meseta.master.appliers.frameworks import disconnect, expire_failovers, expire_filters
from meseta.master.appliers.maintenance import expire_inverse_offers
from meseta.master.appliers.offers import overdue, remove_offer
from meseta.master.events import (
    ClusterInitialized,
    CommandRejected,
    DomainEvent,
    LeaderElected,
    QuotaUpdated,
    WeightsUpdated,
)
from meseta.master.resources import is_subrole
from meseta.master.state import FrameworkStatus, Quota, State
from meseta.master.v1 import commands_pb2
from meseta.master.validation import quota_configs_error, weight_milli, weights_error
from meseta.proto.mesos.v1.quota import quota_pb2

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


def update_quota(state: State, command: commands_pb2.UpdateQuota, out: Out) -> None:
    """Quota for the listed roles, all or nothing, as Mesos's QuotaHandler::update: unless
    forced, no role's limits may be below what it consumes and the guarantees together
    may not exceed the registered agents' capacity. Offers are then rescinded, best
    effort as in Mesos, so the roles come back within their limits and the guarantees
    have room."""
    configs = list(command.configs)
    error = quota_configs_error(configs)
    if error is None and not command.force:
        error = quota_conflict(state, configs)
    if error is not None:
        out.append(CommandRejected("update_quota", error, 400))
        return
    for config in configs:
        quota = quotas.of_config(config)
        if quota.guarantees or quota.limits:
            state.quotas[config.role] = quota
        else:
            state.quotas.pop(config.role, None)  # Mesos's default quota: none
    for config in configs:
        rescind_for_quota(state, config.role, state.quotas.get(config.role, Quota()), out)
    ledger.mark_all_dirty(state)
    out.append(QuotaUpdated(tuple(quotas.config_of(role, q) for role, q in state.quotas.items())))


def quota_conflict(state: State, configs: list[quota_pb2.QuotaConfig]) -> str | None:
    """What `force` would override: a limit below consumption, or overcommitted guarantees."""
    for config in configs:
        limits = quotas.amounts_of(config.limits)
        used = quotas.consumed(state, config.role)
        if not quotas.within_limits(limits, used):
            return (
                f"Invalid QuotaConfig: Role '{config.role}' is already consuming"
                f" '{quotas.text(used)}'; this is more than the requested limits"
                f" '{quotas.text(limits)}' (use 'force' flag to bypass this check)"
            )
    updated = dict(state.quotas)
    for config in configs:
        updated[config.role] = quotas.of_config(config)
    guarantees = quotas.total_guarantees(updated.values())
    capacity = quotas.capacity(state)
    if not quotas.contains(capacity, guarantees):
        return (
            f"Invalid QuotaConfig: total quota guarantees '{quotas.text(guarantees)}'"
            f" exceed cluster capacity '{quotas.text(capacity)}'"
            " (use 'force' flag to bypass this check)"
        )
    return None


def rescind_for_quota(state: State, role: str, quota: Quota, out: Out) -> None:
    """Mesos's best effort: first the role's own offers while what it consumes and is
    offered exceeds its limits, then other roles' offers until what the role holds plus
    what was rescinded covers its guarantees."""
    held = quotas.consumed(state, role)
    for offer in state.offers.values():
        if is_subrole(offer.role, role):
            quotas.add_into(held, quotas.all_scalars(offer.resources))
    for framework in list(state.frameworks.values()):
        for offer_id in list(framework.offers):
            if quotas.within_limits(quota.limits, held):
                break
            offer = state.offers[offer_id]
            if is_subrole(offer.role, role):
                held = quotas.minus(held, quotas.all_scalars(offer.resources))
                remove_offer(state, offer, "rescinded", True, out)
    rescinded: quotas.Amounts = {}
    for agent in quotas.registered(state):
        for offer_id in list(agent.offers):
            covered = dict(held)
            quotas.add_into(covered, rescinded)
            if quotas.contains(covered, quota.guarantees):
                return
            offer = state.offers[offer_id]
            if not is_subrole(offer.role, role):
                quotas.add_into(rescinded, quotas.all_scalars(offer.resources))
                remove_offer(state, offer, "rescinded", True, out)


def tick(state: State, command: commands_pb2.Tick, out: Out) -> None:
    expire_filters(state)
    expire_offers(state, out)
    expire_inverse_offers(state, out)
    expire_failovers(state, out)
    expire_awaiting_agents(state, out)


def expire_offers(state: State, out: Out) -> None:
    timeout_ns = state.config.offer_timeout_ns
    for offer in overdue(state.offers.values(), timeout_ns, state.now_ns):
        remove_offer(state, offer, "expired", True, out)
