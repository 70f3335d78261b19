"""A comparable description of a cluster view (for rebuild and restart tests).

Everything a reader can see, by id, with repeated things in a canonical
order where the view's own order is not meaningful (a task moved between the
active and unreachable sets may come back at another position).
"""

from __future__ import annotations

from typing import Any

from meseta.projections.cluster import ClusterView
from meseta.projections.records import AgentRecord, FrameworkRecord, TaskRecord


def task(record: TaskRecord) -> tuple[Any, ...]:
    return (
        record.proto.SerializeToString(deterministic=True),
        record.resources,
        record.role,
        record.holds,
        record.unreachable,
    )


def framework(record: FrameworkRecord) -> dict[str, Any]:
    return {
        "info": record.info.SerializeToString(deterministic=True),
        "flags": (record.active, record.connected),
        "times": (record.registered_ns, record.reregistered_ns, record.unregistered_ns),
        "tasks": sorted(task(t) for t in record.tasks.values()),
        "unreachable": sorted(task(t) for t in record.unreachable_tasks.values()),
        "completed": [task(t) for t in record.completed_tasks],
        "offers": sorted(record.offers),
        "inverse_offers": [i.SerializeToString() for i in record.inverse_offers.values()],
        "executors": sorted(record.executors),
        "used": dict(sorted(record.used.items())),
        "offered": dict(sorted(record.offered.items())),
    }


def agent(record: AgentRecord) -> dict[str, Any]:
    return {
        "info": record.info.SerializeToString(deterministic=True),
        "status": record.status,
        "total": record.total,
        "times": (record.registered_ns, record.reregistered_ns, record.unreachable_ns),
        "used": dict(sorted(record.used.items())),
        "offered": dict(sorted(record.offered.items())),
        "executors": sorted(record.executors),
    }


def describe(view: ClusterView) -> dict[str, Any]:
    return {
        "index": view.applied_index,
        "now": view.now_ns,
        "leader": (view.cluster_id, view.leader_term, view.master_info, view.elected_ns),
        "frameworks": {key: framework(f) for key, f in sorted(view.frameworks.items())},
        "completed_frameworks": [framework(f) for f in view.completed_frameworks],
        "agents": {key: agent(a) for key, a in sorted(view.agents.items())},
        "offers": sorted(view.offers),
        "counters": view.counters,
        "task_states": dict(sorted(view.task_states.items())),
        "maintenance": (
            view.maintenance_schedule.SerializeToString(deterministic=True),
            view.maintenance_status.SerializeToString(deterministic=True),
        ),
    }
