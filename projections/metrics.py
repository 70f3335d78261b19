"""The master/* metrics of contract 6.5, computed from the cluster view.

Gauges are read off the view; counters come from `ClusterView.counters`,
which only ever grow (a rebuilt view counts the same log the same way).
What only the serving process knows (leadership, uptime, stream subscribers)
comes in as arguments. Metric values are doubles; booleans are 0/1.
"""

from __future__ import annotations

import re

from meseta.master.resources import EMPTY, MILLI, Resources
from meseta.projections.cluster import ClusterView
from meseta.projections.records import ACTIVE, DISCONNECTED, UNREACHABLE
from meseta.proto.mesos.v1 import mesos_pb2

SCALARS = ("cpus", "mem", "disk", "gpus")
GAUGE_STATES = {
    "staging": mesos_pb2.TASK_STAGING,
    "starting": mesos_pb2.TASK_STARTING,
    "running": mesos_pb2.TASK_RUNNING,
    "killing": mesos_pb2.TASK_KILLING,
    "unreachable": mesos_pb2.TASK_UNREACHABLE,
}
COUNTER_STATES = {
    "finished": mesos_pb2.TASK_FINISHED,
    "failed": mesos_pb2.TASK_FAILED,
    "killed": mesos_pb2.TASK_KILLED,
    "lost": mesos_pb2.TASK_LOST,
    "error": mesos_pb2.TASK_ERROR,
    "dropped": mesos_pb2.TASK_DROPPED,
    "gone": mesos_pb2.TASK_GONE,
    "gone_by_operator": mesos_pb2.TASK_GONE_BY_OPERATOR,
}
MESSAGE_KINDS = (
    "register_framework", "reregister_framework", "unregister_framework",
    "deactivate_framework", "kill_task", "status_update", "status_update_acknowledgement",
    "resource_request", "launch_tasks", "decline_offers", "revive_offers", "suppress_offers",
    "reconcile_tasks", "reconcile_operations", "framework_to_executor",
    "executor_to_framework", "operation_status_update",
    "operation_status_update_acknowledgement", "register_slave", "reregister_slave",
    "unregister_slave", "exited_executor", "update_slave", "authenticate",
)  # fmt: skip


def reason_metric(state: int, source: int, reason: int) -> str:
    """Mesos's master/<state>/<source>/<reason>, lower-cased, in the v0 names its master uses
    (SLAVE where v1 says AGENT)."""
    parts = (
        mesos_pb2.TaskState.Name(state),
        mesos_pb2.TaskStatus.Source.Name(source),
        mesos_pb2.TaskStatus.Reason.Name(reason),
    )
    return "master/" + "/".join(part.replace("AGENT", "SLAVE").lower() for part in parts)


def _scalar(resources: Resources, name: str) -> float:
    return sum(q for (n, _role), q in resources if n == name and isinstance(q, int)) / MILLI


def resource_metrics(view: ClusterView) -> dict[str, float]:
    total, used = EMPTY, EMPTY
    for agent in view.registered_agents():
        total = total + agent.total
        used = used + agent.used
    out: dict[str, float] = {}
    for name in SCALARS:
        total_value, used_value = _scalar(total, name), _scalar(used, name)
        out[f"master/{name}_total"] = total_value
        out[f"master/{name}_used"] = used_value
        out[f"master/{name}_percent"] = used_value / total_value if total_value else 0.0
        # Revocable resources are not supported yet: always none.
        for suffix in ("total", "used", "percent"):
            out[f"master/{name}_revocable_{suffix}"] = 0.0
    return out


def snapshot(
    view: ClusterView,
    *,
    elected: bool,
    uptime_s: float,
    operator_subscribers: int = 0,
    event_queue_messages: int = 0,
) -> dict[str, float]:
    """Every master/* metric by name (Mesos's /metrics/snapshot keys)."""
    counters = view.counters
    registered = view.registered_agents()
    active_agents = sum(1 for agent in registered if agent.status == ACTIVE)
    out: dict[str, float] = {
        "master/elected": 1.0 if elected else 0.0,
        "master/uptime_secs": uptime_s,
    }
    out.update(resource_metrics(view))
    out.update(
        {
            "master/slaves_active": active_agents,
            "master/slaves_inactive": len(registered) - active_agents,
            "master/slaves_connected": active_agents,
            "master/slaves_disconnected": sum(1 for a in registered if a.status == DISCONNECTED),
            "master/slaves_unreachable": view.agents_with(UNREACHABLE),
            "master/slave_registrations": counters.agent_registrations,
            "master/slave_reregistrations": counters.agent_reregistrations,
            "master/slave_removals": counters.agent_removals,
            "master/slave_removals/reason_unhealthy": 0,
            "master/slave_removals/reason_unregistered": 0,
            "master/slave_removals/reason_registered": counters.agent_removals,
            "master/slave_unreachable_scheduled": counters.agents_unreachable,
            "master/slave_unreachable_completed": counters.agents_unreachable,
            "master/slave_unreachable_canceled": 0,
            "master/slave_shutdowns_scheduled": 0,
            "master/slave_shutdowns_completed": 0,
            "master/slave_shutdowns_canceled": 0,
            "master/recovery_slave_removals": 0,
        }
    )
    frameworks = list(view.frameworks.values())
    active_frameworks = sum(1 for f in frameworks if f.active)
    connected = sum(1 for f in frameworks if f.connected)
    out["master/frameworks_active"] = active_frameworks
    out["master/frameworks_inactive"] = len(frameworks) - active_frameworks
    out["master/frameworks_connected"] = connected
    out["master/frameworks_disconnected"] = len(frameworks) - connected
    out["master/outstanding_offers"] = len(view.offers)
    for name, state in GAUGE_STATES.items():
        out[f"master/tasks_{name}"] = view.task_states.get(state, 0)
    for name, state in COUNTER_STATES.items():
        out[f"master/tasks_{name}"] = counters.terminal_tasks.get(state, 0)
    for (task_state, source, reason), count in counters.terminal_reasons.items():
        out[reason_metric(task_state, source, reason)] = count
    for kind in MESSAGE_KINDS:
        out[f"master/messages_{kind}"] = counters.messages.get(kind, 0)
    out["master/valid_status_updates"] = counters.status_updates
    out["master/invalid_status_updates"] = 0
    out["master/valid_status_update_acknowledgements"] = counters.messages.get(
        "status_update_acknowledgement", 0
    )
    out["master/invalid_status_update_acknowledgements"] = 0
    messages = counters.messages
    out["master/valid_framework_to_executor_messages"] = messages.get("framework_to_executor", 0)
    out["master/invalid_framework_to_executor_messages"] = 0
    out["master/valid_executor_to_framework_messages"] = messages.get("executor_to_framework", 0)
    out["master/invalid_executor_to_framework_messages"] = 0
    # Operations with ids (reservations, volumes) are not supported yet: none are tracked.
    out["master/valid_operation_status_updates"] = 0
    out["master/invalid_operation_status_updates"] = 0
    out["master/valid_operation_status_update_acknowledgements"] = 0
    out["master/invalid_operation_status_update_acknowledgements"] = 0
    out["master/operations/total"] = 0
    out["master/dropped_messages"] = 0
    # The master's queue is the log: committed entries this replica has yet to fold.
    out["master/event_queue_messages"] = event_queue_messages
    out["master/event_queue_dispatches"] = 0
    out["master/event_queue_http_requests"] = 0
    out["master/operator_event_stream_subscribers"] = operator_subscribers
    return {name: float(value) for name, value in out.items()}


_UNSAFE = re.compile(r"[^a-zA-Z0-9_:]")


def prometheus_name(name: str) -> str:
    """`master/tasks_running` -> `master_tasks_running` (Prometheus allows [a-zA-Z0-9_:])."""
    return _UNSAFE.sub("_", name)


def prometheus_text(metrics: dict[str, float]) -> str:
    """The text exposition format (version 0.0.4), every metric untyped."""
    lines = []
    for name, value in metrics.items():
        safe = prometheus_name(name)
        lines.append(f"# HELP {safe} Mesos metric {name}")
        lines.append(f"# TYPE {safe} untyped")
        lines.append(f"{safe} {value!r}")
    return "\n".join(lines) + "\n"
