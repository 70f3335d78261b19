"""Quota (Mesos 1.9+, "quota v2"): scalar guarantees and limits per top-level role.

Pure arithmetic on scalar amounts (name -> milli-units), shared by the fold
(UPDATE_QUOTA's checks and rescinds), the allocator (limits, and the headroom
that unsatisfied guarantees hold back) and the read side. A role's consumption
is Mesos's: what its subtree holds unreserved, plus everything reserved to its
subtree on registered agents, allocated or not. The allocator counts offered
resources as held (Mesos's allocator does not tell them apart); the master's
checks and `/roles` count only what tasks and executors use.

Amounts never hold zero or negative entries: subtraction saturates, as Mesos's
ResourceQuantities do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from meseta.master.resources import UNRESERVED, Resources, is_subrole, to_milli
from meseta.master.state import REGISTERED_AGENT, Agent, Quota, State
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.quota import quota_pb2

Amounts = dict[str, int]


def of_config(config: quota_pb2.QuotaConfig) -> Quota:
    """A validated config's quota: a zero guarantee is none, a zero limit is a limit."""
    guarantees = amounts_of(config.guarantees)
    return Quota({n: a for n, a in guarantees.items() if a > 0}, amounts_of(config.limits))


def amounts_of(scalars: Mapping[str, mesos_pb2.Value.Scalar]) -> Amounts:
    """A QuotaConfig map (validated: finite, non-negative), in milli, sorted by name."""
    return {name: to_milli(scalars[name].value) for name in sorted(scalars)}


def config_of(role: str, quota: Quota) -> quota_pb2.QuotaConfig:
    config = quota_pb2.QuotaConfig(role=role)
    for name, amount in quota.guarantees.items():
        config.guarantees[name].value = amount / 1000
    for name, amount in quota.limits.items():
        config.limits[name].value = amount / 1000
    return config


def top_role(role: str) -> str:
    return role.split("/", 1)[0]


def add_into(total: Amounts, more: Mapping[str, int]) -> None:
    for name, amount in more.items():
        total[name] = total.get(name, 0) + amount


def minus(have: Mapping[str, int], taken: Mapping[str, int]) -> Amounts:
    """`have` less `taken`, saturating at zero (zeros dropped)."""
    out: Amounts = {}
    for name, amount in have.items():
        left = amount - taken.get(name, 0)
        if left > 0:
            out[name] = left
    return out


def contains(have: Mapping[str, int], wanted: Mapping[str, int]) -> bool:
    return all(have.get(name, 0) >= amount for name, amount in wanted.items())


def within_limits(limits: Mapping[str, int], amounts: Mapping[str, int]) -> bool:
    """Whether `amounts` fit `limits` (a name without a limit is unlimited)."""
    return all(amounts.get(name, 0) <= limit for name, limit in limits.items())


def text(amounts: Mapping[str, int]) -> str:
    """As Mesos prints ResourceQuantities: `cpus:1; mem:1024`, or `{}`."""
    if not amounts:
        return "{}"
    return "; ".join(f"{name}:{amounts[name] / 1000:g}" for name in sorted(amounts))


def scalars_of(resources: Resources, *, reserved_to: str | None = None) -> Amounts:
    """The unreserved scalars of `resources`; with `reserved_to`, those reserved to that
    role or a subrole of it instead."""
    out: Amounts = {}
    for (name, role, _), quantity in resources.items.items():
        if type(quantity) is not int:
            continue
        if (role == UNRESERVED) if reserved_to is None else is_reserved_to(role, reserved_to):
            out[name] = out.get(name, 0) + quantity
    return out


def all_scalars(resources: Resources) -> Amounts:
    """Every scalar of `resources`, reserved or not."""
    out: Amounts = {}
    for (name, _, _), quantity in resources.items.items():
        if type(quantity) is int:
            out[name] = out.get(name, 0) + quantity
    return out


def is_reserved_to(reservation: str, role: str) -> bool:
    return reservation != UNRESERVED and is_subrole(reservation, role)


def consumed(state: State, role: str) -> Amounts:
    """The role's consumed quota as the master counts it: unreserved scalars its subtree
    uses (offers left out), plus the scalars reserved to its subtree on registered agents
    (Mesos's RoleResourceBreakdown::consumedQuota). The allocator's count, offers
    included, is allocator/quota.py's QuotaBooks."""
    out: Amounts = {}
    for holder, held in state.role_allocated.items():
        if is_subrole(holder, role):
            add_into(out, scalars_of(held))
    for offer in state.offers.values():
        if is_subrole(offer.role, role):
            out = minus(out, scalars_of(offer.resources))
    for agent in registered(state):
        add_into(out, scalars_of(agent.total, reserved_to=role))
    return out


def capacity(state: State) -> Amounts:
    """Every scalar of the registered agents (Mesos's quota overcommit check)."""
    out: Amounts = {}
    for agent in registered(state):
        add_into(out, all_scalars(agent.total))
    return out


def total_guarantees(quotas: Iterable[Quota]) -> Amounts:
    out: Amounts = {}
    for quota in quotas:
        add_into(out, quota.guarantees)
    return out


def registered(state: State) -> list[Agent]:
    """The agents whose resources count (Mesos's registered agents)."""
    return [agent for agent in state.agents.values() if agent.status in REGISTERED_AGENT]
