"""The cluster view's entities: each a Mesos v1 protobuf (or the facts to build one),
the resources it holds, and its cached encodings.

`Record.changed()` drops the encodings and, when a store keeps the view,
reports the record under its storage key (projections/store.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import cast

from meseta.master.ids import agent_pid
from meseta.master.resources import EMPTY, ResourceError, Resources, from_protos, to_protos
from meseta.master.state import InverseOffer, Offer, Task
from meseta.master.validation import framework_roles
from meseta.projections.assembly import Blocks, Cached
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.master import master_pb2
from meseta.proto.mesos.v1.scheduler import scheduler_pb2

GetAgents = master_pb2.Response.GetAgents
GetFrameworks = master_pb2.Response.GetFrameworks
GetExecutors = master_pb2.Response.GetExecutors

# Agent statuses as the view knows them. Registered agents are listed in `slaves`;
# recovering ones (a new leader awaits their re-registration) in `recovered_slaves`.
ACTIVE, DISCONNECTED, RECOVERING = "active", "disconnected", "recovering"
UNREACHABLE, GONE, REMOVED = "unreachable", "gone", "removed"
REGISTERED = (ACTIVE, DISCONNECTED)
# A framework's task lists, as /state and GetTasks name them.
TASK_LISTS = ("tasks", "unreachable_tasks", "completed_tasks")
# Storage key kinds (see ClusterView.adopt).
AGENT, FRAMEWORK, TASK, EXECUTOR, OFFER = b"a", b"f", b"t", b"e", b"o"


class Record(Cached):
    """A view entity: its cached encodings, and a storage key under which every change
    is reported to `sink` (the view's `touched`, when a store keeps the view)."""

    __slots__ = ("key", "sink")

    def __init__(self) -> None:
        super().__init__()
        self.key = b""
        self.sink: dict[bytes, Record | None] | None = None

    def changed(self) -> None:
        self.encodings.clear()
        if self.sink is not None:
            self.sink[self.key] = self


class TaskRecord(Record):
    """A task. Only its state and status fields change after it is added; the view drops
    the run of its block of its framework's tasks whenever it changes (cluster.py
    `_task_changed`)."""

    __slots__ = (
        "completed_seq", "counted_state", "holds", "proto", "resources", "role", "unreachable"
    )  # fmt: skip

    def __init__(self, proto: mesos_pb2.Task, resources: Resources, role: str) -> None:
        super().__init__()
        self.proto = proto
        self.resources = resources
        self.role = role
        # Counted in its agent's and framework's used resources (not terminal, reachable).
        self.holds = False
        self.unreachable = False
        self.completed_seq = -1  # order among completed tasks once completed
        # The state its framework's task counts have it under (-1: not counted).
        self.counted_state = -1

    @property
    def state(self) -> int:
        return self.proto.state

    def message(self) -> mesos_pb2.Task:
        return self.proto


TaskRun = Callable[[list[TaskRecord]], bytes]


class ExecutorRecord(Record):
    __slots__ = ("agent_id", "framework_id", "info", "resources", "role")

    def __init__(
        self, framework_id: str, agent_id: str, info: mesos_pb2.ExecutorInfo, role: str
    ) -> None:
        super().__init__()
        self.framework_id = framework_id
        self.agent_id = agent_id
        self.info = info
        self.role = role
        self.resources = resources_of(info.resources)

    def proto(self) -> GetExecutors.Executor:
        message = GetExecutors.Executor(executor_info=self.info)
        message.agent_id.value = self.agent_id
        return message


class OfferRecord(Record):
    __slots__ = ("proto", "resources", "role")

    def __init__(self, proto: mesos_pb2.Offer, resources: Resources, role: str) -> None:
        super().__init__()
        self.proto = proto
        self.resources = resources
        self.role = role


class Allocated:
    """Resources by allocation role, used (by tasks and executors) and offered."""

    __slots__ = ()
    used: dict[str, Resources]
    offered: dict[str, Resources]

    def used_total(self) -> Resources:
        return total(self.used.values())

    def offered_total(self) -> Resources:
        return total(self.offered.values())


class FrameworkRecord(Record, Allocated):
    __slots__ = (
        "active",
        "completed_seq",
        "completed_tasks",
        "connected",
        "counts_owned",
        "counts_shared",
        "executors",
        "info",
        "inverse_offers",
        "offer_constraints",
        "offered",
        "offers",
        "recovered",
        "registered_ns",
        "reregistered_ns",
        "roles",
        "task_counts",
        "task_runs",
        "tasks",
        "unreachable_tasks",
        "unregistered_ns",
        "used",
    )  # fmt: skip

    def __init__(self, info: mesos_pb2.FrameworkInfo, now_ns: int, completed_kept: int) -> None:
        super().__init__()
        self.info = info
        self.roles = framework_roles(info)
        self.active = True
        self.connected = True
        # Known from before a leader change, not subscribed with the new leader yet
        # (Mesos's RECOVERED framework).
        self.recovered = False
        self.registered_ns = now_ns
        self.reregistered_ns = 0
        self.unregistered_ns = 0
        self.tasks: dict[str, TaskRecord] = {}
        self.unreachable_tasks: dict[str, TaskRecord] = {}
        self.completed_tasks: deque[TaskRecord] = deque(maxlen=completed_kept)
        self.offers: dict[str, OfferRecord] = {}
        self.inverse_offers: dict[str, mesos_pb2.InverseOffer] = {}
        # (agent id, executor id) -> executor.
        self.executors: dict[tuple[str, str], ExecutorRecord] = {}
        # Resources by allocation role: used by tasks and executors, and offered.
        self.used: dict[str, Resources] = {}
        self.offered: dict[str, Resources] = {}
        self.completed_seq = -1  # order among completed frameworks once removed
        self.offer_constraints: scheduler_pb2.OfferConstraints | None = None
        # Each task list in blocks (by list name), each block caching its tasks' encodings
        # joined per wire form (assembly.Blocks), so a read joins a few runs per framework
        # and a task's change re-joins its block alone. Made from the lists when first
        # read, then kept in step by the methods below (the lists change only through
        # them); clearing it drops every run.
        self.task_runs: dict[str, Blocks[TaskRecord]] = {}
        # Its tasks' states counted by agent id (for /state-summary): counted when first
        # read, then kept in step by the methods below. A read spans several event-loop
        # turns, so what it was handed must not change: after a read the counts are
        # shared, and a change first copies the outer dict and the agent's (copy on write).
        self.task_counts: dict[str, dict[int, int]] | None = None
        self.counts_shared = False
        self.counts_owned: dict[str, None] = {}  # agents copied since the last read

    @property
    def id(self) -> str:
        return self.info.id.value

    def tasks_changed(self) -> None:
        """Drop everything cached over its tasks (the blocks are made again when read)."""
        self.task_runs.clear()
        self.task_counts = None
        self.counts_shared = False

    def task_changed(self, task: TaskRecord) -> None:
        """One of its tasks changed: drop its block's runs; recount it if its state moved."""
        for blocks in self.task_runs.values():
            blocks.changed(task)
        if task.counted_state != -1 and task.state != task.counted_state:
            self._count(task, -1)
            self._count(task, 1)

    def add_task(self, name: str, task: TaskRecord) -> None:
        """Append `task` to list `name` ("tasks" or "unreachable_tasks")."""
        self._active(name)[task.proto.task_id.value] = task
        blocks = self.task_runs.get(name)
        if blocks is not None:
            blocks.append(task)
        self._count(task, 1)

    def remove_task(self, task_id: str) -> TaskRecord | None:
        """Take task `task_id` out of the active or unreachable tasks, if there."""
        for name in ("tasks", "unreachable_tasks"):
            task = self._active(name).pop(task_id, None)
            if task is not None:
                blocks = self.task_runs.get(name)
                if blocks is not None:
                    blocks.remove(task)
                self._count(task, -1)
                return task
        return None

    def complete_task(self, task: TaskRecord) -> TaskRecord | None:
        """Append `task` to the completed tasks; return the one that leaves the bounded
        list for it, if one does."""
        completed = self.completed_tasks
        blocks = self.task_runs.get("completed_tasks")
        if completed.maxlen == 0:
            return task
        evicted = completed.popleft() if len(completed) == completed.maxlen else None
        completed.append(task)
        if blocks is not None:
            if evicted is not None:
                blocks.remove(evicted)
            blocks.append(task)
        if evicted is not None:
            self._count(evicted, -1)
        self._count(task, 1)
        return evicted

    def _active(self, name: str) -> dict[str, TaskRecord]:
        return self.unreachable_tasks if name == "unreachable_tasks" else self.tasks

    def counts_by_agent(self) -> dict[str, dict[int, int]]:
        """Its tasks (every list) counted by agent id, then by state; later changes leave
        what this returns alone (they copy on write)."""
        if self.task_counts is None:
            self.task_counts = {}
            for tasks in self.task_lists().values():
                for task in tasks:
                    task.counted_state = -1
                    self._count(task, 1)
        if not self.counts_shared:
            self.counts_shared = True
            self.counts_owned = {}
        return self.task_counts

    def _count(self, task: TaskRecord, delta: int) -> None:
        """Count `task` in (+1, under its state) or out (-1, from where it was counted)."""
        counts = self.task_counts
        if counts is None:
            return
        if self.counts_shared:  # a read holds this dict: change a copy from now on
            counts = self.task_counts = dict(counts)
            self.counts_shared = False
        agent_id = task.proto.agent_id.value
        owned = self.counts_owned
        if agent_id not in owned:
            owned[agent_id] = None
            if agent_id in counts:
                counts[agent_id] = dict(counts[agent_id])
        if delta > 0:
            state = task.counted_state = task.state
            states = counts.setdefault(agent_id, {})
            states[state] = states.get(state, 0) + 1
            return
        state, task.counted_state = task.counted_state, -1
        states = counts[agent_id]
        if states[state] > 1:
            states[state] -= 1
        else:
            del states[state]
            if not states:
                del counts[agent_id]

    def task_lists(self) -> dict[str, Iterable[TaskRecord]]:
        """Its tasks by list (`TASK_LISTS`), in the order responses list them."""
        return {name: self.task_list(name) for name in TASK_LISTS}

    def task_list(self, name: str) -> Iterable[TaskRecord]:
        if name == "tasks":
            return self.tasks.values()
        if name == "unreachable_tasks":
            return self.unreachable_tasks.values()
        return self.completed_tasks

    def blocks(self, name: str) -> Blocks[TaskRecord]:
        """Task list `name` in blocks."""
        blocks = self.task_runs.get(name)
        if blocks is None:
            blocks = self.task_runs[name] = Blocks(self.task_list(name))
        return blocks

    def block_runs(self, kind: str, name: str, join: TaskRun) -> list[bytes]:
        """Task list `name` as the cached `kind` runs of its blocks, in order, each made
        by `join` if missing."""
        return self.blocks(name).runs(kind, join)

    def join_steps(self, kind: str, name: str, join: TaskRun) -> Iterator[None]:
        """`block_runs`, a missing block per step (see read_cache.cooperate)."""
        return self.blocks(name).join_steps(kind, join)

    def unjoined_tasks(self, kind: str) -> Iterator[TaskRecord]:
        """The tasks of the blocks that have no `kind` run cached."""
        for name in TASK_LISTS:
            yield from self.blocks(name).unjoined(kind)

    def proto(self) -> GetFrameworks.Framework:
        message = GetFrameworks.Framework(
            framework_info=self.info,
            active=self.active,
            connected=self.connected,
            recovered=self.recovered,
        )
        message.registered_time.nanoseconds = self.registered_ns
        if self.reregistered_ns:
            message.reregistered_time.nanoseconds = self.reregistered_ns
        if self.unregistered_ns:
            message.unregistered_time.nanoseconds = self.unregistered_ns
        if self.offer_constraints is not None:
            message.offer_constraints.CopyFrom(self.offer_constraints)
        message.offers.extend(offer.proto for offer in self.offers.values())
        message.inverse_offers.extend(self.inverse_offers.values())
        message.allocated_resources.extend(endpoint_protos(self.used))
        message.offered_resources.extend(endpoint_protos(self.offered))
        return message


class AgentRecord(Record, Allocated):
    __slots__ = (
        "capabilities",
        "deactivated",
        "drain",
        "drain_started_ns",
        "executors",
        "info",
        "ip",
        "offered",
        "registered_ns",
        "reregistered_ns",
        "status",
        "total",
        "unreachable_ns",
        "used",
        "version",
    )  # fmt: skip

    def __init__(self, info: mesos_pb2.AgentInfo, now_ns: int) -> None:
        super().__init__()
        self.info = info
        self.status = ACTIVE
        self.registered_ns = now_ns
        self.reregistered_ns = 0
        self.unreachable_ns = 0
        self.total = resources_of(info.resources)
        self.used: dict[str, Resources] = {}  # by allocation role, as a framework's
        self.offered: dict[str, Resources] = {}
        # (framework id, executor id) -> executor.
        self.executors: dict[tuple[str, str], ExecutorRecord] = {}
        self.version = ""  # the agent's Mesos-compatible version, as it registered
        self.capabilities: tuple[int, ...] = ()  # AgentInfo.Capability.Type values
        self.ip = ""  # the address of its pid ("" before entries recorded it)
        self.deactivated = False  # by an operator: no offers
        self.drain: mesos_pb2.DrainInfo | None = None
        self.drain_started_ns = 0  # when the master told it to drain (0: not yet)

    @property
    def id(self) -> str:
        return self.info.id.value

    @property
    def pid(self) -> str:
        return agent_pid(self.info.hostname, self.ip, self.info.port)

    @property
    def active(self) -> bool:
        """Connected and not deactivated (Mesos's `Slave::active`)."""
        return self.status == ACTIVE and not self.deactivated

    def proto(self) -> GetAgents.Agent:
        message = GetAgents.Agent(agent_info=self.info, active=self.active, version=self.version)
        for capability in self.capabilities:
            message.capabilities.add().type = cast(mesos_pb2.AgentInfo.Capability.Type, capability)
        message.deactivated = self.deactivated
        if self.drain is not None:
            message.drain_info.CopyFrom(self.drain)
            if self.drain_started_ns:
                message.estimated_drain_start_time.nanoseconds = self.drain_started_ns
        message.pid = self.pid
        message.registered_time.nanoseconds = self.registered_ns
        if self.reregistered_ns:
            message.reregistered_time.nanoseconds = self.reregistered_ns
        message.total_resources.extend(to_protos(self.total, endpoint=True))
        message.allocated_resources.extend(endpoint_protos(self.used))
        message.offered_resources.extend(endpoint_protos(self.offered))
        return message


def resources_of(protos: Sequence[mesos_pb2.Resource]) -> Resources:
    try:
        return from_protos(protos)
    except ResourceError:  # the fold refused such resources; keep the view total anyway
        return EMPTY


def total(values: Iterable[Resources]) -> Resources:
    total = EMPTY
    for resources in values:
        total = total + resources
    return total


def endpoint_protos(books: dict[str, Resources]) -> list[mesos_pb2.Resource]:
    """Allocated or offered resources as Mesos's operator API shows them: in its ENDPOINT
    format, each carrying the role it is allocated to."""
    out: list[mesos_pb2.Resource] = []
    for role, resources in books.items():
        out.extend(to_protos(resources, allocation_role=role, endpoint=True))
    return out


def book_add(books: dict[str, Resources], role: str, resources: Resources) -> None:
    books[role] = books.get(role, EMPTY) + resources


def book_subtract(books: dict[str, Resources], role: str, resources: Resources) -> None:
    left = books.get(role, EMPTY) - resources
    if left:
        books[role] = left
    else:
        books.pop(role, None)


def task_proto(task: Task) -> mesos_pb2.Task:
    """A Mesos v1 Task from the fold's task, copied (as Mesos's protobuf::createTask)."""
    info = task.info
    message = mesos_pb2.Task(name=info.name, state=cast(mesos_pb2.TaskState, task.state))
    message.task_id.value = task.task_id
    message.framework_id.value = task.framework_id
    message.agent_id.value = task.agent_id
    if task.executor_id:
        message.executor_id.value = task.executor_id
    message.resources.extend(info.resources)
    message.statuses.extend(task.statuses)
    if task.status_update_state is not None:
        message.status_update_state = cast(mesos_pb2.TaskState, task.status_update_state)
    if task.status_update_uuid is not None:
        message.status_update_uuid = task.status_update_uuid
    for name in ("labels", "discovery", "container", "health_check", "kill_policy"):
        if info.HasField(name):
            getattr(message, name).CopyFrom(getattr(info, name))
    if info.HasField("command") and info.command.HasField("user"):
        message.user = info.command.user
    for name, scalar in info.limits.items():
        message.limits[name].CopyFrom(scalar)
    return message


def offer_proto(offer: Offer, agent: AgentRecord | None) -> mesos_pb2.Offer:
    message = mesos_pb2.Offer(hostname=agent.info.hostname if agent else "")
    message.id.value = offer.id
    message.framework_id.value = offer.framework_id
    message.agent_id.value = offer.agent_id
    message.resources.extend(to_protos(offer.resources, allocation_role=offer.role))
    message.allocation_info.role = offer.role
    if agent is not None:
        message.attributes.extend(agent.info.attributes)
    if offer.unavailability is not None:
        message.unavailability.CopyFrom(offer.unavailability)
    return message


def inverse_offer_proto(inverse: InverseOffer) -> mesos_pb2.InverseOffer:
    """Mesos's InverseOffer: the whole agent (no resources), until its unavailability."""
    message = mesos_pb2.InverseOffer(unavailability=inverse.unavailability)
    message.id.value = inverse.id
    message.framework_id.value = inverse.framework_id
    message.agent_id.value = inverse.agent_id
    return message


def record_status(message: mesos_pb2.Task, status: mesos_pb2.TaskStatus) -> None:
    """The fold's history rule: consecutive identical states collapse, `data` is not kept."""
    kept = mesos_pb2.TaskStatus()
    kept.CopyFrom(status)
    kept.ClearField("data")
    statuses = message.statuses
    if statuses and statuses[-1].state == kept.state:
        statuses[-1].CopyFrom(kept)
    else:
        statuses.append(kept)
