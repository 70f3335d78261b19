"""The cluster view on disk (LMDB): its records and its applied index, saved together.

One LMDB write transaction holds every record changed since the last save
and the meta record with `applied_index`, so what is on disk is always the
view exactly as of that index. After a restart the view is loaded from it
and the replica's fold replays the log from the start as always; the view
skips every entry at or below its index (`ClusterView.apply`) and carries on
from there, so it never folds an entry twice or misses one.

Records are `marshal`ed tuples of plain values and protobuf bytes (no code
is ever loaded from the file). The format carries a version; a file of
another version, of another Python, or ahead of the log (the log was
wiped) is discarded, and the view is rebuilt by the fold replay.
"""

from __future__ import annotations

import asyncio
import logging
import marshal
import sys
from pathlib import Path
from typing import Any

import lmdb

from meseta.master.resources import Resources
from meseta.master.validation import framework_roles
from meseta.projections.cluster import ClusterView, Counters
from meseta.projections.records import (
    AGENT,
    EXECUTOR,
    FRAMEWORK,
    OFFER,
    TASK,
    AgentRecord,
    ExecutorRecord,
    FrameworkRecord,
    OfferRecord,
    Record,
    TaskRecord,
)
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.maintenance import maintenance_pb2
from meseta.proto.mesos.v1.quota.quota_pb2 import QuotaConfig
from meseta.proto.mesos.v1.scheduler.scheduler_pb2 import OfferConstraints

log = logging.getLogger(__name__)

# Bumped whenever a record's persisted fields change, or what the view made of some entries
# was wrong: a store in another format is discarded and the view rebuilt from the log.
# 2: agent version and capabilities, framework offer constraints. 3: agent ip, terminal
# task reasons, role weights. 4: per-framework counters. 5: an agent's used and offered
# resources by allocation role. 6: a launch refused for a duplicate task id no longer
# marks the booked task with that id TASK_ERROR. 7: frameworks recovered after a leader
# change; agents' deactivation and drain; role quotas. 8: resource keys carry a shape
# (dynamic reservations, persistent volumes). 9: the maintenance schedule and status;
# agents' totals (reservations and volumes); frameworks' inverse offers.
FORMAT = 9
META = b"meta"
MAP_SIZE = 8 << 30  # address space only; the file grows with the data


def _items(resources: Resources) -> dict[Any, Any]:
    return dict(resources.items)


def _by_role(books: dict[str, Resources]) -> dict[str, Any]:
    return {role: _items(resources) for role, resources in books.items()}


def dump(record: Record) -> bytes:
    """The record's persisted fields (caches and cross-references are rebuilt on load)."""
    if isinstance(record, TaskRecord):
        values: tuple[Any, ...] = (
            record.proto.SerializeToString(),
            _items(record.resources),
            record.role,
            record.holds,
            record.unreachable,
            record.completed_seq,
        )
    elif isinstance(record, FrameworkRecord):
        values = (
            record.info.SerializeToString(),
            record.active,
            record.connected,
            record.registered_ns,
            record.reregistered_ns,
            record.unregistered_ns,
            _by_role(record.used),
            _by_role(record.offered),
            record.completed_seq,
            None
            if record.offer_constraints is None
            else record.offer_constraints.SerializeToString(),
            record.recovered,
            [inverse.SerializeToString() for inverse in record.inverse_offers.values()],
        )
    elif isinstance(record, AgentRecord):
        values = (
            record.info.SerializeToString(),
            record.status,
            record.registered_ns,
            record.reregistered_ns,
            record.unreachable_ns,
            _by_role(record.used),
            _by_role(record.offered),
            record.version,
            record.capabilities,
            record.ip,
            record.deactivated,
            None if record.drain is None else record.drain.SerializeToString(),
            record.drain_started_ns,
            _items(record.total),
        )
    elif isinstance(record, ExecutorRecord):
        values = (
            record.framework_id,
            record.agent_id,
            record.info.SerializeToString(),
            record.role,
        )
    elif isinstance(record, OfferRecord):
        values = (record.proto.SerializeToString(), _items(record.resources), record.role)
    else:
        raise TypeError(f"not a view record: {record!r}")
    return marshal.dumps(values)


def _meta(view: ClusterView) -> bytes:
    counters = view.counters
    master_info = view.master_info.SerializeToString() if view.master_info else None
    return marshal.dumps(
        (
            FORMAT,
            sys.version_info[:2],
            view.applied_index,
            view.now_ns,
            view.cluster_id,
            view.leader_term,
            master_info,
            view.elected_ns,
            view.serial,
            view.completed,
            (
                counters.terminal_tasks,
                counters.agent_registrations,
                counters.agent_reregistrations,
                counters.agent_removals,
                counters.agents_unreachable,
                counters.status_updates,
                counters.messages,
                counters.terminal_reasons,
                counters.frameworks,
            ),
            view.weights,
            [config.SerializeToString() for config in view.quotas.values()],
            view.maintenance_schedule.SerializeToString(),
            view.maintenance_status.SerializeToString(),
        )
    )


class ViewStore:
    """The cluster view's LMDB file under `path` (a directory)."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(str(path), map_size=MAP_SIZE, subdir=True, max_dbs=0)

    def close(self) -> None:
        self.env.close()

    def save(self, view: ClusterView) -> int:
        """Write what changed since the last save, with the applied index; return the count."""
        touched = view.touched
        if touched is None:
            raise RuntimeError("the view is not tracked (call ClusterView.track first)")
        with self.env.begin(write=True) as txn:
            for key, record in touched.items():
                if record is None:
                    txn.delete(key)
                else:
                    txn.put(key, dump(record))
            txn.put(META, _meta(view))
        count = len(touched)
        touched.clear()
        return count

    def clear(self) -> None:
        with self.env.begin(write=True) as txn:
            txn.drop(self.env.open_db(), delete=False)

    def load(self, view: ClusterView, *, max_index: int | None = None) -> bool:
        """Fill the fresh `view` from disk; False (view untouched) when there is nothing
        usable: no file, another format, or an index beyond `max_index` (the log's end)."""
        with self.env.begin() as txn:
            meta = txn.get(META)
            if meta is None:
                return False
            values = marshal.loads(meta)
            if values[0] != FORMAT or tuple(values[1]) != sys.version_info[:2]:
                log.warning("discarding the stored cluster view: written by another version")
                return False
            if max_index is not None and values[2] > max_index:
                log.warning("discarding the stored cluster view: it is ahead of the log")
                return False
            _restore_meta(view, values)
            loader = _Loader(view)
            for key, data in txn.cursor():
                if key != META:
                    loader.add(bytes(key), marshal.loads(data))
            loader.finish()
        return True


def _resources(items: dict[Any, Any]) -> Resources:
    return Resources(items)


def _restore_meta(view: ClusterView, values: tuple[Any, ...]) -> None:
    (_, _, view.applied_index, view.now_ns, view.cluster_id, view.leader_term, info) = values[:7]
    if info is not None:
        view.master_info = mesos_pb2.MasterInfo.FromString(info)
    view.elected_ns, view.serial, view.completed = values[7:10]
    view.weights = values[11]
    configs = [QuotaConfig.FromString(data) for data in values[12]]
    view.quotas = {config.role: config for config in configs}
    view.maintenance_schedule = maintenance_pb2.Schedule.FromString(values[13])
    view.maintenance_status = maintenance_pb2.ClusterStatus.FromString(values[14])
    (terminal, registrations, reregistrations, removals, unreachable, updates, messages,
     reasons, frameworks) = values[10]  # fmt: skip
    view.counters = Counters(
        terminal_tasks=terminal,
        agent_registrations=registrations,
        agent_reregistrations=reregistrations,
        agent_removals=removals,
        agents_unreachable=unreachable,
        status_updates=updates,
        messages=messages,
        terminal_reasons=reasons,
        frameworks=frameworks,
    )


class _Loader:
    """Rebuilds the view's cross-references from records read in key order."""

    def __init__(self, view: ClusterView) -> None:
        self.view = view
        self.frameworks: dict[str, FrameworkRecord] = {}
        self.completed_frameworks: list[FrameworkRecord] = []
        self.completed_tasks: dict[str, list[TaskRecord]] = {}
        self.read: dict[bytes, list[tuple[bytes, tuple[Any, ...]]]] = {}

    def keep(self, record: Record, key: bytes) -> None:
        record.key = key
        record.sink = self.view.touched

    def add(self, key: bytes, values: tuple[Any, ...]) -> None:
        self.read.setdefault(key[:1], []).append((key, values))

    def finish(self) -> None:
        """Build the records, those referred to first (keys sort by kind, then by age)."""
        builders = {
            AGENT: self.agent,
            FRAMEWORK: self.framework,
            TASK: self.task,
            EXECUTOR: self.executor,
            OFFER: self.offer,
        }
        for kind, build in builders.items():
            for key, values in self.read.get(kind, []):
                build(key, values)
        for framework_id, tasks in self.completed_tasks.items():
            tasks.sort(key=lambda task: task.completed_seq)
            self.frameworks[framework_id].completed_tasks.extend(tasks)
        self.completed_frameworks.sort(key=lambda framework: framework.completed_seq)
        self.view.completed_frameworks.extend(self.completed_frameworks)

    def agent(self, key: bytes, values: tuple[Any, ...]) -> None:
        (info, status, registered, reregistered, unreachable, used, offered, version, caps,
         ip, deactivated, drain, drain_started, total) = values  # fmt: skip
        agent = AgentRecord(mesos_pb2.AgentInfo.FromString(info), registered)
        agent.status, agent.reregistered_ns, agent.unreachable_ns = (
            status,
            reregistered,
            unreachable,
        )
        agent.used = {role: _resources(items) for role, items in used.items()}
        agent.offered = {role: _resources(items) for role, items in offered.items()}
        agent.version, agent.capabilities, agent.ip = version, tuple(caps), ip
        agent.total = _resources(total)  # with its reservations and volumes
        agent.deactivated, agent.drain_started_ns = deactivated, drain_started
        if drain is not None:
            agent.drain = mesos_pb2.DrainInfo.FromString(drain)
        self.keep(agent, key)
        self.view.agents[agent.id] = agent

    def framework(self, key: bytes, values: tuple[Any, ...]) -> None:
        (info, active, connected, registered, reregistered, unregistered, used, offered, seq,
         constraints, recovered, inverse_offers) = values  # fmt: skip
        framework = FrameworkRecord(
            mesos_pb2.FrameworkInfo.FromString(info), registered, self.view.completed_kept
        )
        framework.roles = framework_roles(framework.info)
        framework.active, framework.connected, framework.recovered = active, connected, recovered
        framework.reregistered_ns, framework.unregistered_ns = reregistered, unregistered
        framework.used = {role: _resources(items) for role, items in used.items()}
        framework.offered = {role: _resources(items) for role, items in offered.items()}
        framework.completed_seq = seq
        for data in inverse_offers:
            inverse = mesos_pb2.InverseOffer.FromString(data)
            framework.inverse_offers[inverse.id.value] = inverse
        if constraints is not None:
            framework.offer_constraints = OfferConstraints.FromString(constraints)
        self.keep(framework, key)
        self.frameworks[framework.id] = framework
        if seq >= 0:
            self.completed_frameworks.append(framework)
        else:
            self.view.frameworks[framework.id] = framework

    def task(self, key: bytes, values: tuple[Any, ...]) -> None:
        proto, resources, role, holds, unreachable, seq = values
        task = TaskRecord(mesos_pb2.Task.FromString(proto), _resources(resources), role)
        task.holds, task.unreachable, task.completed_seq = holds, unreachable, seq
        self.keep(task, key)
        framework = self.frameworks[task.proto.framework_id.value]
        task_id = task.proto.task_id.value
        if seq >= 0:
            self.completed_tasks.setdefault(framework.id, []).append(task)
            return
        if unreachable:
            framework.unreachable_tasks[task_id] = task
        else:
            framework.tasks[task_id] = task
        counts = self.view.task_states  # every task not completed is counted
        counts[task.state] = counts.get(task.state, 0) + 1

    def executor(self, key: bytes, values: tuple[Any, ...]) -> None:
        framework_id, agent_id, info, role = values
        record = ExecutorRecord(
            framework_id, agent_id, mesos_pb2.ExecutorInfo.FromString(info), role
        )
        self.keep(record, key)
        executor_id = record.info.executor_id.value
        self.frameworks[framework_id].executors[(agent_id, executor_id)] = record
        self.view.agents[agent_id].executors[(framework_id, executor_id)] = record

    def offer(self, key: bytes, values: tuple[Any, ...]) -> None:
        proto, resources, role = values
        record = OfferRecord(mesos_pb2.Offer.FromString(proto), _resources(resources), role)
        self.keep(record, key)
        offer_id = record.proto.id.value
        self.view.offers[offer_id] = record
        self.frameworks[record.proto.framework_id.value].offers[offer_id] = record


class ViewKeeper:
    """Keeps a view on disk: restores it once, then saves its changes every `interval_s`.

    Saving runs on the event loop that folds the view, between two entries, so
    every save is the view exactly at its `applied_index`.
    """

    def __init__(self, store: ViewStore, view: ClusterView, interval_s: float = 1.0) -> None:
        self.store = store
        self.view = view
        self.interval_s = interval_s
        self.task: asyncio.Task[None] | None = None

    def restore(self, max_index: int) -> bool:
        """Load the stored view (if usable, else forget the file) and start tracking."""
        restored = self.store.load(self.view, max_index=max_index)
        if not restored:
            self.store.clear()
        self.view.track()
        if restored:
            assert self.view.touched is not None
            self.view.touched.clear()  # what was just loaded is on disk already
        return restored

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run(), name="view-keeper")

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            if self.view.touched:
                self.store.save(self.view)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.store.save(self.view)
        self.store.close()
