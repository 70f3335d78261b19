"""Allocator benchmark: Mesos's HierarchicalAllocator_BENCHMARK DeclineOffers on our allocator.

    python benchmarks/allocator_bench.py [--quick] [--rounds N] [--grid 1000x100,...] [--seed N]

Setup (src/tests/hierarchical_allocator_tests.cpp, DeclineOffers; anchors in
performance-anchors.md section 1): agents `cpus:24;mem:4096;disk:4096;
ports:[31000-32000]`, each already running `cpus:16;mem:2014;disk:1024` plus
16 port ranges (Mesos's `fragment([31000-32000], 16)`) for framework
i % frameworks; every framework is in role "*". A round applies the previous
round's offers as the fold would (hold them, then decline them all: release
and install a refusal filter that never expires), collects garbage, then
times one `allocate()` over all agents (wall and process CPU time).

Mesos runs frameworks x 2 rounds, but after `frameworks` rounds every agent
has been refused by every framework and the rest offer nothing: with one
agent per framework and round, the cost there is agents x frameworks filter
checks. Mesos's published figure (1.06 s at 10000x1000) is for rounds that
make 10,000 offers, so the full run times the first frameworks x 2 rounds up
to FULL_ROUNDS_CAP, and the all-refused regime is timed separately at a
small point ("saturated": rounds run until every framework has refused every
agent, then three more are timed). Our leader passes only
dirty agents (resources freed since the last cycle), so it never walks the
saturated regime for agents nothing happened on.

Baseline measured in the same run: a naive allocator written the way Mesos's
sorter worked before 1.7 (every agent re-sorts all roles and frameworks by
freshly computed shares; `Resources` arithmetic on the hot path). It runs on
the smallest grid point over the same rounds, must make the same offers,
and its time is reported as a ratio to ours.

Per-round lines go to stderr; a table goes to stdout, then the last line is
one JSON object with `cycle_s` = {"<agents>x<frameworks>": median wall
seconds per cycle}, `cycle_cpu_s` likewise, `saturated_s`, and `baseline`.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from meseta.master import fold
from meseta.master.allocator import Allocation, AllocatorConfig, allocate
from meseta.master.allocator.cycle import shuffled
from meseta.master.resources import EMPTY, Resources, parse
from meseta.master.state import (
    Agent,
    AgentStatus,
    Filter,
    Framework,
    FrameworkStatus,
    State,
)
from meseta.proto.mesos.v1 import mesos_pb2

AGENT_TOTAL = "cpus:24;mem:4096;disk:4096;ports:[31000-32000]"
AGENT_USED = "cpus:16;mem:2014;disk:1024"
ROLE = "*"
FOREVER_NS = 2**62  # Mesos declines with refuse_seconds=INT_MAX
GRID = ((1000, 100), (5000, 500), (10000, 1000))
QUICK_ROUNDS = 5
FULL_ROUNDS_CAP = 40  # full mode: frameworks x 2 rounds, at most this many per point
# Where the all-refused regime is timed (it takes `frameworks` rounds to get there).
SATURATED_QUICK = (500, 50)
SATURATED_FULL = (1000, 100)

Allocator = Callable[[State, int, AllocatorConfig, Sequence[str] | None, int], list[Allocation]]


def fragment(begin: int, end: int, count: int) -> tuple[tuple[int, int], ...]:
    """Mesos's test helper: `count` ranges from the front, the last one running to `end`."""
    ranges = [(begin + 2 * index, begin + 2 * index) for index in range(count)]
    ranges[-1] = (ranges[-1][0], end)
    return tuple(ranges)


def build_state(agent_count: int, framework_count: int) -> State:
    state = State()
    total = parse(AGENT_TOTAL)
    used = parse(AGENT_USED) + Resources({("ports", ROLE, ""): fragment(31000, 32000, 16)})
    frameworks = []
    for index in range(framework_count):
        framework_id = f"fw-{index:05d}"
        framework = Framework(
            id=framework_id,
            info=mesos_pb2.FrameworkInfo(user="bench", name=framework_id, roles=[ROLE]),
            roles=(ROLE,),
            status=FrameworkStatus.CONNECTED,
            stream_id=f"stream-{index}",
            registered_ns=0,
        )
        state.frameworks[framework_id] = framework
        frameworks.append(framework)
    held = [0] * framework_count
    for index in range(agent_count):
        agent_id = f"agent-{index:06d}"
        info = mesos_pb2.AgentInfo(hostname=f"host-{index}")
        state.agents[agent_id] = Agent(
            id=agent_id,
            info=info,
            status=AgentStatus.ACTIVE,
            total=total,
            registered_ns=0,
            allocated=used,
        )
        held[index % framework_count] += 1
    # Every held slice is the same, so the per-framework sums are multiples of it.
    for framework, agents in zip(frameworks, held, strict=True):
        if agents:
            framework.allocated[ROLE] = times(used, agents)
    state.role_allocated[ROLE] = times(used, agent_count)
    state.cluster_total = times(total, agent_count)
    return state


def times(resources: Resources, factor: int) -> Resources:
    """`factor` copies of `resources`: scalars multiply, ranges (per-agent ports) stay a union."""
    return Resources(
        {
            key: quantity * factor if isinstance(quantity, int) else quantity
            for key, quantity in resources.items.items()
        }
    )


def hold_then_decline(state: State, offers: list[Allocation], now_ns: int) -> None:
    """What the fold does for an offer and its DECLINE with refuse_seconds=INT_MAX."""
    for offer in offers:
        agent = state.agents[offer.agent_id]
        framework = state.frameworks[offer.framework_id]
        role, resources = offer.role, offer.resources
        # Hold (OffersCreated) ...
        agent.allocated = agent.allocated + resources
        framework.allocated[role] = framework.allocated.get(role, EMPTY) + resources
        state.role_allocated[role] = state.role_allocated.get(role, EMPTY) + resources
        # ... then release and filter (DECLINE).
        agent.allocated = agent.allocated - resources
        framework.allocated[role] = framework.allocated[role] - resources
        state.role_allocated[role] = state.role_allocated[role] - resources
        framework.filters[(offer.agent_id, role)] = Filter(resources, now_ns + FOREVER_NS)


@dataclass
class PointResult:
    agents: int
    frameworks: int
    rounds: int
    cycle_s: list[float]
    cpu_s: list[float]
    offers: list[int]
    filtered: int
    build_s: float

    @property
    def label(self) -> str:
        return f"{self.agents}x{self.frameworks}"


def run_point(
    agents: int,
    frameworks: int,
    rounds: int,
    seed: int,
    check: Allocator | None = None,
) -> tuple[PointResult, list[float]]:
    """Time `rounds` cycles; with `check`, also run it on the same states and compare."""
    started = time.perf_counter()
    state = build_state(agents, frameworks)
    build_s = time.perf_counter() - started
    config = AllocatorConfig()
    now_ns = 1_000_000_000
    offers: list[Allocation] = []
    cycles: list[float] = []
    cpus: list[float] = []
    check_cycles: list[float] = []
    made: list[int] = []
    filtered = 0
    for index in range(rounds):
        hold_then_decline(state, offers, now_ns)
        filtered += len(offers)
        now_ns += 1_000_000_000  # one allocation interval
        gc.collect()  # the previous round's garbage is not this cycle's cost
        started, cpu_started = time.perf_counter(), time.process_time()
        offers = allocate(state, now_ns, config, None, seed + index)
        cycles.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu_started)
        made.append(len(offers))
        if check is not None:
            started = time.perf_counter()
            expected = check(state, now_ns, config, None, seed + index)
            check_cycles.append(time.perf_counter() - started)
            if expected != offers:
                raise SystemExit(f"{agents}x{frameworks} round {index}: baseline disagrees")
        print(
            f"  {agents}x{frameworks} round {index}: allocate() took {cycles[-1]:.3f} s"
            f" to make {len(offers)} offers after filtering {filtered} offers",
            file=sys.stderr,
        )
    point = PointResult(agents, frameworks, rounds, cycles, cpus, made, filtered, build_s)
    return point, check_cycles


def late_rounds(agents: int, frameworks: int, seed: int, timed: int) -> tuple[int, list[float]]:
    """Run rounds until every framework has refused every agent, then time `timed` more.

    Returns the round that first made no offer and the timed cycles; in these
    rounds each agent checks one refusal per framework.
    """
    state = build_state(agents, frameworks)
    config = AllocatorConfig()
    now_ns = 1_000_000_000
    offers: list[Allocation] = []
    saturated_at = -1
    cycles: list[float] = []
    for index in range(frameworks * 2 + timed):
        hold_then_decline(state, offers, now_ns)
        now_ns += 1_000_000_000
        if saturated_at >= 0:
            gc.collect()
        started = time.perf_counter()
        offers = allocate(state, now_ns, config, None, seed + index)
        elapsed = time.perf_counter() - started
        if saturated_at < 0 and not offers:
            saturated_at = index
        if saturated_at >= 0:
            cycles.append(elapsed)
            if len(cycles) == timed:
                break
    return saturated_at, cycles


# -- the baseline: a naive allocator in the style of Mesos before 1.7 -----------------------


def naive_allocate(
    state: State,
    now_ns: int,
    config: AllocatorConfig,
    agent_ids: Sequence[str] | None = None,
    seed: int = 0,
) -> list[Allocation]:
    """Same decisions as ours for this benchmark's states (flat roles, no constraints, no GPUs).

    Like Mesos's sorter before 1.7: per-client scalar totals are kept up to date,
    but every agent re-sorts all roles and all their frameworks by freshly computed
    (float) shares; chunks, minimums and filters use `Resources` arithmetic.
    """
    out: list[Allocation] = []
    totals = scalar_totals(state.cluster_total)
    held = {
        (framework.id, role): scalar_totals(resources)
        for framework in state.frameworks.values()
        for role, resources in framework.allocated.items()
    }
    role_held = {role: scalar_totals(resources) for role, resources in state.role_allocated.items()}
    roles = list(dict.fromkeys(role for f in state.frameworks.values() for role in f.roles))
    ids = sorted(dict.fromkeys(state.agents if agent_ids is None else agent_ids))
    for agent_id in shuffled(ids, seed):
        agent = state.agents[agent_id]
        if agent.status is not AgentStatus.ACTIVE:
            continue
        remaining = agent.total - agent.allocated
        for role in sorted(roles, key=lambda r: (share(role_held.get(r, {}), totals), r)):
            chunk = remaining.allocatable_to(role)
            if not chunk or not minimum_met(chunk, config):
                continue
            frameworks = sorted(
                (
                    framework
                    for framework in state.frameworks.values()
                    if framework.active
                    and role in framework.roles
                    and role not in framework.suppressed_roles
                ),
                key=lambda f: (share(held.get((f.id, role), {}), totals), f.id),
            )
            for framework in frameworks:
                refusal = framework.filters.get((agent_id, role))
                if refusal and refusal.expires_ns > now_ns and refusal.resources.contains(chunk):
                    continue
                out.append(Allocation(framework.id, agent_id, role, chunk))
                amounts = scalar_totals(chunk)
                for bucket in (
                    held.setdefault((framework.id, role), {}),
                    role_held.setdefault(role, {}),
                ):
                    for name, amount in amounts.items():
                        bucket[name] = bucket.get(name, 0) + amount
                remaining = remaining - chunk
                break
            if not remaining:
                break
    return out


def scalar_totals(resources: Resources) -> dict[str, int]:
    totals: dict[str, int] = {}
    for (name, _, _), quantity in resources:
        if isinstance(quantity, int) and quantity > 0:
            totals[name] = totals.get(name, 0) + quantity
    return totals


def share(held: dict[str, int], totals: dict[str, int]) -> float:
    return max((held.get(name, 0) / total for name, total in totals.items()), default=0.0)


def minimum_met(chunk: Resources, config: AllocatorConfig) -> bool:
    quantities = chunk.quantities()
    return not config.min_allocatable or any(
        all(quantities.get(name, 0) >= need for name, need in alternative.items())
        for alternative in config.min_allocatable
    )


# -- reporting ---------------------------------------------------------------------------


def summary(values: list[float]) -> tuple[float, float, float]:
    return min(values), statistics.median(values), max(values)


def parse_grid(text: str) -> tuple[tuple[int, int], ...]:
    points = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        agents, sep, frameworks = item.partition("x")
        if not sep or not agents.isdigit() or not frameworks.isdigit():
            raise argparse.ArgumentTypeError(f"bad grid point '{item}': expected AGENTSxFRAMEWORKS")
        points.append((int(agents), int(frameworks)))
    return tuple(points)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROUNDS} rounds, under 60 s")
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help=f"rounds per point (default: frameworks x 2, capped at {FULL_ROUNDS_CAP})",
    )
    parser.add_argument("--grid", type=parse_grid, default=GRID, help="e.g. 1000x100,5000x500")
    parser.add_argument("--seed", type=int, default=0, help="agent shuffle seed of round 0")
    return parser.parse_args(argv)


def rounds_for(options: argparse.Namespace, frameworks: int) -> int:
    if options.rounds is not None:
        return max(int(options.rounds), 1)
    if options.quick:
        return QUICK_ROUNDS
    return min(frameworks * 2, FULL_ROUNDS_CAP)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    started = time.monotonic()
    # setup.py compiles the allocator with the fold, all or nothing; the naive baseline
    # below is this file's own code and always runs interpreted.
    compiled = fold.compiled()
    print(
        f"allocator benchmark (DeclineOffers), Python {platform.python_version()},"
        f" allocator {'compiled (mypyc)' if compiled else 'interpreted'}"
    )
    results: dict[str, Any] = {"cycle_s": {}, "cycle_cpu_s": {}, "points": {}, "saturated_s": {}}
    smallest = min(options.grid)
    for agents, frameworks in options.grid:
        rounds = rounds_for(options, frameworks)
        check = naive_allocate if (agents, frameworks) == smallest else None
        point, baseline = run_point(agents, frameworks, rounds, options.seed, check)
        low, median, high = summary(point.cycle_s)
        cpu = statistics.median(point.cpu_s)
        print(
            f"{point.label:>11}: {rounds} rounds, cycle min/median/max"
            f" {low:.3f}/{median:.3f}/{high:.3f} s (median CPU {cpu:.3f} s),"
            f" offers per round {point.offers[0]}..{point.offers[-1]},"
            f" declined {point.filtered}, state built in {point.build_s:.1f} s"
        )
        results["cycle_s"][point.label] = round(median, 4)
        results["cycle_cpu_s"][point.label] = round(cpu, 4)
        results["points"][point.label] = {
            "rounds": rounds,
            "cycle_min_s": round(low, 4),
            "cycle_median_s": round(median, 4),
            "cycle_max_s": round(high, 4),
            "offers": point.offers,
            "filtered": point.filtered,
        }
        if baseline:
            naive = statistics.median(baseline)
            print(
                f"{'baseline':>11}: naive re-sort allocator at {point.label}: median"
                f" {naive:.3f} s per cycle, same offers; ours is {naive / median:.1f}x faster"
            )
            results["baseline"] = {
                "point": point.label,
                "naive_cycle_s": round(naive, 4),
                "speedup": round(naive / median, 2),
            }
    for agents, frameworks in [SATURATED_QUICK if options.quick else SATURATED_FULL]:
        saturated_at, cycles = late_rounds(agents, frameworks, options.seed, timed=3)
        label = f"{agents}x{frameworks}"
        if not cycles:
            print(f"{'saturated':>11}: {label} still made offers after {frameworks * 2} rounds")
            continue
        median = statistics.median(cycles)
        print(
            f"{'saturated':>11}: {label} from round {saturated_at} every framework has refused"
            f" every agent: {median:.3f} s per cycle (no offers),"
            f" {median / (agents * frameworks) * 1e6:.2f} us per refusal check"
        )
        results["saturated_s"][label] = round(median, 4)
    results["anchor"] = "Mesos 1.8 DeclineOffers 10000x1000: 1.06 s per cycle (10,000 offers)"
    results["allocator_compiled"] = compiled
    results["wall_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
