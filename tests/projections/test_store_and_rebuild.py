"""The view on disk and rebuilt from the log: both must equal the view that was folded live.

A seeded random workload (tests/support/fold_workload.py) drives the fold; a
live view folds every entry and is saved to LMDB now and then. A "restarted"
view loaded from the store and fed the whole log again (entries at or below
its index are skipped) ends equal to the live one; so does a view rebuilt
from the log.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from support.fold_cluster import Cluster
from support.fold_workload import Workload
from support.view_snapshot import describe

from meseta.log.codec import SCHEMA_VERSION, encode_batch, encode_entry
from meseta.log.interface import LogRecord
from meseta.log.memory import MemoryLog
from meseta.master.state import State
from meseta.projections.cluster import ClusterView
from meseta.projections.rebuild import fold_records, rebuild
from meseta.projections.store import ViewKeeper, ViewStore

ENTRIES = 500


def workload_cluster(seed: int, entries: int = ENTRIES) -> tuple[Cluster, list[LogRecord]]:
    rng = random.Random(seed)
    cluster = Cluster(check=False)
    workload = Workload(cluster.state, rng)
    while cluster.index < entries:
        commands, advance_ns = workload.next_entry()
        cluster.batch(commands, advance_ns=advance_ns)
    records = [LogRecord(i + 1, entry) for i, entry in enumerate(cluster.entries)]
    return cluster, records


def live_view(records: list[LogRecord], **options: int) -> ClusterView:
    return fold_records(records, ClusterView(**options), State())


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_restart_resumes_from_the_stored_index(tmp_path: Path, seed: int) -> None:
    _, records = workload_cluster(seed)
    rng = random.Random(seed)
    saved_at = rng.randrange(50, ENTRIES - 50)
    # Small bounds so completed tasks and frameworks are evicted (and deleted on disk).
    options = {"max_completed_tasks_per_framework": 3, "max_completed_frameworks": 2}
    store = ViewStore(tmp_path / "views")
    try:
        view = ClusterView(**options)
        view.track()
        state = State()
        for record in records[:saved_at]:
            fold_records([record], view, state)
            if rng.random() < 0.1:
                store.save(view)
        store.save(view)
        after_save = fold_records(records[saved_at : saved_at + 20], view, state)
        assert after_save.applied_index == saved_at + 20  # folded on but never saved: lost
    finally:
        store.close()
    store = ViewStore(tmp_path / "views")
    try:
        restarted = ClusterView(**options)
        assert store.load(restarted, max_index=len(records))
        assert restarted.applied_index == saved_at
        assert describe(restarted) == describe(live_view(records[:saved_at], **options))
        # The replica replays the whole log: the view skips what it already has.
        fold_records(records, restarted, State())
    finally:
        store.close()
    assert describe(restarted) == describe(live_view(records, **options))


def test_store_ahead_of_the_log_is_discarded(tmp_path: Path) -> None:
    _, records = workload_cluster(5, entries=50)
    keeper = ViewKeeper(ViewStore(tmp_path / "views"), live_view(records))
    keeper.view.track()
    keeper.store.save(keeper.view)
    keeper.store.close()
    fresh = ViewKeeper(ViewStore(tmp_path / "views"), ClusterView())
    try:
        assert not fresh.restore(max_index=10)  # the log was wiped: start over
        assert fresh.view.applied_index == 0
        assert fresh.store.load(ClusterView()) is False  # and the file was cleared
    finally:
        fresh.store.close()


def test_saving_writes_only_what_changed(tmp_path: Path) -> None:
    _, records = workload_cluster(7, entries=200)
    view = ClusterView()
    view.track()
    state = State()
    store = ViewStore(tmp_path / "views")
    try:
        fold_records(records[:150], view, state)
        first = store.save(view)
        assert store.save(view) == 0
        written = 0
        for record in records[150:]:  # up to the next entry that changes the view
            fold_records([record], view, state)
            written = store.save(view)
            if written:
                break
        assert 0 < written < first
    finally:
        store.close()


@pytest.mark.parametrize("seed", [21, 22])
def test_rebuild_from_the_log_equals_live(seed: int) -> None:
    cluster, records = workload_cluster(seed)
    log = MemoryLog()
    for entry in cluster.entries:
        entry.header.schema_version = SCHEMA_VERSION
        log.apply_batch(encode_batch([encode_entry(entry)]))
    rebuilt = rebuild(log)
    assert rebuilt.applied_index == len(records)
    assert describe(rebuilt) == describe(live_view(records))
    assert rebuilt.get_state() == live_view(records).get_state()
    halfway = rebuild(log, up_to=ENTRIES // 2)
    assert describe(halfway) == describe(live_view(records[: ENTRIES // 2]))
