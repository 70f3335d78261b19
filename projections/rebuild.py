"""Rebuild the cluster view from the event store: re-fold the log from its first entry.

Domain events are derived, never stored, so a rebuild runs the master fold
again on a fresh state and folds its events into a fresh view, exactly as a
replica does while it replays the log. A rebuilt view equals the live one at
the same index (tests/projections/test_rebuild.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from meseta.log.interface import LogRecord, ReplicatedLog
from meseta.master import fold
from meseta.master.state import State
from meseta.projections.base import Projection
from meseta.projections.cluster import MAX_COMPLETED_TASKS_PER_FRAMEWORK, ClusterView

READ_BATCH = 4096


P = TypeVar("P", bound=Projection)


def fold_records(records: Iterable[LogRecord], projection: P, state: State) -> P:
    """Apply `records` (in index order) to the fold `state` and their events to `projection`."""
    for record in records:
        events = fold.apply(state, record.entry, record.index)
        projection.apply(record.index, events, state.now_ns)
    return projection


def log_records(log: ReplicatedLog, stop: int) -> Iterable[LogRecord]:
    """Committed records 1 .. stop - 1, read in batches."""
    for start in range(1, stop, READ_BATCH):
        yield from log.read(start, min(start + READ_BATCH, stop))


def rebuild(
    log: ReplicatedLog,
    *,
    up_to: int | None = None,
    max_completed_tasks_per_framework: int = MAX_COMPLETED_TASKS_PER_FRAMEWORK,
) -> ClusterView:
    """A fresh view of the log up to index `up_to` (default: everything applied here)."""
    last = log.applied_index() if up_to is None else up_to
    view = ClusterView(max_completed_tasks_per_framework=max_completed_tasks_per_framework)
    return fold_records(log_records(log, last + 1), view, State())
