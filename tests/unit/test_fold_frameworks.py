"""Fold appliers for frameworks: subscribe, fail over, disconnect, remove (contract 2.3, 7.7)."""

from __future__ import annotations

import pytest
from support.fold_cluster import (
    NS_PER_S,
    Cluster,
    framework_info,
    names,
    of_type,
    one,
)

from meseta.master.events import (
    CommandRejected,
    FrameworkDisconnected,
    FrameworkFailedOver,
    FrameworkRemoved,
    FrameworkShutdownRequested,
    FrameworkSubscribed,
    FrameworkUpdated,
    OfferRemoved,
    OffersCreated,
    SubscriptionRejected,
    TaskCompleted,
    TaskStatusUpdated,
)
from meseta.master.state import FrameworkStatus
from meseta.master.v1 import commands_pb2 as c
from meseta.proto.mesos.v1 import mesos_pb2 as m

HOUR_NS = 3600 * NS_PER_S


def test_new_framework_gets_a_generated_id_and_is_connected() -> None:
    cluster = Cluster()
    events = cluster.subscribe("alpha", stream_id="s1")
    subscribed = one(events, FrameworkSubscribed)
    assert subscribed.framework_id == "C-0000"
    assert subscribed.stream_id == "s1"
    assert not subscribed.resubscribed
    assert subscribed.info.id.value == "C-0000"
    framework = cluster.state.frameworks["C-0000"]
    assert framework.status is FrameworkStatus.CONNECTED
    assert framework.roles == ("*",)
    assert cluster.add_framework("beta") == "C-0001"


def test_resubscribe_fails_over_the_old_stream_and_discards_offers_without_rescind() -> None:
    cluster = Cluster()
    agent = cluster.add_agent()
    fid = cluster.add_framework(stream_id="old", failover_timeout=60)
    offer_id = cluster.add_offer(fid, agent)
    events = cluster.resubscribe(fid, stream_id="new")
    assert one(events, FrameworkFailedOver) == FrameworkFailedOver(fid, "old")
    removed = one(events, OfferRemoved)
    assert (removed.offer_id, removed.reason, removed.rescind) == (offer_id, "discarded", False)
    subscribed = one(events, FrameworkSubscribed)
    assert subscribed.resubscribed and subscribed.stream_id == "new"
    assert names(events)[-1] == "FrameworkSubscribed"
    framework = cluster.state.frameworks[fid]
    assert framework.stream_id == "new" and not framework.offers
    assert not cluster.state.agents[agent].allocated


def test_resubscribe_after_disconnect_is_not_a_failover_of_a_live_stream() -> None:
    cluster = Cluster()
    fid = cluster.add_framework(failover_timeout=60)
    cluster.disconnect_framework(fid)
    assert fid in cluster.state.failover_deadlines
    events = cluster.resubscribe(fid)
    assert not of_type(events, FrameworkFailedOver)
    assert one(events, FrameworkSubscribed).resubscribed
    assert fid not in cluster.state.failover_deadlines
    assert cluster.state.frameworks[fid].status is FrameworkStatus.CONNECTED


def test_resubscribe_keeps_user_and_checkpoint_but_takes_other_fields() -> None:
    cluster = Cluster()
    fid = cluster.add_framework(user="alice", checkpoint=True, failover_timeout=10)
    cluster.resubscribe(fid, user="mallory", checkpoint=False, name="renamed")
    info = cluster.state.frameworks[fid].info
    assert (info.user, info.checkpoint, info.name) == ("alice", True, "renamed")


def test_unknown_framework_id_is_reconstructed_from_its_info() -> None:
    cluster = Cluster()
    events = cluster.subscribe(framework_id="external-1")
    subscribed = one(events, FrameworkSubscribed)
    assert subscribed.framework_id == "external-1" and not subscribed.resubscribed
    assert "external-1" in cluster.state.frameworks


def test_removed_framework_cannot_resubscribe() -> None:
    cluster = Cluster()
    fid = cluster.add_framework()
    assert one(cluster.teardown(fid), FrameworkRemoved).framework_id == fid
    events = cluster.resubscribe(fid, stream_id="again")
    assert events == [SubscriptionRejected("again", "Framework has been removed")]
    assert cluster.state.frameworks[fid].status is FrameworkStatus.REMOVED


def test_principal_change_is_rejected_on_resubscribe() -> None:
    cluster = Cluster()
    fid = cluster.add_framework(principal="ops", stream_id="s1")
    events = cluster.resubscribe(fid, principal="other", stream_id="s2")
    rejected = one(events, SubscriptionRejected)
    assert rejected.stream_id == "s2"
    assert "principal" in rejected.message
    assert cluster.state.frameworks[fid].stream_id == "s1"


@pytest.mark.parametrize(
    ("info", "fragment"),
    [
        (
            m.FrameworkInfo(user="u", name="fw", roles=["a"]),
            "'FrameworkInfo.roles' must not be set",
        ),
        (framework_info(roles=["a", "a"]), "duplicate"),
        (framework_info(roles=["a", "/bad"]), "Role '/bad'"),
        (framework_info(role="a b"), "whitespace"),
        (framework_info(role=".."), "'..'"),
        (framework_info(failover_timeout=-1), "failover_timeout"),
        (framework_info(failover_timeout=float("inf")), "failover_timeout"),
        (framework_info(framework_id="a/b"), "'FrameworkInfo.id'"),
    ],
)
def test_invalid_framework_info_is_rejected_in_stream(info: m.FrameworkInfo, fragment: str) -> None:
    cluster = Cluster()
    events = cluster.subscribe(info=info, stream_id="s1")
    assert len(events) == 1
    rejected = one(events, SubscriptionRejected)
    assert rejected.stream_id == "s1" and fragment in rejected.message
    assert not cluster.state.frameworks


def test_multi_role_with_role_set_is_rejected() -> None:
    cluster = Cluster()
    info = framework_info(roles=["a"])
    info.role = "b"
    rejected = one(cluster.subscribe(info=info), SubscriptionRejected)
    assert "'FrameworkInfo.role' must not be set" in rejected.message


def test_suppressed_roles_must_be_among_the_roles() -> None:
    cluster = Cluster()
    events = cluster.subscribe(roles=["a"], suppressed_roles=["b"])
    assert "Suppressed roles ['b']" in one(events, SubscriptionRejected).message
    fid = cluster.add_framework(roles=["a", "b"], suppressed_roles=["b"])
    assert list(cluster.state.frameworks[fid].suppressed_roles) == ["b"]


def test_disconnect_starts_the_failover_timer_and_tick_removes_the_framework() -> None:
    cluster = Cluster()
    agent = cluster.add_agent()
    fid = cluster.add_framework(failover_timeout=60)
    cluster.start_task(fid, agent, "t1")
    events = cluster.disconnect_framework(fid)
    assert one(events, FrameworkDisconnected).framework_id == fid
    framework = cluster.state.frameworks[fid]
    assert framework.status is FrameworkStatus.DISCONNECTED
    assert cluster.state.failover_deadlines[fid] == cluster.now_ns + 60 * NS_PER_S

    assert not cluster.tick(59 * NS_PER_S)  # not yet
    events = cluster.tick(1 * NS_PER_S)
    killed = one(events, TaskStatusUpdated)
    assert killed.state == m.TASK_KILLED
    assert killed.status.reason == m.TaskStatus.REASON_FRAMEWORK_REMOVED
    assert killed.status.message == f"Framework {fid} removed"  # Mesos's words (schema 3)
    assert killed.status.source == m.TaskStatus.SOURCE_MASTER and not killed.status.uuid
    assert one(events, TaskCompleted).task.task_id == "t1"
    assert one(events, FrameworkShutdownRequested) == FrameworkShutdownRequested(agent, fid)
    assert one(events, FrameworkRemoved).framework_id == fid
    assert framework.status is FrameworkStatus.REMOVED
    assert not framework.tasks and not framework.allocated
    assert not cluster.state.agents[agent].allocated
    assert fid not in cluster.state.failover_deadlines


def test_failover_timeout_zero_removes_the_framework_at_once() -> None:
    cluster = Cluster()
    fid = cluster.add_framework()
    events = cluster.disconnect_framework(fid)
    assert names(events) == ["FrameworkDisconnected", "FrameworkRemoved"]
    assert cluster.state.frameworks[fid].status is FrameworkStatus.REMOVED


def test_disconnect_of_a_stale_stream_is_ignored() -> None:
    cluster = Cluster()
    fid = cluster.add_framework(stream_id="old", failover_timeout=60)
    cluster.resubscribe(fid, stream_id="new")
    assert cluster.disconnect_framework(fid, stream_id="old") == []
    assert cluster.state.frameworks[fid].status is FrameworkStatus.CONNECTED


def test_leader_change_disconnects_frameworks_with_at_least_the_reregistration_grace() -> None:
    cluster = Cluster(agent_reregister_timeout_ns=600 * NS_PER_S)
    agent = cluster.add_agent()
    short = cluster.add_framework("short")  # failover_timeout 0
    long = cluster.add_framework("long", failover_timeout=3600)
    offer_id = cluster.add_offer(short, agent)
    events = cluster.elect()
    removed = one(events, OfferRemoved)
    assert (removed.offer_id, removed.reason, removed.rescind) == (offer_id, "discarded", False)
    assert [e.framework_id for e in of_type(events, FrameworkDisconnected)] == [short, long]
    assert not of_type(events, FrameworkRemoved)
    deadlines = cluster.state.failover_deadlines
    assert deadlines[short] == cluster.now_ns + 600 * NS_PER_S
    assert deadlines[long] == cluster.now_ns + 3600 * NS_PER_S
    assert one(cluster.tick(600 * NS_PER_S), FrameworkRemoved).framework_id == short
    assert cluster.state.frameworks[long].status is FrameworkStatus.DISCONNECTED


def test_teardown_of_unknown_or_removed_framework_is_rejected() -> None:
    cluster = Cluster()
    assert of_type(cluster.teardown("nope"), CommandRejected)
    fid = cluster.add_framework()
    cluster.teardown(fid)
    assert of_type(cluster.teardown(fid), CommandRejected)


def test_teardown_kills_unreachable_tasks_too() -> None:
    cluster = Cluster()
    agent = cluster.add_agent()
    fid = cluster.add_framework(partition_aware=True)
    cluster.start_task(fid, agent, "t1")
    cluster.mark_unreachable(agent)
    assert "t1" in cluster.state.frameworks[fid].unreachable_tasks
    events = cluster.teardown(fid)
    assert one(events, TaskStatusUpdated).state == m.TASK_KILLED
    assert not one(events, TaskStatusUpdated).forward
    assert one(events, TaskCompleted).task.task_id == "t1"
    assert not cluster.state.frameworks[fid].unreachable_tasks
    # The agent is unreachable: nobody to tell to shut the framework down.
    assert not of_type(events, FrameworkShutdownRequested)


def test_suppress_and_revive_roles() -> None:
    cluster = Cluster()
    agent = cluster.add_agent()
    fid = cluster.add_framework(roles=["a", "b"])
    cluster.suppress(fid, ["a"])
    assert list(cluster.state.frameworks[fid].suppressed_roles) == ["a"]
    assert not of_type(cluster.offer(fid, agent, role="a"), OffersCreated)
    assert of_type(cluster.offer(fid, agent, role="b"), OffersCreated)
    cluster.suppress(fid)
    assert list(cluster.state.frameworks[fid].suppressed_roles) == ["a", "b"]
    cluster.revive(fid, ["a"])
    assert list(cluster.state.frameworks[fid].suppressed_roles) == ["b"]
    cluster.revive(fid)
    assert not cluster.state.frameworks[fid].suppressed_roles


def test_revive_clears_filters() -> None:
    cluster = Cluster()
    agent = cluster.add_agent()
    fid = cluster.add_framework()
    offer_id = cluster.add_offer(fid, agent)
    cluster.decline(fid, [offer_id], refuse_seconds=3600)
    assert cluster.state.frameworks[fid].filters
    cluster.revive(fid)
    assert not cluster.state.frameworks[fid].filters


def test_update_framework_rescinds_offers_of_removed_roles_and_rejects_immutable_changes() -> None:
    cluster = Cluster()
    agent = cluster.add_agent()
    fid = cluster.add_framework(roles=["a", "b"], user="u")
    offer_a = cluster.add_offer(fid, agent, role="a", resources="cpus:1")
    offer_b = cluster.add_offer(fid, agent, role="b", resources="cpus:1")
    info = framework_info(framework_id=fid, roles=["a"], user="u")
    events = cluster.run(update_framework=c.UpdateFramework(framework_info=info))
    removed = one(events, OfferRemoved)
    assert (removed.offer_id, removed.reason, removed.rescind) == (offer_b, "rescinded", True)
    assert one(events, FrameworkUpdated).framework_id == fid
    assert cluster.state.frameworks[fid].roles == ("a",)
    assert offer_a in cluster.state.offers

    changed_user = framework_info(framework_id=fid, roles=["a"], user="other")
    events = cluster.run(update_framework=c.UpdateFramework(framework_info=changed_user))
    assert "FrameworkInfo.user" in one(events, CommandRejected).message
    unknown = framework_info(framework_id="nope")
    events = cluster.run(update_framework=c.UpdateFramework(framework_info=unknown))
    assert one(events, CommandRejected).message == "Framework cannot be found"


def test_generated_framework_id_never_collides_with_a_reconstructed_one() -> None:
    cluster = Cluster()
    cluster.subscribe(framework_id="C-0000", failover_timeout=60)
    events = cluster.subscribe("newcomer")
    fid = one(events, FrameworkSubscribed).framework_id
    assert fid != "C-0000"
    assert len(cluster.state.frameworks) == 2
    assert cluster.state.frameworks["C-0000"].info.name == "fw"
