"""The master/* metrics of contract 6.5, computed from the cluster view.

Gauges are read off the view; counters come from `ClusterView.counters`,
which only ever grow (a rebuilt view counts the same log the same way).
What only the serving process knows (leadership, uptime, stream subscribers)
comes in as arguments. Metric values are doubles; booleans are 0/1.
"""

from __future__ import annotations

import re
from collections.abc import Container, Mapping

from meseta.master.resources import EMPTY, MILLI, Resources
from meseta.master.state import is_terminal
from meseta.projections.cluster import LAUNCH, LAUNCH_GROUP, TERMINAL_METRICS, ClusterView
from meseta.projections.records import DISCONNECTED, UNREACHABLE, FrameworkRecord
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.scheduler import scheduler_pb2

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
    return sum(q for (n, _role, _), q in resources if n == name and isinstance(q, int)) / MILLI


def resource_metrics(view: ClusterView) -> dict[str, float]:
    total, used = EMPTY, EMPTY
    for agent in view.registered_agents():
        total = total + agent.total
        used = used + agent.used_total()
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
    active_agents = sum(1 for agent in registered if agent.active)
    out: dict[str, float] = {
        "master/elected": 1.0 if elected else 0.0,
        "master/uptime_secs": uptime_s,
    }
    out.update(resource_metrics(view))
    unregistered = counters.messages.get("unregister_slave", 0)
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
            # Every unregistration the fold accepts removes its agent; the other removals
            # are agents replaced by a new registration at their address.
            "master/slave_removals/reason_unregistered": unregistered,
            "master/slave_removals/reason_registered": counters.agent_removals - unregistered,
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
    for operation_state in OPERATION_STATES:  # registered at start in Mesos, so always present
        out[f"master/operations/{operation_state}"] = 0
    out["master/dropped_messages"] = 0
    # The master's queue is the log: committed entries this replica has yet to fold.
    out["master/event_queue_messages"] = event_queue_messages
    out["master/event_queue_dispatches"] = 0
    out["master/event_queue_http_requests"] = 0
    out["master/operator_event_stream_subscribers"] = operator_subscribers
    return {name: float(value) for name, value in out.items()}


# The operation states Mesos's master keeps a gauge of (as metrics.cpp registers them).
OPERATION_STATES = (
    "pending", "recovering", "unreachable", "finished", "failed", "error", "dropped",
    "gone_by_operator",
)  # fmt: skip


# -- per framework (Mesos's FrameworkMetrics, --publish_per_framework_metrics) ------------


def _names(prefix: str, enum: Mapping[str, int]) -> tuple[tuple[int, str], ...]:
    """(value, prefix + lower-cased name) of every value of a protobuf enum but UNKNOWN."""
    return tuple((value, prefix + name.lower()) for name, value in enum.items() if value)


CALL_METRICS = _names("calls/", dict(scheduler_pb2.Call.Type.items()))
EVENT_METRICS = _names("events/", dict(scheduler_pb2.Event.Type.items()))
OPERATION_METRICS = _names("operations/", dict(mesos_pb2.Offer.Operation.Type.items()))
ACTIVE_STATE_METRICS = tuple(
    (state, "tasks/active/" + name.lower())
    for name, state in mesos_pb2.TaskState.items()
    if not is_terminal(state)
)
OFFER_METRICS = ("offers/sent", "offers/accepted", "offers/declined", "offers/rescinded")
# Characters libprocess's http::encode keeps as they are in a framework's name.
_KEPT = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._!*'()\x7f")


def percent_encoded(text: str) -> str:
    """libprocess's http::encode: reserved, unsafe, control and non-ASCII bytes as %XX."""
    return "".join(chr(b) if b in _KEPT else f"%{b:02X}" for b in text.encode())


def framework_prefix(info: mesos_pb2.FrameworkInfo) -> str:
    return f"master/frameworks/{percent_encoded(info.name)}/{info.id.value}/"


def framework_metrics(
    view: ClusterView,
    suppressed: Mapping[str, Container[str]],
    calls: Mapping[str, Mapping[int, int]],
    events: Mapping[str, Mapping[int, int]],
) -> dict[str, float]:
    """Every framework not yet removed: its counters as the view folded them, its task
    gauges, its roles' suppression (`suppressed`: framework id -> suppressed roles), and the
    scheduler calls and events this process took and sent (`calls`, `events`: framework id
    -> type -> count), which like Mesos's start from zero in a newly elected master."""
    out: dict[str, float] = {}
    for framework in view.frameworks.values():
        out.update(_one_framework(view, framework, suppressed, calls, events))
    return out


def _one_framework(
    view: ClusterView,
    framework: FrameworkRecord,
    suppressed: Mapping[str, Container[str]],
    calls: Mapping[str, Mapping[int, int]],
    events: Mapping[str, Mapping[int, int]],
) -> dict[str, float]:
    fid = framework.id
    prefix = framework_prefix(framework.info)
    counted = view.counters.frameworks.get(fid, {})
    out: dict[str, float] = {"subscribed": 1.0 if framework.connected else 0.0}
    for name, table, counts in (
        ("calls", CALL_METRICS, calls.get(fid, {})),
        ("events", EVENT_METRICS, events.get(fid, {})),
    ):
        out[name] = float(sum(counts.values()))
        out.update((metric, float(counts.get(kind, 0))) for kind, metric in table)
    out.update((metric, float(counted.get(metric, 0))) for metric in OFFER_METRICS)
    out["operations"] = float(counted.get(LAUNCH, 0) + counted.get(LAUNCH_GROUP, 0))
    out.update((metric, float(counted.get(metric, 0))) for _, metric in OPERATION_METRICS)
    states: dict[int, int] = {}
    for by_state in framework.counts_by_agent().values():
        for state, count in by_state.items():
            states[state] = states.get(state, 0) + count
    out.update((metric, float(states.get(state, 0))) for state, metric in ACTIVE_STATE_METRICS)
    out.update((metric, float(counted.get(metric, 0))) for metric in TERMINAL_METRICS.values())
    roles_suppressed = suppressed.get(fid, ())
    for role in framework.roles:
        out[f"roles/{role}/suppressed"] = 1.0 if role in roles_suppressed else 0.0
    return {prefix + name: value for name, value in out.items()}


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
