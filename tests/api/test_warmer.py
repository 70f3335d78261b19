"""The background warmer: every replica keeps its /state documents and v1 encodings warm."""

from __future__ import annotations

import asyncio
import random

import pytest
from support.fold_cluster import Cluster
from support.fold_workload import Workload

from meseta.api import encodings
from meseta.api.state_endpoints import warm_legacy
from meseta.api.state_json import framework_parts
from meseta.api.warmer import Warmer
from meseta.log.interface import LogRecord
from meseta.master.state import State
from meseta.projections.assembly import PROTOBUF
from meseta.projections.cluster import ClusterView
from meseta.projections.rebuild import fold_records


def workload(seed: int, entries: int) -> list[LogRecord]:
    rng = random.Random(seed)
    cluster = Cluster(check=False)
    commands = Workload(cluster.state, rng)
    while cluster.index < entries:
        batch, advance_ns = commands.next_entry((1, 2, 4))
        cluster.batch(batch, advance_ns=advance_ns)
    return [LogRecord(i + 1, entry) for i, entry in enumerate(cluster.entries)]


def cold_records(view: ClusterView, kind: str = "legacy") -> list[object]:
    """What a read would encode: records lacking a `kind` encoding, task blocks unjoined."""
    records = [*view.registered_agents(), *view.all_frameworks(), *view.all_tasks()]
    if kind != "legacy":
        records += view.executors()
    blocks = [
        block
        for framework in view.all_frameworks()
        for blocks in framework.task_runs.values()
        for block in blocks.blocks
    ]
    return [record for record in records if kind not in record.encodings] + [
        block for block in blocks if kind not in block.runs
    ]


def documents(view: ClusterView) -> list[bytes]:
    out: list[bytes] = []
    for framework in view.all_frameworks():
        framework_parts(framework, out)
    return out


async def test_a_pass_encodes_what_changed_and_matches_a_cold_build() -> None:
    records = workload(5, 400)
    view = fold_records(records[:200], ClusterView(), State())
    warmer = Warmer(view)
    assert cold_records(view)
    await warmer.warm()
    assert cold_records(view) == []
    assert cold_records(view, PROTOBUF.kind) == []
    assert all(framework.task_runs for framework in view.all_frameworks())
    assert warmer.passes == 1
    await warmer.warm()  # the view did not move: nothing to do
    assert warmer.passes == 1

    state = State()
    fold_records(records[:200], ClusterView(), state)  # the fold state the view went on from
    fold_records(records[200:], view, state)
    assert cold_records(view)  # changed records dropped their encodings
    assert cold_records(view, PROTOBUF.kind)
    await warmer.warm()
    assert cold_records(view) == []
    assert cold_records(view, PROTOBUF.kind) == []
    assert cold_records(view, encodings.JSON_ENCODING.kind)  # not warmed by default
    assert warmer.passes == 2
    # What the warmed caches give equals documents encoded from scratch.
    fresh = fold_records(records, ClusterView(), State())
    await warm_legacy(fresh)
    assert documents(view) == documents(fresh)
    assert view.get_state_bytes() == fresh.get_state_bytes()


async def test_v1_json_is_warmed_when_asked_for() -> None:
    records = workload(7, 300)
    view = fold_records(records, ClusterView(), State())
    json = encodings.JSON_ENCODING
    warmer = Warmer(view, forms=[json.kind])
    await warmer.warm()
    assert cold_records(view, json.kind) == []
    assert cold_records(view)  # only what was asked for
    fresh = fold_records(records, ClusterView(), State())
    assert view.state_message(json).join() == fresh.state_message(json).join()


def test_unknown_forms_are_refused() -> None:
    with pytest.raises(ValueError, match="Unknown encodings to warm: xml"):
        Warmer(ClusterView(), forms=["legacy", "xml"])


async def test_the_background_task_warms_and_stops() -> None:
    view = fold_records(workload(6, 100), ClusterView(), State())
    warmer = Warmer(view, every_s=0.01)
    warmer.start()
    try:
        for _ in range(500):
            if warmer.passes:
                break
            await asyncio.sleep(0.01)
        assert warmer.passes == 1
        assert cold_records(view) == []
    finally:
        await warmer.stop()
    assert warmer.task is None
