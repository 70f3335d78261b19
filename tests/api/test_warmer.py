"""The background warmer: every replica keeps its /state documents encoded."""

from __future__ import annotations

import asyncio
import random

from support.fold_cluster import Cluster
from support.fold_workload import Workload

from meseta.api.state_endpoints import warm_legacy
from meseta.api.state_json import framework_parts
from meseta.api.warmer import Warmer
from meseta.log.interface import LogRecord
from meseta.master.state import State
from meseta.projections.cluster import ClusterView
from meseta.projections.rebuild import fold_records


def workload(seed: int, entries: int) -> list[LogRecord]:
    rng = random.Random(seed)
    cluster = Cluster(check=False)
    commands = Workload(cluster.state, rng)
    while cluster.index < entries:
        cluster.batch([commands.next_command()[0] for _ in range(rng.choice((1, 2, 4)))])
    return [LogRecord(i + 1, entry) for i, entry in enumerate(cluster.entries)]


def cold_records(view: ClusterView) -> list[object]:
    return [
        record
        for record in [*view.registered_agents(), *view.all_frameworks(), *view.all_tasks()]
        if "legacy" not in record.encodings
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
    assert all(framework.task_runs for framework in view.all_frameworks())
    assert warmer.passes == 1
    await warmer.warm()  # the view did not move: nothing to do
    assert warmer.passes == 1

    state = State()
    fold_records(records[:200], ClusterView(), state)  # the fold state the view went on from
    fold_records(records[200:], view, state)
    assert cold_records(view)  # changed records dropped their encodings
    await warmer.warm()
    assert cold_records(view) == []
    assert warmer.passes == 2
    # What the warmed caches give equals documents encoded from scratch.
    fresh = fold_records(records, ClusterView(), State())
    await warm_legacy(fresh)
    assert documents(view) == documents(fresh)


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
