"""The allocator's gauges under Mesos's allocator/mesos/* names, read from the fold's books.

Every replica folds the same books, so every replica reports the same figures (the
run counters and timers, which belong to whoever allocates, live in the leader shell).
"""

from __future__ import annotations

from meseta.master.allocator.sorter import DEFAULT_WEIGHT
from meseta.master.resources import EMPTY, MILLI, Resources
from meseta.master.state import State

# Mesos reports these three whatever the agents offer (its "standard scalar resources").
STANDARD_SCALARS = ("cpus", "mem", "disk")


def scalar_totals(resources: Resources) -> dict[str, int]:
    """Name -> milli-units over every reservation role."""
    totals: dict[str, int] = {}
    for (name, _, _), quantity in resources.items.items():
        if type(quantity) is int:
            totals[name] = totals.get(name, 0) + quantity
    return totals


def dominant_share(allocated: dict[str, int], totals: dict[str, int], weight: int) -> float:
    """Mesos's DRF share of a sorter client: max over positive totals, over its weight."""
    share = 0.0
    for name, total in sorted(totals.items()):
        if total > 0:
            share = max(share, allocated.get(name, 0) / total)
    return share * DEFAULT_WEIGHT / weight


def tracked_roles(state: State) -> list[str]:
    """The roles Mesos's role sorter knows: those of subscribed frameworks, and any holding
    an allocation."""
    roles: dict[str, None] = {}
    for framework in state.frameworks.values():
        if framework.active:
            roles.update(dict.fromkeys(framework.roles))
    roles.update(dict.fromkeys(state.role_allocated))
    return sorted(roles)


def allocator_metrics(state: State) -> dict[str, float]:
    out: dict[str, float] = {}
    totals = scalar_totals(state.cluster_total)
    held: dict[str, int] = {}
    for resources in state.role_allocated.values():
        for name, amount in scalar_totals(resources).items():
            held[name] = held.get(name, 0) + amount
    for name in STANDARD_SCALARS:
        out[f"allocator/mesos/resources/{name}/total"] = totals.get(name, 0) / MILLI
        out[f"allocator/mesos/resources/{name}/offered_or_allocated"] = held.get(name, 0) / MILLI
    filters: dict[str, int] = {}
    for framework in state.frameworks.values():
        for _, role in framework.filters:
            filters[role] = filters.get(role, 0) + 1
    for role in tracked_roles(state):
        allocated = scalar_totals(state.role_allocated.get(role, EMPTY))
        weight = state.weights.get(role, DEFAULT_WEIGHT)
        share = dominant_share(allocated, totals, weight)
        out[f"allocator/mesos/roles/{role}/shares/dominant"] = share
        out[f"allocator/mesos/offer_filters/roles/{role}/active"] = float(filters.get(role, 0))
    for role, quota in state.quotas.items():
        prefix = f"allocator/mesos/quota/roles/{role}/resources"
        for name, amount in quota.guarantees.items():
            out[f"{prefix}/{name}/guarantee"] = amount / MILLI
        for name, amount in quota.limits.items():
            out[f"{prefix}/{name}/limit"] = amount / MILLI
    return out
