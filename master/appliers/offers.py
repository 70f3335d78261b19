"""Offers: created from allocator decisions, then accepted, declined, rescinded or expired.

An offer holds its resources in the ledger until it leaves the books. ACCEPT
pools the listed offers, applies the operations in order against the pool,
and returns what is left, filtered for `refuse_seconds` (contract 2.5).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import TypeVar

from meseta.master import ids, ledger
from meseta.master.appliers import launches
from meseta.master.events import DomainEvent, OfferRemoved, OffersCreated
from meseta.master.resources import EMPTY, ResourceError, Resources
from meseta.master.state import AgentStatus, Filter, Framework, InverseOffer, Offer, State
from meseta.master.v1 import commands_pb2
from meseta.proto.mesos.v1 import mesos_pb2

Out = list[DomainEvent]

NS_PER_S = 1_000_000_000
DEFAULT_REFUSE_S = 5.0
MAX_REFUSE_S = 365 * 24 * 3600.0


Dated = TypeVar("Dated", Offer, InverseOffer)


def overdue(entries: Iterable[Dated], timeout_ns: int, now_ns: int) -> list[Dated]:
    """The entries (oldest first, as the books keep them: created in index order) that have
    been out `timeout_ns` or longer; none when there is no timeout."""
    due: list[Dated] = []
    if timeout_ns <= 0:
        return due
    for entry in entries:
        if entry.created_ns + timeout_ns > now_ns:
            break
        due.append(entry)
    return due


def refuse_ns(filters: mesos_pb2.Filters | None) -> int:
    """Mesos's rules: default 5 s, negative -> default, capped at 365 days, 0 -> none."""
    seconds = DEFAULT_REFUSE_S if filters is None else filters.refuse_seconds
    if seconds != seconds or seconds < 0:  # NaN or negative
        seconds = DEFAULT_REFUSE_S
    return round(min(seconds, MAX_REFUSE_S) * NS_PER_S)


def install_filter(
    state: State, framework: Framework, agent_id: str, role: str, resources: Resources, ns: int
) -> None:
    if ns <= 0 or not resources:
        return
    expires_ns = state.now_ns + ns
    framework.filters[(agent_id, role)] = Filter(resources, expires_ns)
    heapq.heappush(state.filter_expiries, (expires_ns, framework.id, agent_id, role))


def remove_offer(state: State, offer: Offer, reason: str, rescind: bool, out: Out) -> None:
    state.offers.pop(offer.id, None)
    framework = state.frameworks.get(offer.framework_id)
    agent = state.agents[offer.agent_id]
    agent.offers.pop(offer.id, None)
    if framework is not None:
        framework.offers.pop(offer.id, None)
    ledger.release(state, agent, framework, offer.role, offer.resources)
    out.append(OfferRemoved(offer.framework_id, offer.id, reason, rescind))


def remove_offers(state: State, offer_ids: list[str], reason: str, rescind: bool, out: Out) -> None:
    for offer_id in offer_ids:
        offer = state.offers.get(offer_id)
        if offer is not None:
            remove_offer(state, offer, reason, rescind, out)


def create_offers(state: State, command: commands_pb2.CreateOffers, out: Out) -> None:
    created: dict[str, list[Offer]] = {}
    for decision in command.offers:
        offer = checked_offer(state, decision)
        if offer is not None:
            created.setdefault(offer.framework_id, []).append(offer)
    for framework_id, offers in created.items():
        out.append(OffersCreated(framework_id, tuple(offers)))
    # Marks are in index order: drop those the allocator has considered, in one pass
    # (popping the first key in a loop rescans the dict's deleted slots every time).
    considered = command.base_index
    dirty = state.dirty_agents
    done = []
    for agent_id, marked in dirty.items():
        if marked > considered:
            break
        done.append(agent_id)
    for agent_id in done:
        del dirty[agent_id]


def checked_offer(state: State, decision: commands_pb2.OfferDecision) -> Offer | None:
    """Book the decision as an offer if it still fits the state; None when stale."""
    framework = state.frameworks.get(decision.framework_id)
    agent = state.agents.get(decision.agent_id)
    role = decision.role
    if framework is None or agent is None or not framework.active:
        return None
    if agent.status is not AgentStatus.ACTIVE or agent.deactivated:
        return None
    if role not in framework.roles:
        return None
    if role in framework.suppressed_roles:
        return None
    try:
        resources = launches.parsed(decision.resources)
    except ResourceError:
        return None
    if not resources or not agent.available.allocatable_to(role).contains(resources):
        return None
    state.counters.offers += 1
    offer = Offer(
        ids.offer_id(state.cluster_id, state.counters.offers),
        framework.id,
        agent.id,
        role,
        resources,
        state.now_ns,
    )
    if state.machines:
        machine = state.machines.get(agent.machine)
        if machine is not None:  # DRAINING: a DOWN machine has no registered agent
            offer.unavailability = machine.unavailability
    state.offers[offer.id] = offer
    framework.offers[offer.id] = None
    agent.offers[offer.id] = None
    ledger.hold(state, agent, framework, role, resources)
    return offer


def decline_offers(state: State, command: commands_pb2.DeclineOffers, out: Out) -> None:
    framework = state.frameworks.get(command.framework_id)
    if framework is None:
        return
    ns = refuse_ns(command.filters if command.HasField("filters") else None)
    for offer_id in command.offer_ids:
        offer = state.offers.get(offer_id.value)
        if offer is None or offer.framework_id != framework.id:
            continue
        remove_offer(state, offer, "declined", False, out)
        install_filter(state, framework, offer.agent_id, offer.role, offer.resources, ns)


def rescind_offers(state: State, command: commands_pb2.RescindOffers, out: Out) -> None:
    remove_offers(state, list(command.offer_ids), "rescinded", True, out)


def accept_offers(state: State, command: commands_pb2.AcceptOffers, out: Out) -> None:
    framework = state.frameworks.get(command.framework_id)
    if framework is None:
        return
    accept = command.accept
    offers, error = pooled_offers(state, framework, [o.value for o in accept.offer_ids])
    if error is not None:
        mine = [o.value for o in accept.offer_ids if o.value in framework.offers]
        remove_offers(state, list(dict.fromkeys(mine)), "discarded", False, out)
        launches.refuse_operations(state, framework, accept.operations, error, out)
        return
    offered = EMPTY
    for offer in offers:
        offered = offered + offer.resources
        remove_offer(state, offer, "accepted", False, out)
    agent = state.agents[offers[0].agent_id]
    role = offers[0].role
    pool = offered
    for operation in accept.operations:
        pool = launches.apply_operation(state, framework, agent, role, operation, pool, out)
    # Only what was offered and is left is declined: what operations made (reservations,
    # volumes) is offered again without the filter, as Mesos recovers it.
    declined = pool - (pool - offered)
    filters = accept.filters if accept.HasField("filters") else None
    install_filter(state, framework, agent.id, role, declined, refuse_ns(filters))


def pooled_offers(
    state: State, framework: Framework, offer_ids: list[str]
) -> tuple[list[Offer], str | None]:
    """The offers of one ACCEPT, or why the call's offers are invalid."""
    if not offer_ids:
        return [], "No offers specified"
    if len(set(offer_ids)) != len(offer_ids):
        return [], "Duplicate offers specified"
    offers = []
    for offer_id in offer_ids:
        offer = state.offers.get(offer_id)
        if offer is None:
            return [], f"Offer {offer_id} is no longer valid"
        if offer.framework_id != framework.id:
            return [], f"Offer {offer_id} has invalid framework"
        offers.append(offer)
    if len({o.agent_id for o in offers}) > 1:
        return [], "Aggregated offers must belong to one single agent"
    if len({o.role for o in offers}) > 1:
        return [], "Aggregated offers must be allocated to the same role"
    if state.agents[offers[0].agent_id].status is not AgentStatus.ACTIVE:
        return [], f"Agent {offers[0].agent_id} is not active"
    return offers, None
