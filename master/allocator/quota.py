"""Quota in an allocation cycle: Mesos's hierarchical allocator with quota (1.9+).

Used only when some role has quota; without quota a cycle takes the plain path
of cycle.py. As in Mesos, a role's consumption (offered counted) may not pass
its limits, and unreserved scalars are held back so that what the unsatisfied
guarantees of all roles still need stays available ("headroom"):

    required headroom  = sum over roles of (guarantees - consumption)
    available headroom = unreserved scalars on registered agents not held

Only unreserved scalars are shrunk to fit; reservations and non-scalar
resources always go with an offer. Mesos shrinks a resource list in random
order; here the order is the resources' sorted order, so every replica
computes the same offers.

Unlike Mesos, which checks only a role's own limits (and quota may only be set
on top-level roles), allocations to a subrole count against, and are limited
by, its top-level role's quota: consumption is a subtree's.
"""

from __future__ import annotations

from meseta.master import quota
from meseta.master.quota import Amounts
from meseta.master.resources import UNRESERVED, Key, Quantity, Resources, is_whole
from meseta.master.state import Quota, State


class QuotaBooks:
    """Consumption of the roles with quota and the headroom, kept up to date within a
    cycle as offers are decided."""

    __slots__ = ("available", "consumed", "quotas", "required")

    def __init__(self, state: State) -> None:
        self.quotas: dict[str, Quota] = state.quotas
        consumed: dict[str, Amounts] = {role: {} for role in self.quotas}
        for holder, held in state.role_allocated.items():
            mine = consumed.get(quota.top_role(holder))
            if mine is not None:
                quota.add_into(mine, quota.scalars_of(held))
        available: Amounts = {}
        for agent in quota.registered(state):
            for (name, reservation, _), amount in agent.total.items.items():
                if type(amount) is not int:
                    continue
                if reservation == UNRESERVED:
                    available[name] = available.get(name, 0) + amount
                else:
                    mine = consumed.get(quota.top_role(reservation))
                    if mine is not None:
                        mine[name] = mine.get(name, 0) + amount
            available = quota.minus(available, quota.scalars_of(agent.allocated))
        self.consumed = consumed
        self.available = available
        self.required: Amounts = {}
        for role, role_quota in self.quotas.items():
            quota.add_into(self.required, quota.minus(role_quota.guarantees, consumed[role]))

    def unsatisfied(self, role: str) -> Amounts:
        """What the role's guarantees still need ({} for a role without guarantees)."""
        role_quota = self.quotas.get(role)
        if role_quota is None or not role_quota.guarantees:
            return {}
        return quota.minus(role_quota.guarantees, self.consumed[role])

    def room(self, role: str, also: Amounts | None = None) -> Amounts | None:
        """How much more the role's top-level quota lets it hold (after `also`); None
        when nothing limits it."""
        top = quota.top_role(role)
        role_quota = self.quotas.get(top)
        if role_quota is None or not role_quota.limits:
            return None
        held = dict(self.consumed[top])
        if also:
            quota.add_into(held, also)
        return {
            name: max(limit - held.get(name, 0), 0) for name, limit in role_quota.limits.items()
        }

    def surplus(self) -> Amounts:
        """Headroom beyond what the guarantees need."""
        return quota.minus(self.available, self.required)

    def charge(self, role: str, taken: Amounts, guaranteed: Amounts) -> None:
        """Unreserved scalars offered to `role`, `guaranteed` of them towards guarantees."""
        mine = self.consumed.get(quota.top_role(role))
        if mine is not None:
            quota.add_into(mine, taken)
        self.required = quota.minus(self.required, guaranteed)
        self.available = quota.minus(self.available, taken)


def unreserved_scalars(resources: Resources) -> Resources:
    return Resources(
        None,
        {k: q for k, q in resources.items.items() if k[1] == UNRESERVED and type(q) is int},
    )


def shrink(resources: Resources, target: Amounts) -> Resources:
    """Mesos's shrinkResources to quantities: at most `target` of each name; a name
    `target` lacks is dropped."""
    return _shrunk(resources, target, keep_absent=False)


def shrink_to_room(resources: Resources, room: Amounts | None) -> Resources:
    """Mesos's shrinkResources to limits: a name without a limit is kept whole."""
    return resources if room is None else _shrunk(resources, room, keep_absent=True)


def _shrunk(resources: Resources, target: Amounts, *, keep_absent: bool) -> Resources:
    left = dict(target)
    items: dict[Key, Quantity] = {}
    for key, amount in resources.items.items():
        room = left.get(key[0])
        if room is None and keep_absent:
            items[key] = amount
            continue
        if not room or type(amount) is not int:  # nothing left of this name (or absent)
            continue
        if amount > room and key[2] and is_whole(key):
            continue  # a MOUNT disk (or volume) is offered whole or not at all, as in Mesos
        kept = min(amount, room)
        items[key] = kept
        left[key[0]] = room - kept
    return Resources(None, items)
