"""The cluster view: frameworks, agents, tasks, executors and offers as operators read them.

A pure fold of domain events (no clock: entry times come in as `now_ns`). Each
entity (projections/records.py) keeps its Mesos v1 protobuf as the source of
truth plus a cache of its encodings, cleared whenever the entity changes, so a
large /state or GET_STATE is assembled from cached pieces rather than
re-serialized (projections/assembly.py). Each framework also caches its task
lists in blocks of joined tasks (`FrameworkRecord.task_runs`, assembly.Blocks):
a task's change (`_task_changed`), addition or removal drops its block's runs
alone, so a response joins a few pieces per framework however many tasks it
has, and a change to one task of a large framework re-joins a few hundred
tasks, not all of them.

Domain events carry live fold objects (`TaskAdded.task`): everything needed is
copied at apply time and no reference to them is kept.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

from google.protobuf.message import Message

from meseta.master import events as ev
from meseta.master.appliers.agents import allocation_role
from meseta.master.exact import ratio
from meseta.master.resources import EMPTY, MILLI, UNRESERVED, Resources
from meseta.master.state import is_terminal
from meseta.master.validation import framework_roles
from meseta.projections.assembly import PROTOBUF, Chunks, Encoding, Parts
from meseta.projections.records import (
    ACTIVE,
    AGENT,
    DISCONNECTED,
    EXECUTOR,
    FRAMEWORK,
    GONE,
    OFFER,
    RECOVERING,
    REGISTERED,
    REMOVED,
    TASK,
    UNREACHABLE,
    AgentRecord,
    ExecutorRecord,
    FrameworkRecord,
    OfferRecord,
    Record,
    TaskRecord,
    TaskRun,
    book_add,
    book_subtract,
    inverse_offer_proto,
    offer_proto,
    record_status,
    resources_of,
    task_proto,
)
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.maintenance import maintenance_pb2
from meseta.proto.mesos.v1.master import master_pb2
from meseta.proto.mesos.v1.quota.quota_pb2 import QuotaConfig

GetAgents = master_pb2.Response.GetAgents
GetFrameworks = master_pb2.Response.GetFrameworks
GetExecutors = master_pb2.Response.GetExecutors
GetTasks = master_pb2.Response.GetTasks
GetState = master_pb2.Response.GetState
Event = master_pb2.Event
Reason = mesos_pb2.TaskStatus.Reason

MAX_COMPLETED_TASKS_PER_FRAMEWORK = 1000  # Mesos --max_completed_tasks_per_framework
MAX_COMPLETED_FRAMEWORKS = 50  # Mesos --max_completed_frameworks
CHECK_REASONS = (
    Reason.REASON_TASK_CHECK_STATUS_UPDATED,
    Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED,
)


# Per-framework counter names (Mesos's FrameworkMetrics) of what the view sees happen.
OFFER_OUTCOMES = {"accepted": "offers/accepted", "declined": "offers/declined"}
LAUNCH = "operations/launch"
LAUNCH_GROUP = "operations/launch_group"
TERMINAL_METRICS = {
    state: "tasks/terminal/" + mesos_pb2.TaskState.Name(state).lower()
    for state in mesos_pb2.TaskState.values()
    if is_terminal(state)
}


def _event(kind: int) -> Event:
    return Event(type=cast(Event.Type, kind))


DEFAULT_WEIGHT_MILLI = 1000  # an unlisted role weighs 1.0


@dataclass(slots=True)
class Counters:
    """Cumulative figures for /metrics (Mesos counters never go down)."""

    terminal_tasks: dict[int, int] = field(default_factory=dict)  # state -> count
    # (state, source, reason) -> count of terminal updates naming a reason, as Mesos's
    # master/<state>/<source>/<reason> counters.
    terminal_reasons: dict[tuple[int, int, int], int] = field(default_factory=dict)
    agent_registrations: int = 0
    agent_reregistrations: int = 0
    agent_removals: int = 0
    agents_unreachable: int = 0
    status_updates: int = 0
    # Mesos's master/messages_<kind>, counted from what the fold accepted.
    messages: dict[str, int] = field(default_factory=dict)
    # Framework id -> its per-framework counters by metric suffix ("offers/sent",
    # "operations/launch", "tasks/terminal/task_finished"), for frameworks not yet removed.
    frameworks: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, framework_id: str, name: str, amount: int = 1) -> None:
        counts = self.frameworks.get(framework_id)
        if counts is None:
            counts = self.frameworks[framework_id] = {}
        counts[name] = counts.get(name, 0) + amount


def equivalent_info(left: mesos_pb2.FrameworkInfo, right: mesos_pb2.FrameworkInfo) -> bool:
    """Mesos's `typeutils::equivalent`: the same fields set to the same values, `roles` and
    `capabilities` compared whatever their order."""
    return _canonical_info(left) == _canonical_info(right)


def _canonical_info(info: mesos_pb2.FrameworkInfo) -> tuple[bytes, list[bytes], list[str]]:
    rest = mesos_pb2.FrameworkInfo()
    rest.CopyFrom(info)
    del rest.capabilities[:]
    del rest.roles[:]
    capabilities = sorted(c.SerializeToString(deterministic=True) for c in info.capabilities)
    return rest.SerializeToString(deterministic=True), capabilities, sorted(info.roles)


# Domain events -> the master message kind they stand for (metrics).
MESSAGE_KINDS: dict[type, str] = {
    ev.KillRequested: "kill_task",
    ev.LaunchRequested: "launch_tasks",
    ev.AcknowledgementForwarded: "status_update_acknowledgement",
    ev.ExecutorExited: "exited_executor",
    ev.TasksReconcileRequested: "reconcile_tasks",
    ev.OperationStatusUpdated: "operation_status_update",
}


class ClusterView:
    """The read model every replica keeps warm; see the module docstring."""

    def __init__(
        self,
        *,
        max_completed_tasks_per_framework: int = MAX_COMPLETED_TASKS_PER_FRAMEWORK,
        max_completed_frameworks: int = MAX_COMPLETED_FRAMEWORKS,
    ) -> None:
        self.applied_index = 0
        self.now_ns = 0
        self.cluster_id = ""
        self.leader_term = 0
        self.master_info: mesos_pb2.MasterInfo | None = None
        self.elected_ns = 0
        self.weights: dict[str, int] = {}  # role -> configured weight, milli
        self.quotas: dict[str, QuotaConfig] = {}  # role -> its quota, as configured
        self.maintenance_schedule = maintenance_pb2.Schedule()
        self.maintenance_status = maintenance_pb2.ClusterStatus()
        self.completed_kept = max_completed_tasks_per_framework
        self.frameworks: dict[str, FrameworkRecord] = {}
        self.completed_frameworks: deque[FrameworkRecord] = deque(maxlen=max_completed_frameworks)
        self.agents: dict[str, AgentRecord] = {}
        self.offers: dict[str, OfferRecord] = {}
        self.counters = Counters()
        # Active tasks by state (gauges), kept as tasks change.
        self.task_states: dict[int, int] = {}
        # Resources of tasks whose agent has no record yet, by agent id and allocation role
        # (see `_hold`).
        self.unplaced: dict[str, dict[str, Resources]] = {}
        # Storage keys are a kind letter and a serial number, so a store lists
        # records in creation order; `completed` orders completed tasks and frameworks.
        self.serial = 0
        self.completed = 0
        # Records changed (None: removed) since the store last saved, by storage key;
        # None while no store keeps this view.
        self.touched: dict[bytes, Record | None] | None = None

    # -- storage bookkeeping ---------------------------------------------------------

    def track(self) -> None:
        """Start reporting changes; every record counts as changed."""
        self.touched = {}
        for record in self.records():
            record.sink = self.touched
            self.touched[record.key] = record

    def records(self) -> Iterator[Record]:
        yield from self.agents.values()
        for framework in self.all_frameworks():
            yield framework
            yield from framework.tasks.values()
            yield from framework.unreachable_tasks.values()
            yield from framework.completed_tasks
            yield from framework.executors.values()
        yield from self.offers.values()

    def adopt(self, record: Record, kind: bytes) -> None:
        """Give a new record its storage key (kind + serial) and report it."""
        self.serial += 1
        record.key = kind + self.serial.to_bytes(8, "big")
        record.sink = self.touched
        if self.touched is not None:
            self.touched[record.key] = record

    def discard(self, record: Record) -> None:
        if self.touched is not None:
            self.touched[record.key] = None
        record.sink = None

    # -- folding ------------------------------------------------------------------

    def apply(
        self, index: int, events: Sequence[ev.DomainEvent], now_ns: int | None = None
    ) -> list[Event]:
        """Fold entry `index`; return the operator events it produced, in order."""
        if index <= self.applied_index:
            return []  # already folded (resuming from a checkpoint)
        if now_ns is not None:
            self.now_ns = now_ns
        out: list[Event] = []
        messages = self.counters.messages
        for event in events:
            kind = type(event)
            handler = _HANDLERS.get(kind)
            if handler is not None:
                handler(self, event, out)
            message = MESSAGE_KINDS.get(kind)
            if message is not None:
                messages[message] = messages.get(message, 0) + 1
        self.applied_index = index
        return out

    def _leader_elected(self, event: ev.LeaderElected, out: list[Event]) -> None:
        self.leader_term = event.term
        self.master_info = event.master_info
        self.elected_ns = self.now_ns
        for agent in self.agents.values():
            if agent.status in REGISTERED:
                agent.status = RECOVERING
                agent.changed()
        # Subscribed with an old leader: recovered until they subscribe with this one.
        for framework in self.frameworks.values():
            framework.recovered = True
            framework.changed()

    def _weights_updated(self, event: ev.WeightsUpdated, out: list[Event]) -> None:
        self.weights = dict(event.weights)

    def _maintenance_changed(self, event: ev.MaintenanceChanged, out: list[Event]) -> None:
        self.maintenance_schedule = event.schedule
        self.maintenance_status = event.status

    def _quota_updated(self, event: ev.QuotaUpdated, out: list[Event]) -> None:
        self.quotas = {config.role: config for config in event.configs}

    def weight(self, role: str) -> float:
        return self.weights.get(role, DEFAULT_WEIGHT_MILLI) / 1000

    def _cluster_initialized(self, event: ev.ClusterInitialized, out: list[Event]) -> None:
        self.cluster_id = event.cluster_id

    # -- frameworks

    def _framework_subscribed(self, event: ev.FrameworkSubscribed, out: list[Event]) -> None:
        framework = self.frameworks.get(event.framework_id)
        info = mesos_pb2.FrameworkInfo()
        info.CopyFrom(event.info)
        if framework is None:
            framework = FrameworkRecord(info, self.now_ns, self.completed_kept)
            self.adopt(framework, FRAMEWORK)
            self.frameworks[framework.id] = framework
            kind = Event.FRAMEWORK_ADDED
            self._message("register_framework")
        else:
            framework.info, framework.roles = info, framework_roles(info)
            framework.reregistered_ns = self.now_ns
            kind = Event.FRAMEWORK_UPDATED
            self._message("reregister_framework")
        framework.offer_constraints = _copied(event.offer_constraints)
        framework.active = framework.connected = True
        framework.recovered = False
        framework.changed()
        self._framework_event(kind, framework, out)

    def _framework_event(self, kind: int, framework: FrameworkRecord, out: list[Event]) -> None:
        event = _event(kind)
        body = event.framework_added if kind == Event.FRAMEWORK_ADDED else event.framework_updated
        body.framework.CopyFrom(framework.proto())
        out.append(event)

    def _framework_disconnected(self, event: ev.FrameworkDisconnected, out: list[Event]) -> None:
        framework = self.frameworks.get(event.framework_id)
        if framework is not None:
            framework.active = framework.connected = False
            framework.changed()

    def _framework_updated(self, event: ev.FrameworkUpdated, out: list[Event]) -> None:
        framework = self.frameworks.get(event.framework_id)
        if framework is None:
            return
        info = mesos_pb2.FrameworkInfo()
        info.CopyFrom(event.info)
        # As Mesos's UPDATE_FRAMEWORK: subscribers hear of a FrameworkInfo that changed; new
        # suppressed roles or offer constraints alone are no FRAMEWORK_UPDATED.
        info_changed = not equivalent_info(framework.info, info)
        framework.info, framework.roles = info, framework_roles(info)
        framework.offer_constraints = _copied(event.offer_constraints)
        framework.changed()
        if info_changed:
            self._framework_event(Event.FRAMEWORK_UPDATED, framework, out)

    def _framework_removed(self, event: ev.FrameworkRemoved, out: list[Event]) -> None:
        framework = self.frameworks.pop(event.framework_id, None)
        if framework is None:
            return
        self.counters.frameworks.pop(framework.id, None)  # Mesos drops its metrics with it
        for key, executor in list(framework.executors.items()):
            self._drop_executor(framework, key, executor)
        for offer_id in list(framework.offers):
            self._drop_offer(offer_id)
        framework.active = framework.connected = False
        framework.unregistered_ns = self.now_ns
        self.completed += 1
        framework.completed_seq = self.completed
        framework.changed()
        if len(self.completed_frameworks) == self.completed_frameworks.maxlen:
            self._forget_framework(self.completed_frameworks[0])
        self.completed_frameworks.append(framework)
        removed = _event(Event.FRAMEWORK_REMOVED)
        removed.framework_removed.framework_info.CopyFrom(framework.info)
        out.append(removed)

    def _forget_framework(self, framework: FrameworkRecord) -> None:
        """A completed framework leaves the bounded history with its tasks."""
        for task in [*framework.tasks.values(), *framework.unreachable_tasks.values()]:
            self.discard(task)
        for task in framework.completed_tasks:
            self.discard(task)
        self.discard(framework)

    # -- offers

    def _offers_created(self, event: ev.OffersCreated, out: list[Event]) -> None:
        framework = self.frameworks.get(event.framework_id)
        if framework is None:
            return
        self.counters.add(framework.id, "offers/sent", len(event.offers))
        for offer in event.offers:
            agent = self.agents.get(offer.agent_id)
            record = OfferRecord(offer_proto(offer, agent), offer.resources, offer.role)
            self.adopt(record, OFFER)
            self.offers[offer.id] = record
            framework.offers[offer.id] = record
            book_add(framework.offered, offer.role, offer.resources)
            if agent is not None:
                book_add(agent.offered, offer.role, offer.resources)
                agent.changed()
        framework.changed()

    def _inverse_offers_created(self, event: ev.InverseOffersCreated, out: list[Event]) -> None:
        framework = self.frameworks.get(event.framework_id)
        if framework is None:
            return
        for inverse in event.inverse_offers:
            framework.inverse_offers[inverse.id] = inverse_offer_proto(inverse)
        framework.changed()

    def _inverse_offer_removed(self, event: ev.InverseOfferRemoved, out: list[Event]) -> None:
        framework = self.frameworks.get(event.framework_id)
        if framework is not None and event.inverse_offer_id in framework.inverse_offers:
            del framework.inverse_offers[event.inverse_offer_id]
            framework.changed()

    def _offer_removed(self, event: ev.OfferRemoved, out: list[Event]) -> None:
        # Mesos counts offers a DECLINE or ACCEPT names while still valid, and every RESCIND
        # it sends (expired and withdrawn offers alike).
        counted = OFFER_OUTCOMES.get(event.reason) or ("offers/rescinded" if event.rescind else "")
        if counted and event.framework_id in self.frameworks:
            self.counters.add(event.framework_id, counted)
        self._drop_offer(event.offer_id)

    def _drop_offer(self, offer_id: str) -> None:
        record = self.offers.pop(offer_id, None)
        if record is None:
            return
        self.discard(record)
        framework = self.frameworks.get(record.proto.framework_id.value)
        if framework is not None:
            framework.offers.pop(offer_id, None)
            book_subtract(framework.offered, record.role, record.resources)
            framework.changed()
        agent = self.agents.get(record.proto.agent_id.value)
        if agent is not None:
            book_subtract(agent.offered, record.role, record.resources)
            agent.changed()

    # -- tasks and executors

    def _task_added(self, event: ev.TaskAdded, out: list[Event]) -> None:
        task = event.task
        framework = self.frameworks.get(task.framework_id)
        if framework is None:
            return
        record = TaskRecord(task_proto(task), task.resources, task.role)
        self.adopt(record, TASK)
        old = framework.remove_task(task.task_id)
        if old is not None:
            self._forget_task(framework, old)
            self.discard(old)
        framework.add_task("tasks", record)
        self._count(record.state, 1)
        if not is_terminal(record.state):
            self._hold(framework, record, True)
        added = _event(Event.TASK_ADDED)
        added.task_added.task.CopyFrom(record.proto)
        out.append(added)

    def _task_status_updated(self, event: ev.TaskStatusUpdated, out: list[Event]) -> None:
        framework = self.frameworks.get(event.framework_id)
        if framework is None:
            return
        if event.refused:
            # Counted in the task metrics, as Mesos; never booked, so no TASK_UPDATED (a
            # booked task may have its id: a duplicate id is one reason to refuse).
            self._count_terminal(framework.id, event.status.state, event.status)
            return
        task_id = event.task_id
        record = framework.tasks.get(task_id) or framework.unreachable_tasks.get(task_id)
        if record is None or record.proto.agent_id.value != event.agent_id:
            return  # unknown here: an update the fold only forwards
        status = event.status
        old_state = record.state
        if status.HasField("unreachable_time") and not is_terminal(old_state):
            # The fold keeps such tasks as UNREACHABLE whatever the framework is told.
            new_state: int = mesos_pb2.TASK_UNREACHABLE
            if not record.unreachable:
                framework.remove_task(task_id)
                framework.add_task("unreachable_tasks", record)
                record.unreachable = True
        else:
            new_state = event.state
            if record.unreachable and status.reason == Reason.REASON_AGENT_REREGISTERED:
                framework.remove_task(task_id)
                framework.add_task("tasks", record)
                record.unreachable = False
        self.counters.status_updates += 1
        if status.source != mesos_pb2.TaskStatus.SOURCE_MASTER:
            self._message("status_update")
        message = record.proto
        if new_state != old_state:
            self._count(old_state, -1)
            self._count(new_state, 1)
            message.state = cast(mesos_pb2.TaskState, new_state)
            if is_terminal(new_state):
                self._count_terminal(framework.id, new_state, status)
        if status.uuid:
            message.status_update_state = status.state
            message.status_update_uuid = status.uuid
        # As Mesos: subscribers hear of every new state in the task's status history (a
        # RUNNING sent late, then the FINISHED after it), not only of task state changes.
        statuses = message.statuses
        new_status = not statuses or statuses[-1].state != status.state
        record_status(message, status)
        holds = not is_terminal(new_state) and not record.unreachable
        if holds != record.holds:
            self._hold(framework, record, holds)
        _task_changed(framework, record)
        if new_status or status.reason in CHECK_REASONS:
            updated = _event(Event.TASK_UPDATED)
            body = updated.task_updated
            body.framework_id.value = event.framework_id
            body.status.CopyFrom(status)
            body.state = cast(mesos_pb2.TaskState, new_state)
            out.append(updated)

    def _task_completed(self, event: ev.TaskCompleted, out: list[Event]) -> None:
        task = event.task
        framework = self.frameworks.get(task.framework_id)
        if framework is None:
            return
        record = framework.remove_task(task.task_id)
        if record is None:
            return
        self._forget_task(framework, record)
        record.unreachable = False
        self.completed += 1
        record.completed_seq = self.completed
        _task_changed(framework, record)
        evicted = framework.complete_task(record)
        if evicted is not None:
            self.discard(evicted)

    def _forget_task(self, framework: FrameworkRecord, record: TaskRecord) -> None:
        if record.holds:
            self._hold(framework, record, False)
        self._count(record.state, -1)

    def _count_terminal(self, framework_id: str, state: int, status: mesos_pb2.TaskStatus) -> None:
        counts = self.counters.terminal_tasks
        counts[state] = counts.get(state, 0) + 1
        self.counters.add(framework_id, TERMINAL_METRICS[state])
        if status.HasField("reason"):
            key = (state, status.source, status.reason)
            reasons = self.counters.terminal_reasons
            reasons[key] = reasons.get(key, 0) + 1

    def _message(self, kind: str) -> None:
        messages = self.counters.messages
        messages[kind] = messages.get(kind, 0) + 1

    def _count(self, state: int, delta: int) -> None:
        count = self.task_states.get(state, 0) + delta
        if count:
            self.task_states[state] = count
        else:
            self.task_states.pop(state, None)

    def _hold(self, framework: FrameworkRecord, record: TaskRecord, holds: bool) -> None:
        record.holds = holds
        _task_changed(framework, record)
        resources = record.resources
        book = book_add if holds else book_subtract
        book(framework.used, record.role, resources)
        framework.changed()
        agent_id = record.proto.agent_id.value
        agent = self.agents.get(agent_id)
        if agent is None:
            # A task adopted from an agent unknown here precedes the agent's own event
            # in their entry: its resources wait for the agent.
            book(self.unplaced.setdefault(agent_id, {}), record.role, resources)
            return
        book(agent.used, record.role, resources)
        agent.changed()

    def _launch_requested(self, event: ev.LaunchRequested, out: list[Event]) -> None:
        framework = self.frameworks.get(event.framework_id)
        if framework is not None:  # one per task of a LAUNCH, one per LAUNCH_GROUP, as Mesos
            self.counters.add(framework.id, LAUNCH_GROUP if event.group else LAUNCH)
        agent = self.agents.get(event.agent_id)
        info = event.executor
        if framework is None or agent is None or info is None:
            return
        key = (agent.id, info.executor_id.value)
        if key in framework.executors:
            return
        record = ExecutorRecord(
            framework.id, agent.id, info, allocation_role(info.resources, framework.roles)
        )
        self.adopt(record, EXECUTOR)
        framework.executors[key] = record
        agent.executors[(framework.id, info.executor_id.value)] = record
        book_add(framework.used, record.role, record.resources)
        book_add(agent.used, record.role, record.resources)
        framework.changed()
        agent.changed()

    def _executor_exited(self, event: ev.ExecutorExited, out: list[Event]) -> None:
        framework = self.frameworks.get(event.framework_id)
        key = (event.agent_id, event.executor_id)
        if framework is not None and key in framework.executors:
            self._drop_executor(framework, key, framework.executors[key])

    def _drop_executor(
        self, framework: FrameworkRecord, key: tuple[str, str], record: ExecutorRecord
    ) -> None:
        del framework.executors[key]
        self.discard(record)
        book_subtract(framework.used, record.role, record.resources)
        framework.changed()
        agent = self.agents.get(record.agent_id)
        if agent is not None:
            agent.executors.pop((framework.id, key[1]), None)
            book_subtract(agent.used, record.role, record.resources)
            agent.changed()

    def _drop_agent_executors(
        self, agent: AgentRecord, keep: Callable[[FrameworkRecord], bool] | None = None
    ) -> None:
        for (framework_id, executor_id), _record in list(agent.executors.items()):
            framework = self.frameworks.get(framework_id)
            if framework is None:
                agent.executors.pop((framework_id, executor_id), None)
                continue
            if keep is not None and keep(framework):
                continue
            key = (agent.id, executor_id)
            if key in framework.executors:
                self._drop_executor(framework, key, framework.executors[key])

    # -- agents

    def _agent_registered(self, event: ev.AgentRegistered, out: list[Event]) -> None:
        info = mesos_pb2.AgentInfo()
        info.CopyFrom(event.info)
        agent = self.agents.get(event.agent_id)
        # Mesos's AGENT_ADDED comes from its addSlave: for a new agent, or one coming back
        # from unreachable or recovered by a new leader; not for one that reconnects.
        reconnected = agent is not None and agent.status in REGISTERED
        if agent is None:
            agent = AgentRecord(info, self.now_ns)
            agent.used = self.unplaced.pop(agent.id, {})
            self.adopt(agent, AGENT)
            self.agents[agent.id] = agent
        else:
            agent.info, agent.total = info, resources_of(info.resources)
            agent.status = ACTIVE
        agent.version, agent.capabilities, agent.ip = event.version, event.capabilities, event.ip
        if event.reregistered:
            agent.reregistered_ns = self.now_ns
            agent.unreachable_ns = 0
            self.counters.agent_reregistrations += 1
            self._message("reregister_slave")
        else:
            self.counters.agent_registrations += 1
            self._message("register_slave")
        agent.changed()
        if not reconnected:
            added = _event(Event.AGENT_ADDED)
            added.agent_added.agent.CopyFrom(agent.proto())
            out.append(added)

    def _agent_disconnected(self, event: ev.AgentDisconnected, out: list[Event]) -> None:
        agent = self.agents.get(event.agent_id)
        if agent is None:
            return
        agent.status = DISCONNECTED
        agent.changed()
        # As the fold does: executors of frameworks that do not checkpoint are gone.
        self._drop_agent_executors(agent, keep=lambda framework: framework.info.checkpoint)

    def _agent_left(self, agent_id: str, status: str) -> AgentRecord | None:
        agent = self.agents.get(agent_id)
        if agent is None:
            return None
        agent.status = status
        if status != UNREACHABLE:  # gone for good: its deactivation and drain with it
            agent.deactivated, agent.drain, agent.drain_started_ns = False, None, 0
        agent.changed()
        self._drop_agent_executors(agent)
        return agent

    def _agent_deactivation_changed(
        self, event: ev.AgentDeactivationChanged, out: list[Event]
    ) -> None:
        agent = self.agents.get(event.agent_id)
        if agent is None:
            return
        agent.deactivated = event.deactivated
        agent.drain = _copied(event.drain)
        agent.drain_started_ns = event.drain_started_ns
        agent.changed()

    def _agent_resources_changed(self, event: ev.AgentResourcesChanged, out: list[Event]) -> None:
        agent = self.agents.get(event.agent_id)
        if agent is None:
            return
        agent.total = event.total
        agent.changed()

    def _agent_unreachable(self, event: ev.AgentUnreachable, out: list[Event]) -> None:
        agent = self._agent_left(event.agent_id, UNREACHABLE)
        if agent is not None:
            agent.unreachable_ns = self.now_ns
            self.counters.agents_unreachable += 1

    def _agent_gone(self, event: ev.AgentGone, out: list[Event]) -> None:
        self._agent_left(event.agent_id, GONE)

    def _agent_removed(self, event: ev.AgentRemoved, out: list[Event]) -> None:
        if self._agent_left(event.agent_id, REMOVED) is None:
            return
        self.counters.agent_removals += 1
        if event.cause == "unregistered":
            self._message("unregister_slave")
        removed = _event(Event.AGENT_REMOVED)
        removed.agent_removed.agent_id.value = event.agent_id
        out.append(removed)

    # -- reading ------------------------------------------------------------------

    def registered_agents(self) -> list[AgentRecord]:
        return [agent for agent in self.agents.values() if agent.status in REGISTERED]

    def recovered_agents(self) -> list[AgentRecord]:
        return [agent for agent in self.agents.values() if agent.status == RECOVERING]

    def agents_with(self, status: str) -> int:
        return sum(1 for agent in self.agents.values() if agent.status == status)

    def all_frameworks(self) -> Iterator[FrameworkRecord]:
        yield from self.frameworks.values()
        yield from self.completed_frameworks

    def all_tasks(self) -> Iterator[TaskRecord]:
        for framework in self.all_frameworks():
            yield from framework.tasks.values()
            yield from framework.unreachable_tasks.values()
            yield from framework.completed_tasks

    def executors(self) -> Iterator[ExecutorRecord]:
        for framework in self.frameworks.values():
            yield from framework.executors.values()

    def roles(self) -> dict[str, list[FrameworkRecord]]:
        """Every role a framework is subscribed to or holds resources in, with reservations
        on a registered agent, or with a configured weight or quota, and their ancestors
        (Mesos's knownRoles) -> its frameworks."""
        roles: dict[str, list[FrameworkRecord]] = {role: [] for role in self.weights}
        roles.update((role, []) for role in self.quotas if role not in roles)
        for agent in self.registered_agents():
            for _, role, _ in agent.total.items:
                if role != UNRESERVED:
                    roles.setdefault(role, [])
        for framework in self.frameworks.values():
            for role in dict.fromkeys([*framework.roles, *framework.used, *framework.offered]):
                roles.setdefault(role, []).append(framework)
        for role in list(roles):
            while "/" in role:
                role = role.rsplit("/", 1)[0]
                roles.setdefault(role, [])
        return dict(sorted(roles.items()))

    def role_protos(self) -> list[mesos_pb2.Role]:
        out = []
        for name, frameworks in self.roles().items():
            role = mesos_pb2.Role(name=name, weight=self.weight(name))
            total = EMPTY
            for framework in frameworks:
                role.frameworks.add(value=framework.id)
                total = total + framework.used.get(name, EMPTY) + framework.offered.get(name, EMPTY)
            role.resources.extend(role_quantities(total))
            out.append(role)
        return out

    def get_tasks(self) -> GetTasks:
        return GetTasks.FromString(self.tasks_message().join())

    def get_state(self) -> GetState:
        return GetState.FromString(self.get_state_bytes())

    # Responses assembled from each entity's cached encoding (see projections/assembly.py).

    def tasks_message(self, enc: Encoding = PROTOBUF) -> Parts:
        """GetTasks: each framework contributes its cached block runs of each task list."""
        runs: list[list[bytes]] = [[] for _ in TASK_FIELDS]
        for framework in self.all_frameworks():
            for out, blocks in zip(runs, task_runs(framework, enc), strict=True):
                out += blocks
        return enc.message(
            [
                (number, name, Chunks(run))
                for (number, name), run in zip(TASK_FIELDS, runs, strict=True)
            ]
        )

    def executors_message(self, enc: Encoding = PROTOBUF) -> Parts:
        return enc.message([(1, "executors", [enc.entity(e, e.proto) for e in self.executors()])])

    def frameworks_message(self, enc: Encoding = PROTOBUF) -> Parts:
        active = [enc.entity(f, f.proto) for f in self.frameworks.values()]
        completed = [enc.entity(f, f.proto) for f in self.completed_frameworks]
        return enc.message([(1, "frameworks", active), (2, "completed_frameworks", completed)])

    def agents_message(self, enc: Encoding = PROTOBUF) -> Parts:
        agents = [enc.entity(a, a.proto) for a in self.registered_agents()]
        recovered = [enc.encode(a.info) for a in self.recovered_agents()]
        return enc.message([(1, "agents", agents), (2, "recovered_agents", recovered)])

    def state_message(self, enc: Encoding = PROTOBUF) -> Parts:
        return enc.message(
            [
                (1, "get_tasks", self.tasks_message(enc)),
                (2, "get_executors", self.executors_message(enc)),
                (3, "get_frameworks", self.frameworks_message(enc)),
                (4, "get_agents", self.agents_message(enc)),
            ]
        )

    def get_state_bytes(self) -> bytes:
        return self.state_message(PROTOBUF).join()


# GetTasks fields of the framework task lists (records.TASK_LISTS).
TASK_FIELDS = ((2, "tasks"), (5, "unreachable_tasks"), (3, "completed_tasks"))


def task_runs(framework: FrameworkRecord, enc: Encoding) -> list[list[bytes]]:
    """The framework's task lists (`TASK_FIELDS`), each as the cached `enc` runs of its
    blocks of GetTasks field elements."""
    return [
        framework.block_runs(enc.kind, name, task_join(enc, number)) for number, name in TASK_FIELDS
    ]


def task_run_steps(framework: FrameworkRecord, enc: Encoding) -> Iterator[None]:
    """`task_runs`, a block per step (see api/read_cache.py `cooperate`)."""
    for number, name in TASK_FIELDS:
        yield from framework.join_steps(enc.kind, name, task_join(enc, number))


def task_join(enc: Encoding, number: int) -> TaskRun:
    """Tasks as one `enc` run of GetTasks field `number`."""

    def join(tasks: list[TaskRecord]) -> bytes:
        return enc.run(number, [enc.entity(t, t.message) for t in tasks])

    return join


M = TypeVar("M", bound=Message)


def _copied(message: M | None) -> M | None:
    """The view's own copy (the event's belongs to the fold's state)."""
    if message is None:
        return None
    copy = type(message)()
    copy.CopyFrom(message)
    return copy


def _task_changed(framework: FrameworkRecord, record: TaskRecord) -> None:
    """Every change of a task goes through here: its framework caches over its tasks."""
    record.changed()
    framework.task_changed(record)


_HANDLERS: dict[type, Callable[[ClusterView, object, list[Event]], None]] = {
    cast(type, kind): cast("Callable[[ClusterView, object, list[Event]], None]", handler)
    for kind, handler in (
        (ev.ClusterInitialized, ClusterView._cluster_initialized),
        (ev.LeaderElected, ClusterView._leader_elected),
        (ev.WeightsUpdated, ClusterView._weights_updated),
        (ev.QuotaUpdated, ClusterView._quota_updated),
        (ev.MaintenanceChanged, ClusterView._maintenance_changed),
        (ev.InverseOffersCreated, ClusterView._inverse_offers_created),
        (ev.InverseOfferRemoved, ClusterView._inverse_offer_removed),
        (ev.FrameworkSubscribed, ClusterView._framework_subscribed),
        (ev.FrameworkDisconnected, ClusterView._framework_disconnected),
        (ev.FrameworkUpdated, ClusterView._framework_updated),
        (ev.FrameworkRemoved, ClusterView._framework_removed),
        (ev.OffersCreated, ClusterView._offers_created),
        (ev.OfferRemoved, ClusterView._offer_removed),
        (ev.TaskAdded, ClusterView._task_added),
        (ev.TaskStatusUpdated, ClusterView._task_status_updated),
        (ev.TaskCompleted, ClusterView._task_completed),
        (ev.LaunchRequested, ClusterView._launch_requested),
        (ev.ExecutorExited, ClusterView._executor_exited),
        (ev.AgentRegistered, ClusterView._agent_registered),
        (ev.AgentDisconnected, ClusterView._agent_disconnected),
        (ev.AgentUnreachable, ClusterView._agent_unreachable),
        (ev.AgentGone, ClusterView._agent_gone),
        (ev.AgentRemoved, ClusterView._agent_removed),
        (ev.AgentDeactivationChanged, ClusterView._agent_deactivation_changed),
        (ev.AgentResourcesChanged, ClusterView._agent_resources_changed),
    )
}


# What a Role's deprecated `resources` shows, as Mesos: the scalars it knows are scalars.
ROLE_SCALARS = ("cpus", "disk", "gpus", "mem")


def role_quantities(resources: Resources) -> list[mesos_pb2.Resource]:
    """`resources` summed by name across reservations, bare (no role or allocation), by
    name: Mesos's Role.resources."""
    sums: dict[str, int] = {}
    for (name, _reservation, _), quantity in resources.items.items():
        if name in ROLE_SCALARS and isinstance(quantity, int):
            sums[name] = sums.get(name, 0) + quantity
    out = []
    for name in sorted(sums):
        resource = mesos_pb2.Resource(name=name, type=mesos_pb2.Value.SCALAR)
        resource.scalar.value = ratio(sums[name], MILLI)
        out.append(resource)
    return out
