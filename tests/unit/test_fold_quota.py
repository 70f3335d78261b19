"""UPDATE_QUOTA in the fold: Mesos's checks (quota_handler.cpp), all or nothing, and the
offers it rescinds."""

from __future__ import annotations

import pytest
from support.fold_cluster import AGENT_RESOURCES, Cluster, of_type, one, quota_config

from meseta.master.events import CommandRejected, OfferRemoved, QuotaUpdated
from meseta.master.state import Quota
from meseta.master.validation import quota_configs_error


@pytest.mark.parametrize(
    ("config", "error"),
    [
        (quota_config("a/b"), "Updating quota on nested role 'a/b' is not supported yet"),
        (
            quota_config("-x"),
            "Invalid QuotaConfig: Invalid 'QuotaConfig.role': Role '-x' cannot have a"
            " component starting with '-'",
        ),
        (
            quota_config("dev", limits={"cpus": -1}),
            "Invalid QuotaConfig: Invalid limit configuration {'cpus': -1}:"
            " Negative values not supported",
        ),
        (
            quota_config("dev", guarantees={"cpus": float("nan")}),
            "Invalid QuotaConfig: Invalid guarantee configuration {'cpus': nan}: NaN not supported",
        ),
        (
            quota_config("dev", limits={"mem": 2.0**41}),
            "Invalid QuotaConfig: Invalid 'QuotaConfig.limits': {'mem': 2.19902e+12} is invalid:"
            " values greater than 1 exabyte (1099511627776) are not supported",
        ),
        (
            quota_config("dev", guarantees={"cpus": 2}, limits={"cpus": 1}),
            "Invalid QuotaConfig: 'QuotaConfig.guarantees' { cpus: 2 } is not contained within"
            " the 'QuotaConfig.limits' { cpus: 1 }",
        ),
    ],
)
def test_invalid_configs_are_refused_with_mesos_messages(config: object, error: str) -> None:
    assert quota_configs_error([config]) == error  # type: ignore[list-item]
    cluster = Cluster()
    rejected = one(cluster.quotas([config]), CommandRejected)  # type: ignore[list-item]
    assert (rejected.status, rejected.message) == (400, error)
    assert cluster.state.quotas == {}


def test_quota_is_set_updated_and_removed() -> None:
    cluster = Cluster()
    cluster.add_agent()
    events = cluster.set_quota("dev", guarantees={"cpus": 1}, limits={"cpus": 2, "mem": 0})
    (config,) = one(events, QuotaUpdated).configs
    assert config.role == "dev" and config.limits["cpus"].value == 2
    assert cluster.state.quotas == {"dev": Quota({"cpus": 1000}, {"cpus": 2000, "mem": 0})}
    cluster.set_quota("ops", limits={"cpus": 1})
    assert list(cluster.state.quotas) == ["dev", "ops"]
    events = cluster.set_quota("dev")  # no guarantees and no limits: no quota
    assert [c.role for c in one(events, QuotaUpdated).configs] == ["ops"]
    assert list(cluster.state.quotas) == ["ops"]


def test_a_limit_below_consumption_needs_force() -> None:
    cluster = Cluster()
    agent = cluster.add_agent()
    fid = cluster.add_framework(role="dev")
    cluster.start_task(fid, agent, "t1", resources="cpus:2;mem:128", role="dev")
    rejected = one(cluster.set_quota("dev", limits={"cpus": 1}), CommandRejected)
    assert rejected.message == (
        "Invalid QuotaConfig: Role 'dev' is already consuming 'cpus:2; mem:128'; this is"
        " more than the requested limits 'cpus:1' (use 'force' flag to bypass this check)"
    )
    assert one(cluster.set_quota("dev", limits={"cpus": 1}, force=True), QuotaUpdated)


def test_guarantees_beyond_capacity_need_force() -> None:
    cluster = Cluster()
    cluster.add_agent()  # cpus:4;mem:1024
    rejected = one(cluster.set_quota("dev", guarantees={"cpus": 5}), CommandRejected)
    assert rejected.message == (
        "Invalid QuotaConfig: total quota guarantees 'cpus:5' exceed cluster capacity"
        " 'cpus:4; mem:1024' (use 'force' flag to bypass this check)"
    )
    # All or nothing: the valid config next to it is not applied either.
    ops = quota_config("ops", limits={"cpus": 1})
    rejected = one(
        cluster.quotas([ops, quota_config("dev", guarantees={"cpus": 5})]), CommandRejected
    )
    assert cluster.state.quotas == {}
    assert one(cluster.set_quota("dev", guarantees={"cpus": 5}, force=True), QuotaUpdated)
    assert AGENT_RESOURCES.startswith("cpus:4")


def test_offers_are_rescinded_to_respect_limits_and_make_room_for_guarantees() -> None:
    cluster = Cluster()
    first, second = cluster.add_agent("h1"), cluster.add_agent("h2")
    dev = cluster.add_framework("dev", role="dev")
    ops = cluster.add_framework("ops", role="ops")
    dev_offer = cluster.add_offer(dev, first, role="dev")  # the whole agent: 4 cpus
    ops_offer = cluster.add_offer(ops, second, role="ops")
    events = cluster.set_quota("dev", limits={"cpus": 2})
    assert [e.offer_id for e in of_type(events, OfferRemoved)] == [dev_offer]
    assert one(events, OfferRemoved).rescind
    # Guarantees: other roles' offers go until what dev holds and what was rescinded cover it.
    events = cluster.set_quota("dev", guarantees={"cpus": 2}, limits={"cpus": 2})
    assert [e.offer_id for e in of_type(events, OfferRemoved)] == [ops_offer]
    assert cluster.state.dirty_agents.keys() >= {first, second}
