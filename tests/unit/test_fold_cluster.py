"""The fold itself and the cluster-wide commands: dedup, unknown commands, init, leaders, time."""

from __future__ import annotations

import pytest
from support.fold_cluster import NS_PER_S, Cluster, command, names, of_type, one

from meseta.log.v1.entries_pb2 import Entry
from meseta.master import fold
from meseta.master.digest import digest
from meseta.master.events import (
    ClusterInitialized,
    CommandRejected,
    FrameworkSubscribed,
    LeaderElected,
    OfferRemoved,
    WeightsUpdated,
)
from meseta.master.state import State
from meseta.master.v1 import commands_pb2 as c
from meseta.proto.mesos.v1 import mesos_pb2 as m

# A CommandBatch holding one Command whose only field (number 99) no replica knows.
UNKNOWN_COMMAND_BATCH = b"\x0a\x03\x98\x06\x01"


def raw_entry(events: bytes, *, ignorable: bool = False, proposal_id: bytes = b"raw") -> Entry:
    entry = Entry(events=events)
    entry.header.timestamp_ns = 1
    entry.header.proposal_id = proposal_id
    entry.header.ignorable_if_unknown = ignorable
    return entry


def test_init_cluster_once() -> None:
    cluster = Cluster(init=False, elect=False)
    events = cluster.run(init_cluster=c.InitCluster(cluster_id="X"))
    assert events == [ClusterInitialized("X")]
    assert cluster.state.cluster_id == "X"
    again = one(cluster.run(init_cluster=c.InitCluster(cluster_id="Y")), CommandRejected)
    assert again.message == "The cluster is already initialized"
    assert cluster.state.cluster_id == "X"


def test_commands_before_init_cluster_are_rejected() -> None:
    cluster = Cluster(init=False, elect=False)
    events = cluster.subscribe()
    assert events == [CommandRejected("subscribe_framework", "The cluster is not initialized")]
    assert not cluster.state.frameworks
    assert of_type(cluster.elect(), CommandRejected)


def test_duplicate_proposal_id_is_applied_once() -> None:
    cluster = Cluster()
    info = m.FrameworkInfo(user="u", name="fw")
    subscribe = command(
        subscribe_framework=c.SubscribeFramework(framework_info=info, stream_id="s")
    )
    first = cluster.apply(cluster.entry([subscribe], proposal_id=b"same"))
    assert one(first, FrameworkSubscribed).framework_id == "C-0000"
    assert cluster.apply(cluster.entry([subscribe], proposal_id=b"same")) == []
    assert list(cluster.state.frameworks) == ["C-0000"]
    assert cluster.state.recent_proposals[b"same"] == cluster.index - 1


def test_dedup_window_counts_entries_and_forgetting_depends_on_the_index_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fold, "DEDUP_WINDOW", 3)
    monkeypatch.setattr(fold, "FORGET_EVERY", 4)
    cluster = Cluster(init=True, elect=False)  # entry 1: p1
    tick = [command(tick=c.Tick())]
    cluster.batch(tick, proposal_id=b"once")  # entry 2
    cluster.tick()  # entry 3
    assert cluster.apply(cluster.entry(tick, proposal_id=b"once")) == []  # 4: within the window
    assert list(cluster.state.recent_proposals) == [b"p1", b"once", b"p3"]  # forgot at 4
    cluster.tick()  # entry 5
    # Entry 6: "once" was applied at 2, which is outside the window of 3 entries now.
    cluster.batch(tick, proposal_id=b"once")
    assert cluster.state.recent_proposals[b"once"] == 6
    cluster.tick()
    cluster.tick()  # entry 8: forget everything at or before 5
    assert list(cluster.state.recent_proposals) == [b"once", b"p7", b"p8"]


def test_a_batch_applies_every_command_in_order() -> None:
    cluster = Cluster()
    info = m.FrameworkInfo(user="u", name="fw")
    commands = [
        command(subscribe_framework=c.SubscribeFramework(framework_info=info, stream_id="a")),
        command(subscribe_framework=c.SubscribeFramework(framework_info=info, stream_id="b")),
        command(teardown_framework=c.TeardownFramework(framework_id="C-0000")),
    ]
    events = cluster.batch(commands)
    assert names(events) == ["FrameworkSubscribed", "FrameworkSubscribed", "FrameworkRemoved"]


def test_unknown_command_stops_the_replica_unless_ignorable() -> None:
    cluster = Cluster(elect=False)
    with pytest.raises(fold.UnknownCommand):
        fold.apply(cluster.state, raw_entry(UNKNOWN_COMMAND_BATCH, proposal_id=b"a"), 2)
    skipped = raw_entry(UNKNOWN_COMMAND_BATCH, ignorable=True, proposal_id=b"b")
    assert fold.apply(cluster.state, skipped, 3) == []
    assert cluster.state.applied_index == 3
    assert cluster.state.cluster_id == "C"


def test_newer_schema_version_stops_the_replica_unless_ignorable() -> None:
    state = State()
    entry = raw_entry(b"", proposal_id=b"x")
    entry.header.schema_version = fold.SCHEMA_VERSION + 1
    with pytest.raises(fold.UnknownCommand):
        fold.apply(state, entry, 1)
    entry.header.ignorable_if_unknown = True
    assert fold.apply(state, entry, 2) == []


def test_time_never_goes_back() -> None:
    cluster = Cluster()
    now = cluster.state.now_ns
    entry = cluster.entry([command(tick=c.Tick())])
    entry.header.timestamp_ns = now - 10 * NS_PER_S
    cluster.apply(entry)
    assert cluster.state.now_ns == now


def test_leader_election_records_term_info_and_config() -> None:
    cluster = Cluster(offer_timeout_ns=30 * NS_PER_S)
    events = cluster.elect(term=7)
    elected = one(events, LeaderElected)
    assert elected.term == 7 and elected.master_info.id == "master-7"
    assert cluster.state.leader_term == 7
    assert cluster.state.config.offer_timeout_ns == 30 * NS_PER_S
    assert of_type(cluster.elect(term=7), CommandRejected)
    assert of_type(cluster.elect(term=3), CommandRejected)


def test_tick_with_nothing_due_changes_nothing_but_time() -> None:
    cluster = Cluster()
    cluster.add_agent()
    cluster.add_framework(failover_timeout=10)
    assert cluster.tick(NS_PER_S) == []


def test_replay_of_the_same_entries_gives_the_same_digest() -> None:
    cluster = Cluster()
    agent = cluster.add_agent()
    fid = cluster.add_framework(partition_aware=True)
    cluster.start_task(fid, agent, "t1")
    cluster.disconnect_agent(agent)
    cluster.tick(700 * NS_PER_S)
    replayed = State()
    for index, entry in enumerate(cluster.entries, start=1):
        fold.apply(replayed, entry, index)
    assert digest(replayed) == digest(cluster.state)


def weights(*pairs: tuple[str, float]) -> c.UpdateWeights:
    return c.UpdateWeights(weight_infos=[m.WeightInfo(role=r, weight=w) for r, w in pairs])


def test_update_weights_sets_them_and_rescinds_offers_of_roles_in_use() -> None:
    cluster = Cluster()
    agent = cluster.add_agent()
    web = cluster.add_framework(roles=("web",))
    offer = cluster.add_offer(web, agent, role="web")
    # A role nobody uses: offers stand (Mesos rescinds only for a role with frameworks).
    events = cluster.run(update_weights=weights(("batch", 0.5)))
    assert one(events, WeightsUpdated).weights == (("batch", 500),)
    assert offer in cluster.state.offers
    events = cluster.run(update_weights=weights((" web ", 2.5), ("batch", 1.0)))
    assert cluster.state.weights == {"batch": 1000, "web": 2500}  # the role name trimmed
    assert one(events, OfferRemoved).rescind and not cluster.state.offers
    assert agent in cluster.state.dirty_agents  # the next allocation shares by them


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ((("web", 0.0),), "for role 'web': Invalid weight '0': Weights must be positive"),
        ((("web", -1.5),), "Invalid weight '-1.5'"),
        ((("a/../b", 1.0),), "Invalid role 'a/../b'"),
    ],
)
def test_invalid_weights_change_nothing(pairs: tuple[tuple[str, float], ...], message: str) -> None:
    cluster = Cluster()
    rejected = one(cluster.run(update_weights=weights(("ok", 2.0), *pairs)), CommandRejected)
    assert rejected.message.startswith("Failed to validate update weights request JSON")
    assert message in rejected.message
    assert cluster.state.weights == {}  # all or nothing: "ok" was not set either
