"""One allocation cycle: Mesos's hierarchical DRF allocator, as a pure function.

For each candidate agent (in a seeded shuffle, as Mesos shuffles agents
every cycle), roles are visited in DRF order and, within a role, frameworks
in DRF order; the first framework that may take the agent gets the whole
offerable chunk: the agent's available resources allocatable to the role
(unreserved, or reserved to the role or an ancestor) minus what this cycle
already handed out there. So unreserved resources go to one framework, and
an agent is split across roles only by reservations. Shares are updated
after every agent, so the next agent sees the new order.

A framework may take a chunk for a role when it is connected, subscribed to
the role and not suppressing it; the chunk holds one minimum-allocatable
alternative (its own `offer_filters` minimum for the role, else the global
one); the agent has no GPUs or the framework is GPU_RESOURCES capable (when
filtering GPUs); its offer constraints for the role admit the agent; and no
unexpired refusal filter for (agent, role) contains the chunk.

Without quota, a role's reservations go to it in plain DRF order: if another
role comes first it takes the unreserved part, and the reserved role still
gets its reservations on the same agent. When some role has quota, a cycle
takes Mesos's two quota stages instead (`allocate_with_quota`, and
allocator/quota.py for the limits and the headroom).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from meseta.master.allocator.config import (
    AllocatorConfig,
    MinAllocatable,
    framework_minimum,
    satisfies,
)
from meseta.master.allocator.constraints import Expression, compile_constraints, excludes
from meseta.master.allocator.quota import (
    QuotaBooks,
    shrink,
    shrink_to_room,
    unreserved_scalars,
)
from meseta.master.allocator.sorter import (
    RoleNode,
    RoleTree,
    Scale,
    dominant,
    grow,
    scalar_amounts,
    share_scale,
)
from meseta.master.quota import scalars_of as scalar_amounts_of
from meseta.master.resources import EMPTY, MILLI, UNRESERVED, Key, Resources, count, shape_of
from meseta.master.state import Agent, AgentStatus, Filter, Framework, State
from meseta.proto.mesos.v1 import mesos_pb2

GPU_RESOURCES = mesos_pb2.FrameworkInfo.Capability.GPU_RESOURCES
REFINEMENT = mesos_pb2.FrameworkInfo.Capability.RESERVATION_REFINEMENT


@dataclass(frozen=True, slots=True)
class Allocation:
    """Offer `resources` on `agent_id` to `framework_id` for `role`."""

    framework_id: str
    agent_id: str
    role: str
    resources: Resources


class Candidate:
    """A (framework, role) that may receive offers this cycle, with its scratch share."""

    __slots__ = (
        "amounts", "expression", "filters", "framework_id", "gpu_blocked", "key", "minimum",
        "plain", "refinement",
    )  # fmt: skip

    def __init__(
        self,
        framework: Framework,
        amounts: dict[str, int],
        key: int,
        minimum: MinAllocatable | None,
        gpu_blocked: bool,
        expression: Expression | None,
    ) -> None:
        self.framework_id = framework.id
        self.filters: Mapping[tuple[str, str], Filter] = framework.filters
        self.amounts = amounts  # scalar allocation in this role (a scratch copy)
        self.key = key
        self.minimum = minimum  # None: the global minimum
        self.gpu_blocked = gpu_blocked
        self.expression = expression
        # Refined reservations have no pre-refinement form: Mesos withholds them from
        # frameworks without RESERVATION_REFINEMENT.
        self.refinement = REFINEMENT in framework.capabilities
        # Besides GPUs, only the refusal filter and the global minimum to check: the fast path.
        self.plain = minimum is None and expression is None


def allocate(
    state: State,
    now_ns: int,
    config: AllocatorConfig,
    agent_ids: Iterable[str] | None = None,
    seed: int = 0,
) -> list[Allocation]:
    """The offers one cycle makes over `agent_ids` (None: every agent). Reads `state` only.

    `agent_ids` may be any iterable of ids (e.g. `state.dirty_agents`); unknown
    ids are ignored and the order given does not matter (see `shuffled`).
    """
    scale = share_scale(state.cluster_total)
    tree = build_tree(state, config, scale)
    if tree is None:
        return []
    cycle = Cycle(tree, now_ns, config.min_allocatable)
    out: list[Allocation] = []
    agents = state.agents
    # Sorted first, so the shuffle depends on the set of agents, not the caller's order.
    ids = sorted(dict.fromkeys(agents if agent_ids is None else agent_ids))
    if state.quotas:
        allocate_with_quota(cycle, QuotaBooks(state), offerable(state, ids, seed), seed, out)
        return out
    for agent_id in shuffled(ids, seed):
        agent = agents.get(agent_id)
        if agent is not None and agent.status is AgentStatus.ACTIVE and not agent.deactivated:
            offer_agent(cycle, agent, out)
    return out


def offerable(state: State, ids: list[str], seed: int) -> list[Agent]:
    """The agents among `ids` that may make offers, in the cycle's shuffled order."""
    agents = state.agents
    out = []
    for agent_id in shuffled(ids, seed):
        agent = agents.get(agent_id)
        if agent is not None and agent.status is AgentStatus.ACTIVE and not agent.deactivated:
            out.append(agent)
    return out


def allocate_with_quota(
    cycle: Cycle, books: QuotaBooks, agents: list[Agent], seed: int, out: list[Allocation]
) -> None:
    """Mesos's two stages: first, roles with unsatisfied guarantees, in DRF order, get
    what brings them towards their guarantees (and, within their limits and the
    headroom, the rest of the agent); then every role, within its limits and leaving
    the headroom the guarantees still need. The agents are shuffled again between the
    stages, as Mesos does, to spread the first stage's effect."""
    remaining = {agent.id: agent.total - agent.allocated for agent in agents}
    if books.required:
        for agent in agents:
            offer_quota_agent(cycle, books, agent, remaining, out, guarantees=True)
        order = shuffled([agent.id for agent in agents], seed + 1)
        by_id = {agent.id: agent for agent in agents}
        agents = [by_id[agent_id] for agent_id in order]
    for agent in agents:
        offer_quota_agent(cycle, books, agent, remaining, out, guarantees=False)


def offer_quota_agent(
    cycle: Cycle,
    books: QuotaBooks,
    agent: Agent,
    remaining: dict[str, Resources],
    out: list[Allocation],
    *,
    guarantees: bool,
) -> None:
    """One agent in one stage: each role in DRF order may take a chunk of what is left."""
    available = remaining[agent.id]
    gpu = cycle.gpu_blocking and has_gpus(agent.total)
    picks: list[tuple[RoleNode[Candidate], int, Resources, dict[str, int]]] = []
    for node in cycle.tree.walk():
        if not available.items:
            break
        role = node.path
        allocatable = available.allocatable_to(role)
        scalars = unreserved_scalars(allocatable)
        if guarantees:
            unsatisfied = books.unsatisfied(role)
            if not unsatisfied:
                continue
            guaranteed = shrink(scalars, unsatisfied)
            if not guaranteed.items:
                continue  # nothing here brings the role towards its guarantees
            # Its own reservations and whatever is not a scalar go along.
            rest = Resources(
                None,
                {k: q for k, q in allocatable.items.items() if k[1] == role or type(q) is not int},
            )
            taken = scalar_amounts_of(guaranteed)
        else:
            guaranteed = EMPTY
            rest = allocatable - scalars
            taken = {}
        additional = shrink_to_room(scalars - guaranteed, books.room(role, taken))
        if books.required and additional.items:
            additional = shrink(additional, books.surplus())
        chunk = guaranteed + rest + additional
        if not chunk.items:
            continue
        index, chunk, counts = pick_shaped(node, agent, chunk, cycle, gpu)
        if index < 0:
            continue
        picks.append((node, index, chunk, counts))
        available = available - chunk
        offered = dict(taken)
        for name, amount in scalar_amounts_of(additional).items():
            offered[name] = offered.get(name, 0) + amount
        books.charge(role, offered, taken)
    remaining[agent.id] = available
    # The role order stays fixed for the agent (Mesos sorts once per agent).
    for node, index, chunk, counts in picks:
        take(cycle, agent, node, index, chunk, counts, out)


class Cycle:
    """What stays fixed over one cycle, besides the tree's changing order."""

    __slots__ = ("counted", "gpu_blocking", "minimum", "now_ns", "overriding", "tree")

    def __init__(self, tree: RoleTree[Candidate], now_ns: int, minimum: MinAllocatable) -> None:
        self.tree = tree
        self.now_ns = now_ns
        self.minimum = minimum
        # Whether any candidate must be kept off GPU agents (else no agent needs a look).
        self.gpu_blocking = any(
            candidate.gpu_blocked
            for node in tree.nodes.values()
            for _, _, candidate in node.frameworks.entries
        )
        names: dict[str, None] = {}
        overriding: dict[str, None] = {}
        for alternative in minimum:
            names.update(dict.fromkeys(alternative))
        for path, node in tree.nodes.items():
            for _, _, candidate in node.frameworks.entries:
                if candidate.minimum is not None:
                    overriding[path] = None
                    for alternative in candidate.minimum:
                        names.update(dict.fromkeys(alternative))
        # Names some minimum mentions: only these need non-scalar counts (DRF ignores them).
        self.counted = frozenset(names)
        # Roles where a framework's own minimum may accept what the global one rejects.
        self.overriding = frozenset(overriding)


def build_tree(state: State, config: AllocatorConfig, scale: Scale) -> RoleTree[Candidate] | None:
    by_role: dict[str, list[Candidate]] = {}
    for framework in state.frameworks.values():
        if not framework.active:
            continue
        gpu_blocked = config.filter_gpu_resources and GPU_RESOURCES not in framework.capabilities
        expressions = compile_constraints(framework.offer_constraints)
        for role in dict.fromkeys(framework.roles):  # a role listed twice is one candidate
            if role in framework.suppressed_roles:
                continue
            amounts = scalar_amounts(framework.allocated.get(role), scale)
            candidate = Candidate(
                framework,
                amounts,
                dominant(amounts, scale),
                framework_minimum(framework.info, role),
                gpu_blocked,
                expressions.get(role),
            )
            by_role.setdefault(role, []).append(candidate)
    if not by_role:
        return None
    tree: RoleTree[Candidate] = RoleTree(list(by_role), state.weights, state.role_allocated, scale)
    for role, candidates in by_role.items():
        frameworks = tree.nodes[role].frameworks
        for candidate in candidates:
            frameworks.add(candidate.key, candidate.framework_id, candidate)
    tree.finish()
    return tree


def offer_agent(cycle: Cycle, agent: Agent, out: list[Allocation]) -> None:
    allocated = agent.allocated
    available = agent.total - allocated if allocated.items else agent.total
    if not available.items:
        return
    gpu = cycle.gpu_blocking and has_gpus(agent.total)
    if has_reservations(available):
        offer_split(cycle, agent, available, gpu, out)
        return
    # All unreserved: the first role with a taker gets everything.
    counts = chunk_counts(available, cycle.counted)
    for node in cycle.tree.walk():
        index = pick(node, agent, available, counts, cycle, gpu)
        if index >= 0:
            take(cycle, agent, node, index, available, counts, out)
            return


def offer_split(
    cycle: Cycle, agent: Agent, available: Resources, gpu: bool, out: list[Allocation]
) -> None:
    """An agent with reservations: each role's chunk adds its own reservations."""
    remaining = available
    picks: list[tuple[RoleNode[Candidate], int, Resources, dict[str, int]]] = []
    # The role order stays fixed for the agent (Mesos sorts once per agent), so
    # the shares are charged once the agent is done.
    for node in cycle.tree.walk():
        chunk = remaining.allocatable_to(node.path)
        if not chunk.items:
            continue
        index, chunk, counts = pick_shaped(node, agent, chunk, cycle, gpu)
        if index >= 0:
            picks.append((node, index, chunk, counts))
            remaining = remaining - chunk
            if not remaining.items:
                break
    # One pick per role, so each index still points at its candidate.
    for node, index, chunk, counts in picks:
        take(cycle, agent, node, index, chunk, counts, out)


def pick_shaped(
    node: RoleNode[Candidate], agent: Agent, chunk: Resources, cycle: Cycle, gpu: bool
) -> tuple[int, Resources, dict[str, int]]:
    """`pick` for a chunk with reservations: (index, the chunk it takes, its counts).
    Refined reservations have no pre-refinement form, so frameworks without
    RESERVATION_REFINEMENT are offered the chunk without them, as Mesos withholds them."""
    counts = chunk_counts(chunk, cycle.counted)
    refined = has_refined(chunk)
    index = pick(node, agent, chunk, counts, cycle, gpu, refined)
    if index < 0 and refined:
        chunk = Resources(None, {k: q for k, q in chunk.items.items() if not is_refined(k)})
        counts = chunk_counts(chunk, cycle.counted)
        if chunk.items:
            index = pick(node, agent, chunk, counts, cycle, gpu)
    return index, chunk, counts


def pick(
    node: RoleNode[Candidate],
    agent: Agent,
    chunk: Resources,
    counts: Mapping[str, int],
    cycle: Cycle,
    gpu: bool,
    refined: bool = False,
) -> int:
    """The index of the role's first framework, in DRF order, that may take `chunk`; or -1.
    A chunk with `refined` reservations goes only to frameworks that can read them."""
    fits = satisfies(counts, cycle.minimum)
    if not fits and node.path not in cycle.overriding:
        return -1
    now_ns = cycle.now_ns
    key = (agent.id, node.path)
    items = chunk.items
    covering = None  # a refused Resources already found to contain the chunk
    for index, (_, _, candidate) in enumerate(node.frameworks.entries):
        if gpu and candidate.gpu_blocked:
            continue
        if refined and not candidate.refinement:
            continue
        if candidate.plain:
            if not fits:
                continue
        elif not eligible(candidate, agent, counts, fits):
            continue
        refusal = candidate.filters.get(key)
        if refusal is not None and refusal.expires_ns > now_ns:
            refused = refusal.resources
            # Refusals sharing one Resources object cost one comparison per agent.
            if refused is covering:
                continue
            if refused.items == items or refused.contains(chunk):
                covering = refused
                continue
        return index
    return -1


def eligible(candidate: Candidate, agent: Agent, counts: Mapping[str, int], fits: bool) -> bool:
    """The minimum and the offer constraints, for a candidate off the fast path."""
    if candidate.minimum is None:
        if not fits:
            return False
    elif not satisfies(counts, candidate.minimum):
        return False
    return candidate.expression is None or not excludes(candidate.expression, agent.info)


def take(
    cycle: Cycle,
    agent: Agent,
    node: RoleNode[Candidate],
    index: int,
    chunk: Resources,
    counts: Mapping[str, int],
    out: list[Allocation],
) -> None:
    """Offer `chunk` to the framework at `index` of the role and charge the shares."""
    candidate = node.frameworks.entries[index][2]
    out.append(Allocation(candidate.framework_id, agent.id, node.path, chunk))
    candidate.key = grow(candidate.amounts, counts, cycle.tree.scale)
    node.frameworks.move_at(index, candidate.key, candidate.framework_id, candidate)
    cycle.tree.charge(node, counts)


def has_gpus(total: Resources) -> bool:
    for name, _, _ in total.items:  # noqa: SIM110 - a loop beats any(<genexpr>) here
        if name == "gpus":  # canonical Resources hold no zero quantities
            return True
    return False


def has_refined(resources: Resources) -> bool:
    """Whether a reservation in `resources` refines another (a role's child reserving
    within its parent's reservation)."""
    return any(is_refined(key) for key in resources.items)


def is_refined(key: Key) -> bool:
    return bool(key[2]) and len(shape_of(key).reservations) > 1


def has_reservations(resources: Resources) -> bool:
    for _, role, _ in resources.items:  # noqa: SIM110 - a loop beats any(<genexpr>) here
        if role != UNRESERVED:
            return True
    return False


def chunk_counts(chunk: Resources, counted: frozenset[str]) -> dict[str, int]:
    """Per-name amounts: scalars in milli, ranges and sets as element counts times MILLI.

    Non-scalars are counted only for the names a minimum mentions; DRF ignores them.
    """
    counts: dict[str, int] = {}
    for (name, _, _), quantity in chunk.items.items():
        if isinstance(quantity, int):
            counts[name] = counts.get(name, 0) + quantity
        elif name in counted:
            counts[name] = counts.get(name, 0) + count(quantity) * MILLI
    return counts


# -- the agent shuffle: Fisher-Yates driven by a 64-bit LCG (pure, no `random`) ----------

_MASK = (1 << 64) - 1
_LCG_MULTIPLIER = 6364136223846793005  # Knuth's MMIX constants
_LCG_INCREMENT = 1442695040888963407


def shuffled(items: Iterable[str], seed: int) -> list[str]:
    out = list(items)
    state = (seed * _LCG_MULTIPLIER + _LCG_INCREMENT) & _MASK
    for index in range(len(out) - 1, 0, -1):
        state = (state * _LCG_MULTIPLIER + _LCG_INCREMENT) & _MASK
        other = (state >> 32) % (index + 1)  # the high bits are the well-mixed ones
        out[index], out[other] = out[other], out[index]
    return out
