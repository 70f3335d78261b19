"""The allocator with quota (Mesos 1.9+): limits cap a role's consumption, and unreserved
resources are held back for unsatisfied guarantees (hierarchical.cpp's two stages)."""

from __future__ import annotations

from support.fold_cluster import Cluster

from meseta.master.allocator import Allocation, AllocatorConfig, allocate
from meseta.master.allocator.quota import QuotaBooks, shrink, shrink_to_room
from meseta.master.resources import MILLI, Resources, parse

CONFIG = AllocatorConfig()
AGENT = "cpus:4;mem:1024"


def cluster(agents: int, resources: str = AGENT) -> Cluster:
    built = Cluster()
    for index in range(agents):
        built.add_agent(f"h{index}", resources=resources)
    return built


def offers(built: Cluster) -> list[Allocation]:
    return allocate(built.state, built.now_ns, CONFIG)


def total(allocations: list[Allocation], role: str, name: str = "cpus") -> int:
    return sum(a.resources.scalar(name) for a in allocations if a.role == role)


def test_shrinking_follows_mesos_absent_name_rules() -> None:
    resources = parse("cpus:4;mem:1024;ports:[1-10]")
    assert shrink(resources, {"cpus": 1500}) == parse("cpus:1.5")  # absent names drop out
    kept = shrink_to_room(resources, {"cpus": 1500})
    assert kept == parse("cpus:1.5;mem:1024;ports:[1-10]")  # absent names are unlimited
    assert shrink_to_room(resources, {"cpus": 0}) == parse("mem:1024;ports:[1-10]")
    assert shrink_to_room(resources, None) is resources


def test_a_limit_caps_what_a_role_is_offered() -> None:
    built = cluster(3)  # 12 cpus
    built.add_framework("f1", role="dev")
    built.set_quota("dev", limits={"cpus": 5})
    out = offers(built)
    assert total(out, "dev") == 5 * MILLI
    # Memory has no limit: every agent that gave cpus gives all its memory.
    assert all(a.resources.scalar("mem") == 1024 * MILLI for a in out)


def test_a_role_at_its_limit_gets_nothing_more_but_others_do() -> None:
    built = cluster(2)
    dev = built.add_framework("f1", role="dev")
    built.add_framework("f2", role="ops")
    agent = next(iter(built.state.agents))
    built.start_task(dev, agent, "t1", resources=AGENT, role="dev")
    built.set_quota("dev", limits={"cpus": 4})
    out = offers(built)
    assert [(a.role, a.resources) for a in out] == [("ops", parse(AGENT))]


def test_subroles_count_against_and_are_capped_by_their_top_level_quota() -> None:
    built = cluster(2)
    fid = built.add_framework("f1", role="dev/a")
    agent = next(iter(built.state.agents))
    built.start_task(fid, agent, "t1", resources="cpus:3;mem:32", role="dev/a")
    built.set_quota("dev", limits={"cpus": 4})
    assert total(offers(built), "dev/a") == 1 * MILLI


def test_unsatisfied_guarantees_hold_back_headroom_from_other_roles() -> None:
    built = cluster(3)  # 12 cpus
    built.add_framework("f1", role="ops")
    built.set_quota("dev", guarantees={"cpus": 6}, limits={"cpus": 6})  # dev has no framework
    assert total(offers(built), "ops") == 6 * MILLI  # 6 cpus stay available for dev


def test_a_role_with_guarantees_is_served_first_then_bursts_within_its_limit() -> None:
    built = cluster(3)
    built.add_framework("f1", role="ops")
    built.add_framework("f2", role="dev")
    built.set_quota("dev", guarantees={"cpus": 6}, limits={"cpus": 8})
    out = offers(built)
    assert total(out, "dev") == 8 * MILLI  # its guarantee first, then a burst
    assert total(out, "ops") == 4 * MILLI  # what is left


def test_reservations_count_as_consumption_and_go_with_offers() -> None:
    built = Cluster()
    built.add_agent("h0", resources="cpus(dev):2;cpus:4;mem:1024")
    built.add_agent("h1", resources=AGENT)
    built.add_framework("f1", role="dev")
    built.set_quota("dev", limits={"cpus": 3})
    assert QuotaBooks(built.state).consumed["dev"] == {"cpus": 2 * MILLI}
    out = offers(built)
    # The reservation always goes along; only 1 unreserved cpu more fits the limit.
    assert total(out, "dev") == 3 * MILLI
    reserved = Resources({("cpus", "dev", ""): 2 * MILLI})
    assert any(a.resources.contains(reserved) for a in out)


def test_without_quota_the_plain_path_is_taken() -> None:
    built = cluster(2)
    built.add_framework("f1", role="dev")
    assert total(offers(built), "dev") == 8 * MILLI


def test_guarantees_come_before_drf_order() -> None:
    """dev holds more than ops (DRF would serve ops first) but is short of its guarantee:
    the first stage serves it anyway."""
    built = cluster(4)  # 16 cpus
    dev = built.add_framework("f1", role="dev")
    built.add_framework("f2", role="ops")
    agent = next(iter(built.state.agents))
    built.start_task(dev, agent, "t1", resources="cpus:2;mem:32", role="dev")
    built.set_quota("dev", guarantees={"cpus": 8}, limits={"cpus": 8})
    out = offers(built)
    assert total(out, "dev") == 6 * MILLI
    assert total(out, "ops") == 8 * MILLI
    for seed in range(1, 20):  # whatever the agents' order
        shuffled = allocate(built.state, built.now_ns, CONFIG, seed=seed)
        assert (total(shuffled, "dev"), total(shuffled, "ops")) == (6 * MILLI, 8 * MILLI)
