"""The pure hierarchical DRF allocator (master/allocator): fairness, eligibility, determinism.

States are built directly from the state dataclasses; `hold` keeps the agent's,
the framework's and the role's allocations and the cluster total consistent,
as the fold does. A straightforward reference allocator (exact fractions,
full re-sort per agent) checks the incremental one on random small states.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meseta.master.allocator import Allocation, AllocatorConfig, allocate, parse_min_allocatable
from meseta.master.allocator.config import satisfies
from meseta.master.allocator.constraints import compile_constraints, excludes
from meseta.master.allocator.cycle import shuffled
from meseta.master.resources import EMPTY, MILLI, Resources, count, parse
from meseta.master.state import (
    Agent,
    AgentStatus,
    Filter,
    Framework,
    FrameworkStatus,
    State,
)
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.scheduler import scheduler_pb2

GPU = mesos_pb2.FrameworkInfo.Capability.GPU_RESOURCES
NOW = 1_000_000_000_000
ANYTHING = AllocatorConfig(min_allocatable=())

# -- building states ----------------------------------------------------------------------


def add_agent(
    state: State,
    agent_id: str,
    resources: str,
    *,
    hostname: str = "",
    attributes: str = "",
    region: str | None = None,
    zone: str | None = None,
    status: AgentStatus = AgentStatus.ACTIVE,
) -> Agent:
    info = mesos_pb2.AgentInfo(hostname=hostname or f"{agent_id}.example")
    for item in filter(None, attributes.split(";")):
        name, _, value = item.partition(":")
        attribute = info.attributes.add(name=name)
        try:
            attribute.scalar.value = float(value)
            attribute.type = mesos_pb2.Value.SCALAR
        except ValueError:
            attribute.type = mesos_pb2.Value.TEXT
            attribute.text.value = value
    if region is not None:
        info.domain.fault_domain.region.name = region
        info.domain.fault_domain.zone.name = zone or ""
    total = parse(resources)
    agent = Agent(id=agent_id, info=info, status=status, total=total, registered_ns=0)
    state.agents[agent_id] = agent
    state.cluster_total = state.cluster_total + total
    return agent


def add_framework(
    state: State,
    framework_id: str,
    roles: Sequence[str] = ("*",),
    *,
    capabilities: Iterable[int] = (),
    suppressed: Iterable[str] = (),
    active: bool = True,
    constraints: scheduler_pb2.OfferConstraints | None = None,
    info: mesos_pb2.FrameworkInfo | None = None,
) -> Framework:
    framework = Framework(
        id=framework_id,
        info=info or mesos_pb2.FrameworkInfo(user="u", name=framework_id, roles=list(roles)),
        roles=tuple(roles),
        status=FrameworkStatus.CONNECTED if active else FrameworkStatus.DISCONNECTED,
        stream_id="",
        registered_ns=0,
        suppressed_roles=dict.fromkeys(suppressed),
        offer_constraints=constraints,
        capabilities=frozenset(capabilities),
    )
    state.frameworks[framework_id] = framework
    return framework


def hold(
    state: State, framework_id: str, agent_id: str, role: str, resources: str | Resources
) -> None:
    held = parse(resources) if isinstance(resources, str) else resources
    agent, framework = state.agents[agent_id], state.frameworks[framework_id]
    agent.allocated = agent.allocated + held
    framework.allocated[role] = framework.allocated.get(role, EMPTY) + held
    state.role_allocated[role] = state.role_allocated.get(role, EMPTY) + held


def refuse(
    state: State, framework_id: str, agent_id: str, role: str, resources: str, expires_ns: int
) -> None:
    filters = state.frameworks[framework_id].filters
    filters[(agent_id, role)] = Filter(parse(resources), expires_ns)


def cluster(agents: int, resources: str = "cpus:4;mem:1024") -> State:
    state = State()
    for index in range(agents):
        add_agent(state, f"a{index:02d}", resources)
    return state


def offered(allocations: list[Allocation]) -> dict[str, int]:
    """Framework id -> number of agents offered."""
    counts: dict[str, int] = {}
    for allocation in allocations:
        counts[allocation.framework_id] = counts.get(allocation.framework_id, 0) + 1
    return counts


def by_role(allocations: list[Allocation]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for allocation in allocations:
        counts[allocation.role] = counts.get(allocation.role, 0) + 1
    return counts


# -- fairness ------------------------------------------------------------------------------


def test_two_frameworks_in_one_role_alternate_agents() -> None:
    state = cluster(6)
    add_framework(state, "f1")
    add_framework(state, "f2")
    out = allocate(state, NOW, AllocatorConfig())
    assert [a.framework_id for a in out] == ["f1", "f2"] * 3
    assert all(a.role == "*" and a.resources == parse("cpus:4;mem:1024") for a in out)
    assert len({a.agent_id for a in out}) == 6


def test_the_framework_holding_less_goes_first() -> None:
    state = cluster(3)
    add_framework(state, "f1")
    add_framework(state, "f2")
    add_agent(state, "busy", "cpus:8;mem:2048")
    hold(state, "f1", "busy", "*", "cpus:8;mem:2048")
    out = allocate(state, NOW, AllocatorConfig())
    # f1 holds 8 of 20 cpus: f2 catches up in two agents, then the tie goes to "f1".
    assert [a.framework_id for a in out] == ["f2", "f2", "f1"]


def test_weights_two_to_one_give_two_to_one_shares() -> None:
    state = cluster(30)
    state.weights = {"heavy": 2000}
    add_framework(state, "fh", ["heavy"])
    add_framework(state, "fl", ["light"])
    out = allocate(state, NOW, AllocatorConfig())
    assert by_role(out) == {"heavy": 20, "light": 10}


def test_hierarchical_roles_share_by_subtree() -> None:
    state = cluster(8)
    add_framework(state, "fx", ["a/x"])
    add_framework(state, "fy", ["a/y"])
    add_framework(state, "fb", ["b"])
    out = allocate(state, NOW, AllocatorConfig())
    # a and b split evenly at the top; a/x and a/y split a's half.
    assert by_role(out) == {"a/x": 2, "a/y": 2, "b": 4}


def test_hierarchical_allocation_already_held_counts_for_the_parent() -> None:
    state = cluster(4)
    add_agent(state, "held", "cpus:8;mem:2048")
    add_framework(state, "fx", ["a/x"])
    add_framework(state, "fz", ["a/z"])  # suppressed: holds resources but gets no offers
    state.frameworks["fz"].suppressed_roles["a/z"] = None
    add_framework(state, "fb", ["b"])
    hold(state, "fz", "held", "a/z", "cpus:8;mem:2048")
    out = allocate(state, NOW, AllocatorConfig())
    # a's subtree already holds 8 cpus (a third of 24): b catches up first.
    assert [a.role for a in out[:2]] == ["b", "b"]
    assert by_role(out) == {"b": 3, "a/x": 1}


def test_role_with_frameworks_and_subroles_competes_through_its_own_leaf() -> None:
    state = cluster(4)
    add_framework(state, "fa", ["a"])
    add_framework(state, "fx", ["a/x"])
    out = allocate(state, NOW, AllocatorConfig())
    assert by_role(out) == {"a": 2, "a/x": 2}
    assert [a.role for a in out] == ["a", "a/x", "a", "a/x"]  # "a/." sorts before "a/x"


def test_a_role_listed_twice_counts_once() -> None:
    state = cluster(2)
    add_framework(state, "f1", ["r", "r"])
    add_framework(state, "f2", ["r"])
    assert offered(allocate(state, NOW, AllocatorConfig())) == {"f1": 1, "f2": 1}


def test_one_framework_in_several_roles_gets_offers_per_role() -> None:
    state = cluster(4)
    add_framework(state, "multi", ["r1", "r2"])
    out = allocate(state, NOW, AllocatorConfig())
    assert by_role(out) == {"r1": 2, "r2": 2}
    assert offered(out) == {"multi": 4}


# -- eligibility -----------------------------------------------------------------------------


def test_an_unexpired_filter_hides_the_agent_until_it_expires() -> None:
    state = cluster(1)
    add_framework(state, "f1")
    refuse(state, "f1", "a00", "*", "cpus:4;mem:1024", NOW + 5)
    assert allocate(state, NOW, AllocatorConfig()) == []
    assert allocate(state, NOW + 4, AllocatorConfig()) == []
    assert len(allocate(state, NOW + 5, AllocatorConfig())) == 1


def test_a_filtered_agent_goes_to_the_next_framework() -> None:
    state = cluster(1)
    add_framework(state, "f1")
    add_framework(state, "f2")
    refuse(state, "f1", "a00", "*", "cpus:4;mem:1024", NOW + 5)
    assert [a.framework_id for a in allocate(state, NOW, AllocatorConfig())] == ["f2"]


def test_resources_growing_beyond_the_filter_unhide_the_agent() -> None:
    state = cluster(1)
    add_framework(state, "f1")
    refuse(state, "f1", "a00", "*", "cpus:2;mem:1024", NOW + 5)  # refused when only 2 were free
    assert len(allocate(state, NOW, AllocatorConfig())) == 1
    refuse(state, "f1", "a00", "*", "cpus:8;mem:4096", NOW + 5)  # a superset still hides
    assert allocate(state, NOW, AllocatorConfig()) == []


def test_refusals_sharing_one_resources_object_are_each_checked_for_expiry() -> None:
    state = cluster(1)
    for name in ("f1", "f2", "f3"):
        add_framework(state, name)
    shared = parse("cpus:4;mem:1024")
    state.frameworks["f1"].filters[("a00", "*")] = Filter(shared, NOW + 5)
    state.frameworks["f2"].filters[("a00", "*")] = Filter(shared, NOW + 5)
    assert offered(allocate(state, NOW, AllocatorConfig())) == {"f3": 1}
    state.frameworks["f2"].filters[("a00", "*")] = Filter(shared, NOW)  # expired
    assert offered(allocate(state, NOW, AllocatorConfig())) == {"f2": 1}


def test_a_filter_is_per_role() -> None:
    state = cluster(1)
    add_framework(state, "f1", ["r1", "r2"])
    refuse(state, "f1", "a00", "r1", "cpus:4;mem:1024", NOW + 5)
    assert by_role(allocate(state, NOW, AllocatorConfig())) == {"r2": 1}


def test_suppressed_roles_get_no_offers() -> None:
    state = cluster(2)
    add_framework(state, "f1", ["r1", "r2"], suppressed=["r1"])
    out = allocate(state, NOW, AllocatorConfig())
    assert by_role(out) == {"r2": 2}
    state.frameworks["f1"].suppressed_roles["r2"] = None
    assert allocate(state, NOW, AllocatorConfig()) == []


def test_inactive_frameworks_are_skipped() -> None:
    state = cluster(2)
    add_framework(state, "gone", active=False)
    add_framework(state, "here")
    assert offered(allocate(state, NOW, AllocatorConfig())) == {"here": 2}


def test_roles_a_framework_is_not_subscribed_to_get_nothing() -> None:
    state = cluster(1)
    add_framework(state, "f1", ["r1"])
    out = allocate(state, NOW, AllocatorConfig())
    assert [a.role for a in out] == ["r1"]


def test_inactive_agents_are_skipped() -> None:
    state = State()
    for status in AgentStatus:
        add_agent(state, status.value, "cpus:1;mem:64", status=status)
    add_framework(state, "f1")
    assert [a.agent_id for a in allocate(state, NOW, AllocatorConfig())] == ["active"]


def test_gpu_agents_go_only_to_gpu_capable_frameworks() -> None:
    state = State()
    add_agent(state, "gpu", "cpus:4;mem:1024;gpus:1")
    add_agent(state, "plain", "cpus:4;mem:1024")
    add_framework(state, "f1")
    assert [(a.framework_id, a.agent_id) for a in allocate(state, NOW, AllocatorConfig())] == [
        ("f1", "plain")
    ]
    add_framework(state, "g1", capabilities=[GPU])
    out = allocate(state, NOW, AllocatorConfig())
    assert {(a.framework_id, a.agent_id) for a in out} == {("f1", "plain"), ("g1", "gpu")}


def test_gpu_filtering_can_be_turned_off() -> None:
    state = State()
    add_agent(state, "gpu", "cpus:4;mem:1024;gpus:1")
    add_framework(state, "f1")
    config = AllocatorConfig(filter_gpu_resources=False)
    assert [a.agent_id for a in allocate(state, NOW, config)] == ["gpu"]


def test_a_fully_allocated_gpu_agent_still_counts_as_a_gpu_agent() -> None:
    state = State()
    add_agent(state, "gpu", "cpus:4;mem:1024;gpus:1")
    add_framework(state, "g1", capabilities=[GPU])
    add_framework(state, "f1")
    hold(state, "g1", "gpu", "*", "gpus:1")
    assert offered(allocate(state, NOW, AllocatorConfig())) == {"g1": 1}


# -- reservations --------------------------------------------------------------------------


def test_reserved_resources_go_only_to_their_role_and_its_descendants() -> None:
    state = State()
    add_agent(state, "a00", "cpus(r):2;mem(r):512")
    add_framework(state, "other", ["s"])
    assert allocate(state, NOW, AllocatorConfig()) == []
    add_framework(state, "child", ["r/c"])
    out = allocate(state, NOW, AllocatorConfig())
    assert [(a.framework_id, a.role, a.resources) for a in out] == [
        ("child", "r/c", parse("cpus(r):2;mem(r):512"))
    ]


def test_an_agent_splits_across_roles_only_by_reservations() -> None:
    state = State()
    add_agent(state, "a00", "cpus(r):2;mem(r):512;cpus:1;mem:256")
    add_framework(state, "fr", ["r"])
    add_framework(state, "fs", ["s"])
    add_agent(state, "elsewhere", "cpus:30;mem:30000")
    hold(state, "fr", "elsewhere", "r", "cpus:10")  # r's share is larger: s goes first
    out = allocate(state, NOW, AllocatorConfig(), agent_ids=["a00"])
    assert [(a.role, a.resources) for a in out] == [
        ("s", parse("cpus:1;mem:256")),
        ("r", parse("cpus(r):2;mem(r):512")),
    ]


def test_a_reserved_role_first_in_order_takes_unreserved_too() -> None:
    state = State()
    add_agent(state, "a00", "cpus(r):2;mem(r):512;cpus:1;mem:256")
    add_framework(state, "fr", ["r"])
    add_framework(state, "fs", ["s"])
    add_agent(state, "elsewhere", "cpus:30;mem:30000")
    hold(state, "fs", "elsewhere", "s", "cpus:10")
    out = allocate(state, NOW, AllocatorConfig(), agent_ids=["a00"])
    assert [(a.role, a.resources) for a in out] == [
        ("r", parse("cpus(r):2;mem(r):512;cpus:1;mem:256"))
    ]


# -- minimum allocatable -------------------------------------------------------------------


def test_below_the_minimum_nothing_is_offered() -> None:
    state = State()
    add_agent(state, "small", "cpus:0.005;mem:31;disk:100")
    add_agent(state, "cpu", "cpus:0.01")
    add_agent(state, "mem", "mem:32")
    add_framework(state, "f1")
    out = allocate(state, NOW, AllocatorConfig())
    assert sorted(a.agent_id for a in out) == ["cpu", "mem"]
    assert len(allocate(state, NOW, ANYTHING)) == 3


def test_the_minimum_counts_range_elements() -> None:
    state = State()
    add_agent(state, "ports", "ports:[31000-31001]")
    add_framework(state, "f1")
    assert allocate(state, NOW, AllocatorConfig()) == []
    assert len(allocate(state, NOW, AllocatorConfig(parse_min_allocatable("ports:2")))) == 1
    assert allocate(state, NOW, AllocatorConfig(parse_min_allocatable("ports:3"))) == []


def test_a_framework_minimum_replaces_the_global_one_for_its_role() -> None:
    state = State()
    add_agent(state, "small", "cpus:0.005")
    info = mesos_pb2.FrameworkInfo(user="u", name="f1", roles=["r"])
    info.offer_filters["r"].min_allocatable_resources.SetInParent()  # empty: anything goes
    add_framework(state, "f1", ["r"], info=info)
    add_framework(state, "f2", ["r"])
    assert offered(allocate(state, NOW, AllocatorConfig())) == {"f1": 1}
    demanding = info.offer_filters["r"].min_allocatable_resources.quantities.add()
    demanding.quantities["cpus"].value = 1
    assert allocate(state, NOW, AllocatorConfig()) == []


def test_parse_min_allocatable() -> None:
    assert parse_min_allocatable("cpus:0.01|mem:32") == ({"cpus": 10}, {"mem": 32000})
    assert parse_min_allocatable("") == ()
    assert parse_min_allocatable(" cpus:1 ; mem:64 | disk:0 ") == (
        {"cpus": 1000, "mem": 64000},
        {},
    )
    assert parse_min_allocatable("cpus:1;cpus:2") == ({"cpus": 3000},)
    assert parse_min_allocatable("gpus:0.0001") == ({"gpus": 1},)
    for bad in ("cpus", "cpus:x", "cpus:-1", "cpus:1:2", ":1", "cpus:nan", "ports:[1-2]"):
        with pytest.raises(ValueError, match="min_allocatable"):
            parse_min_allocatable(bad)
    assert AllocatorConfig().min_allocatable == parse_min_allocatable("cpus:0.01|mem:32")


def test_an_empty_alternative_allows_anything() -> None:
    assert satisfies({"disk": 1}, ({"cpus": 10}, {}))
    assert not satisfies({"disk": 1}, ({"cpus": 10},))
    assert satisfies({}, ())


# -- offer constraints ---------------------------------------------------------------------


def constraint_set(
    role: str, *groups: Sequence[scheduler_pb2.AttributeConstraint]
) -> scheduler_pb2.OfferConstraints:
    constraints = scheduler_pb2.OfferConstraints()
    role_constraints = constraints.role_constraints[role]
    for group in groups:
        role_constraints.groups.add().attribute_constraints.extend(group)
    return constraints


def named(name: str, **predicate: object) -> scheduler_pb2.AttributeConstraint:
    constraint = scheduler_pb2.AttributeConstraint()
    constraint.selector.attribute_name = name
    set_predicate(constraint, predicate)
    return constraint


def pseudo(kind: int, **predicate: object) -> scheduler_pb2.AttributeConstraint:
    constraint = scheduler_pb2.AttributeConstraint()
    constraint.selector.pseudoattribute_type = kind  # type: ignore[assignment]
    set_predicate(constraint, predicate)
    return constraint


def set_predicate(
    constraint: scheduler_pb2.AttributeConstraint, predicate: dict[str, object]
) -> None:
    ((case, value),) = predicate.items()
    target = getattr(constraint.predicate, case)
    if case in ("exists", "not_exists"):
        target.SetInParent()
    elif case in ("text_equals", "text_not_equals"):
        target.value = str(value)
    else:
        target.regex = str(value)


Selector = scheduler_pb2.AttributeConstraint.Selector


def constrained_agents(constraints: scheduler_pb2.OfferConstraints, role: str = "*") -> list[str]:
    state = State()
    add_agent(state, "rack1", "cpus:1;mem:64", hostname="h1", attributes="rack:r1;cores:8")
    add_agent(state, "rack2", "cpus:1;mem:64", hostname="h2", attributes="rack:r2")
    add_agent(state, "bare", "cpus:1;mem:64", hostname="h3", region="eu", zone="eu-1")
    add_framework(state, "f1", [role], constraints=constraints)
    return sorted(a.agent_id for a in allocate(state, NOW, AllocatorConfig()))


def test_offer_constraints_text_equals_and_exists() -> None:
    assert constrained_agents(constraint_set("*", [named("rack", text_equals="r1")])) == ["rack1"]
    assert constrained_agents(constraint_set("*", [named("rack", exists=True)])) == [
        "rack1",
        "rack2",
    ]
    assert constrained_agents(constraint_set("*", [named("rack", not_exists=True)])) == ["bare"]
    assert constrained_agents(constraint_set("*", [named("rack", text_not_equals="r1")])) == [
        "bare",
        "rack2",
    ]


def test_offer_constraints_regex_is_a_full_match() -> None:
    assert constrained_agents(constraint_set("*", [named("rack", text_matches="r[12]")])) == [
        "rack1",
        "rack2",
    ]
    assert constrained_agents(constraint_set("*", [named("rack", text_matches="r")])) == []
    assert constrained_agents(constraint_set("*", [named("rack", text_not_matches="r1")])) == [
        "bare",
        "rack2",
    ]


def test_offer_constraints_non_text_attributes_satisfy_text_predicates() -> None:
    # As in Mesos: a SCALAR attribute cannot be compared as text, so it never excludes.
    for predicate in ("text_equals", "text_not_equals", "text_matches", "text_not_matches"):
        constraints = constraint_set("*", [named("cores", **{predicate: "zzz"})])
        assert "rack1" in constrained_agents(constraints), predicate


def test_offer_constraints_groups_or_and_constraints_and() -> None:
    either = constraint_set(
        "*", [named("rack", text_equals="r1")], [pseudo(Selector.HOSTNAME, text_equals="h3")]
    )
    assert constrained_agents(either) == ["bare", "rack1"]
    both = constraint_set(
        "*", [named("rack", exists=True), pseudo(Selector.HOSTNAME, text_equals="h2")]
    )
    assert constrained_agents(both) == ["rack2"]
    assert constrained_agents(constraint_set("*")) == []  # constraints with no group exclude all
    assert constrained_agents(constraint_set("*", [])) == ["bare", "rack1", "rack2"]


def test_offer_constraints_region_and_zone() -> None:
    assert constrained_agents(constraint_set("*", [pseudo(Selector.REGION, text_equals="eu")])) == [
        "bare"
    ]
    assert constrained_agents(
        constraint_set("*", [pseudo(Selector.ZONE, text_matches="eu-.*")])
    ) == ["bare"]
    assert constrained_agents(constraint_set("*", [pseudo(Selector.ZONE, not_exists=True)])) == [
        "rack1",
        "rack2",
    ]


def test_offer_constraints_apply_per_role() -> None:
    assert constrained_agents(constraint_set("other", [named("rack", text_equals="r1")])) == [
        "bare",
        "rack1",
        "rack2",
    ]


def test_bad_constraints_exclude_instead_of_raising() -> None:
    expression = compile_constraints(constraint_set("*", [named("rack", text_matches="(")]))["*"]
    assert excludes(expression, mesos_pb2.AgentInfo(hostname="h"))
    unset = scheduler_pb2.AttributeConstraint()
    unset.predicate.exists.SetInParent()
    expression = compile_constraints(constraint_set("*", [unset]))["*"]
    assert excludes(expression, mesos_pb2.AgentInfo(hostname="h"))


# -- resources offered -----------------------------------------------------------------------


def test_ports_ranges_are_offered_minus_the_used_ones() -> None:
    state = State()
    add_agent(state, "a00", "cpus:4;mem:1024;ports:[31000-32000]")
    add_framework(state, "f1")
    add_framework(state, "f2")
    hold(state, "f2", "a00", "*", "cpus:1;mem:128;ports:[31000-31000,31500-31599]")
    (allocation,) = allocate(state, NOW, AllocatorConfig())
    assert allocation.framework_id == "f1"
    assert allocation.resources == parse("cpus:3;mem:896;ports:[31001-31499,31600-32000]")


def test_a_fully_used_agent_gets_no_offer() -> None:
    state = cluster(1)
    add_framework(state, "f1")
    hold(state, "f1", "a00", "*", "cpus:4;mem:1024")
    assert allocate(state, NOW, ANYTHING) == []


def test_no_frameworks_or_no_agents_make_no_offers() -> None:
    assert allocate(cluster(3), NOW, AllocatorConfig()) == []
    state = State()
    add_framework(state, "f1")
    assert allocate(state, NOW, AllocatorConfig()) == []


# -- determinism -----------------------------------------------------------------------------


def test_same_inputs_same_offers_and_the_seed_shuffles_agents() -> None:
    state = cluster(20)
    add_framework(state, "f1")
    add_framework(state, "f2")
    first = allocate(state, NOW, AllocatorConfig(), seed=7)
    assert allocate(copy.deepcopy(state), NOW, AllocatorConfig(), seed=7) == first
    orders = {
        tuple(a.agent_id for a in allocate(state, NOW, AllocatorConfig(), seed=s)) for s in range(5)
    }
    assert len(orders) > 1
    assert all(sorted(order) == sorted(state.agents) for order in orders)


def test_agent_ids_limit_the_cycle_and_their_order_does_not_matter() -> None:
    state = cluster(6)
    add_framework(state, "f1")
    chosen = ["a04", "a01", "a02", "nope"]
    out = allocate(state, NOW, AllocatorConfig(), agent_ids=chosen, seed=3)
    assert sorted(a.agent_id for a in out) == ["a01", "a02", "a04"]
    assert allocate(state, NOW, AllocatorConfig(), agent_ids=sorted(chosen), seed=3) == out


def test_the_shuffle_is_a_permutation() -> None:
    items = sorted(f"x{index}" for index in range(50))
    for seed in (0, 1, 2**70):
        result = shuffled(items, seed)
        assert sorted(result) == items
        assert result == shuffled(items, seed)
    assert shuffled(items, 1) != shuffled(items, 2)


def test_allocate_does_not_mutate_the_state() -> None:
    state = cluster(4)
    state.weights = {"r": 3000}
    add_framework(state, "f1", ["r"])
    add_framework(state, "f2", ["s"])
    hold(state, "f2", "a00", "s", "cpus:1")
    refuse(state, "f1", "a01", "r", "cpus:4;mem:1024", NOW + 1)
    before = copy.deepcopy(state)
    assert allocate(state, NOW, AllocatorConfig())
    assert snapshot(state) == snapshot(before)


def snapshot(state: State) -> object:
    return (
        {a.id: (a.total, a.allocated, a.status) for a in state.agents.values()},
        {
            f.id: (
                dict(f.allocated),
                {k: (v.resources, v.expires_ns) for k, v in f.filters.items()},
            )
            for f in state.frameworks.values()
        },
        dict(state.role_allocated),
        state.cluster_total,
        dict(state.weights),
    )


# -- the reference allocator and the property test ---------------------------------------------


def reference(
    state: State, now_ns: int, config: AllocatorConfig, seed: int = 0
) -> list[Allocation]:
    """Hierarchical DRF the slow, obvious way: exact fractions, full re-sort per agent."""
    totals: dict[str, int] = {}
    for (name, _, _), quantity in state.cluster_total:
        if isinstance(quantity, int):
            totals[name] = totals.get(name, 0) + quantity

    def scalars(resources: Resources) -> dict[str, int]:
        out: dict[str, int] = {}
        for (name, _, _), quantity in resources:
            if isinstance(quantity, int):
                out[name] = out.get(name, 0) + quantity
        return out

    def share(amounts: dict[str, int]) -> Fraction:
        return max(
            (Fraction(amounts.get(n, 0), t) for n, t in totals.items() if t), default=Fraction(0)
        )

    def add(into: dict[str, int], amounts: dict[str, int]) -> None:
        for name, amount in amounts.items():
            into[name] = into.get(name, 0) + amount

    held = {
        (f.id, r): scalars(res) for f in state.frameworks.values() for r, res in f.allocated.items()
    }
    role_held = {role: scalars(res) for role, res in state.role_allocated.items()}
    candidates: dict[str, list[Framework]] = {}
    for framework in state.frameworks.values():
        for role in framework.roles:
            if framework.active and role not in framework.suppressed_roles:
                candidates.setdefault(role, []).append(framework)
    nodes = dict.fromkeys(
        "/".join(role.split("/")[: depth + 1])
        for role in candidates
        for depth in range(role.count("/") + 1)
    )

    def subtree(path: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for role, amounts in role_held.items():
            if role == path or role.startswith(path + "/"):
                add(out, amounts)
        return out

    def children(path: str) -> list[str]:
        return [node for node in nodes if node.rpartition("/")[0] == path]

    def role_order(path: str) -> list[str]:
        items = [
            (share(subtree(c)) / Fraction(state.weights.get(c, 1000), 1000), c, False)
            for c in children(path)
        ]
        if path in candidates:
            items.append((share(role_held.get(path, {})), path + "/.", True))
        out: list[str] = []
        for _, name, is_self in sorted(items):
            if is_self or (name in candidates and not children(name)):
                out.append(path if is_self else name)
            else:
                out.extend(role_order(name))
        return out

    def counts(chunk: Resources) -> dict[str, int]:
        out: dict[str, int] = {}
        for (name, _, _), quantity in chunk:
            out[name] = out.get(name, 0) + (
                quantity if isinstance(quantity, int) else count(quantity) * MILLI
            )
        return out

    out: list[Allocation] = []
    for agent_id in shuffled(sorted(state.agents), seed):
        agent = state.agents[agent_id]
        if agent.status is not AgentStatus.ACTIVE:
            continue
        remaining = agent.total - agent.allocated
        gpu = agent.total.scalar("gpus") > 0
        pending = []
        for role in role_order(""):
            chunk = remaining.allocatable_to(role)
            if not chunk:
                continue
            frameworks = sorted(
                candidates[role], key=lambda f: (share(held.get((f.id, role), {})), f.id)
            )
            for framework in frameworks:
                minimum = config.min_allocatable
                filters = framework.info.offer_filters
                if role in filters and filters[role].HasField("min_allocatable_resources"):
                    minimum = tuple(
                        {n: round(v.value * MILLI) for n, v in q.quantities.items() if v.value > 0}
                        for q in filters[role].min_allocatable_resources.quantities
                    )
                if not satisfies(counts(chunk), minimum):
                    continue
                if config.filter_gpu_resources and gpu and GPU not in framework.capabilities:
                    continue
                expression = compile_constraints(framework.offer_constraints).get(role)
                if expression is not None and excludes(expression, agent.info):
                    continue
                refusal = framework.filters.get((agent_id, role))
                if refusal and refusal.expires_ns > now_ns and refusal.resources.contains(chunk):
                    continue
                out.append(Allocation(framework.id, agent_id, role, chunk))
                pending.append((framework.id, role, scalars(chunk)))
                remaining = remaining - chunk
                break
            if not remaining:
                break
        for framework_id, role, amounts in pending:
            add(held.setdefault((framework_id, role), {}), amounts)
            add(role_held.setdefault(role, {}), amounts)
    return out


ROLES = ("*", "a", "a/x", "a/y", "b", "b/z/w")
RESOURCE_TEXTS = (
    "cpus:1;mem:64",
    "cpus:4;mem:1024;ports:[31000-31009]",
    "cpus:2;mem:512;gpus:1",
    "cpus(a):1;mem(a):128;cpus:1;mem:128",
    "cpus(b):2;mem(b/z):256;disk:100",
    "cpus:0.005;mem:8",
    "mem:4096;disk:1000",
)
HELD_TEXTS = ("cpus:0.5;mem:32", "cpus:1", "mem:64;ports:[31000-31004]", "disk:50", "")


@st.composite
def states(draw: st.DrawFn) -> State:
    state = State()
    for index in range(draw(st.integers(1, 6))):
        add_agent(
            state,
            f"a{index}",
            draw(st.sampled_from(RESOURCE_TEXTS)),
            attributes=draw(st.sampled_from(("", "rack:r1", "rack:r2", "rack:7"))),
            status=draw(st.sampled_from((AgentStatus.ACTIVE,) * 4 + (AgentStatus.DISCONNECTED,))),
        )
    for index in range(draw(st.integers(0, 5))):
        roles = draw(st.lists(st.sampled_from(ROLES), min_size=1, max_size=3, unique=True))
        constraints = None
        if draw(st.integers(0, 4)) == 0:
            constraints = constraint_set(
                draw(st.sampled_from(roles)), [named("rack", text_not_equals="r2")]
            )
        info = mesos_pb2.FrameworkInfo(user="u", name=f"f{index}", roles=roles)
        if draw(st.integers(0, 4)) == 0:
            alternative = info.offer_filters[roles[0]].min_allocatable_resources.quantities.add()
            alternative.quantities[draw(st.sampled_from(("cpus", "disk", "mem")))].value = draw(
                st.sampled_from((0.5, 2.0, 100.0))
            )
        add_framework(
            state,
            f"f{index}",
            roles,
            capabilities=[GPU] if draw(st.booleans()) else [],
            suppressed=draw(st.lists(st.sampled_from(roles), max_size=1)),
            active=draw(st.integers(0, 5)) > 0,
            constraints=constraints,
            info=info,
        )
    frameworks, agents = list(state.frameworks.values()), list(state.agents.values())
    for _ in range(draw(st.integers(0, 6)) if frameworks else 0):
        framework, agent = draw(st.sampled_from(frameworks)), draw(st.sampled_from(agents))
        role = draw(st.sampled_from(framework.roles))
        held = parse(draw(st.sampled_from(HELD_TEXTS)))
        held = Resources(
            {key: q for key, q in held if key in agent.available.allocatable_to(role).items}
        )
        if held and agent.available.contains(held):
            hold(state, framework.id, agent.id, role, held)
    for _ in range(draw(st.integers(0, 6)) if frameworks else 0):
        framework, agent = draw(st.sampled_from(frameworks)), draw(st.sampled_from(agents))
        role = draw(st.sampled_from(framework.roles))
        refused = agent.available.allocatable_to(role)
        if draw(st.booleans()):
            refused = refused - parse("cpus:0.5")  # a smaller refusal does not hide more
        expires = NOW + draw(st.sampled_from((-1, 0, 1)))
        framework.filters[(agent.id, role)] = Filter(refused, expires)
    for role in draw(st.lists(st.sampled_from((*ROLES, "b/z")), max_size=3, unique=True)):
        state.weights[role] = draw(st.sampled_from((500, 1000, 2000, 3000)))
    return state


@settings(max_examples=300, deadline=None, database=None)
@given(
    state=states(),
    seed=st.integers(0, 2**32),
    minimum=st.sampled_from(("cpus:0.01|mem:32", "", "cpus:1;mem:100|disk:60", "ports:5")),
    filter_gpu=st.booleans(),
)
def test_random_states_match_the_reference_and_stay_within_bounds(
    state: State, seed: int, minimum: str, filter_gpu: bool
) -> None:
    config = AllocatorConfig(parse_min_allocatable(minimum), filter_gpu)
    before = snapshot(state)
    out = allocate(state, NOW, config, seed=seed)
    assert out == reference(state, NOW, config, seed)
    assert snapshot(state) == before
    given_away: dict[str, Resources] = {}
    for allocation in out:
        agent = state.agents[allocation.agent_id]
        framework = state.frameworks[allocation.framework_id]
        assert agent.status is AgentStatus.ACTIVE
        assert framework.active and allocation.role in framework.roles
        assert allocation.role not in framework.suppressed_roles
        assert allocation.resources
        assert allocation.resources == allocation.resources.allocatable_to(allocation.role)
        if filter_gpu and agent.total.scalar("gpus"):
            assert GPU in framework.capabilities
        refusal = framework.filters.get((allocation.agent_id, allocation.role))
        assert not (
            refusal
            and refusal.expires_ns > NOW
            and refusal.resources.contains(allocation.resources)
        )
        so_far = given_away.get(allocation.agent_id, EMPTY) + allocation.resources
        assert agent.available.contains(so_far)
        given_away[allocation.agent_id] = so_far
