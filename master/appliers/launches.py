"""Offer operations inside ACCEPT: LAUNCH and LAUNCH_GROUP, and the dispatch of the
others (reservations and volumes: `appliers.reservations`).

Each operation draws from the pool of the accepted offers. Invalid tasks get
TASK_ERROR from the master; valid ones join the books as STAGING and the
agent is asked to run them.
"""

from __future__ import annotations

from collections.abc import Iterable

from meseta.master import ledger, operations
from meseta.master.appliers import reservations
from meseta.master.appliers.reservations import operation_error
from meseta.master.events import (
    DomainEvent,
    LaunchRequested,
    TaskAdded,
    TaskStatusUpdated,
)
from meseta.master.resources import EMPTY, ResourceError, Resources, from_protos
from meseta.master.state import Agent, Executor, Framework, State, Task
from meseta.master.statuses import master_status, visible_state
from meseta.master.validation import (
    allocation_role_error,
    executor_error,
    group_executor_error,
    resource_role_error,
    task_error,
)
from meseta.proto.mesos.v1 import mesos_pb2

Out = list[DomainEvent]
Operation = mesos_pb2.Offer.Operation

TASK_INVALID = mesos_pb2.TaskStatus.REASON_TASK_INVALID
GROUP_INVALID = mesos_pb2.TaskStatus.REASON_TASK_GROUP_INVALID


def operation_tasks(operation: Operation) -> list[mesos_pb2.TaskInfo]:
    if operation.type == Operation.LAUNCH:
        return list(operation.launch.task_infos)
    if operation.type == Operation.LAUNCH_GROUP:
        return list(operation.launch_group.task_group.tasks)
    return []


def refuse_task(
    state: State,
    framework: Framework,
    task: mesos_pb2.TaskInfo,
    task_state: int,
    reason: int,
    message: str,
    out: Out,
) -> None:
    """A task that never joins the books: the scheduler hears a master update."""
    status = master_status(
        task_id=task.task_id.value,
        state=visible_state(framework, task_state),
        reason=reason,
        message=message,
        now_ns=state.now_ns,
        agent_id=task.agent_id.value,
    )
    out.append(
        TaskStatusUpdated(
            framework.id,
            task.task_id.value,
            task.agent_id.value,
            status.state,
            status,
            refused=True,
        )
    )


def refuse_operations(
    state: State, framework: Framework, operations: Iterable[Operation], error: str, out: Out
) -> None:
    """ACCEPT with invalid offers: every task is dropped, every other operation errors."""
    for operation in operations:
        for task in operation_tasks(operation):
            refuse_task(
                state,
                framework,
                task,
                mesos_pb2.TASK_DROPPED,
                mesos_pb2.TaskStatus.REASON_INVALID_OFFERS,
                f"Task launched with invalid offers: {error}",
                out,
            )
        if operation.type not in (Operation.LAUNCH, Operation.LAUNCH_GROUP):
            operation_error(framework, operation, error, out)


def apply_operation(
    state: State,
    framework: Framework,
    agent: Agent,
    role: str,
    operation: Operation,
    pool: Resources,
    out: Out,
) -> Resources:
    """Apply one operation; return what is left of the pool."""
    kind = operation.type
    if kind == Operation.LAUNCH or kind == Operation.LAUNCH_GROUP:
        refusal = OPERATION_ID_REFUSED if operation.HasField("id") else None
        held = EMPTY
        if kind == Operation.LAUNCH:
            for task in operation.launch.task_infos:
                needs = launch(
                    state, framework, agent, role, None, [task], False, refusal, pool, out
                )
                if needs is not None:
                    pool, held = pool - needs, held + needs
        else:
            group = operation.launch_group
            executor = group.executor if group.HasField("executor") else None
            tasks = list(group.task_group.tasks)
            needs = launch(state, framework, agent, role, executor, tasks, True, refusal, pool, out)
            if needs is not None:
                pool, held = pool - needs, needs
        # The books take the whole operation at once: sums do not depend on the order.
        ledger.hold(state, agent, framework, role, held)
        return pool
    if kind in operations.KINDS:
        return reservations.accept_operation(state, framework, agent, role, operation, pool, out)
    if kind != Operation.UNKNOWN:
        name = Operation.Type.Name(kind)
        operation_error(framework, operation, f"Operation {name} is not supported yet", out)
    return pool


OPERATION_ID_REFUSED = "An offer operation id is not allowed on LAUNCH/LAUNCH_GROUP"


def launch(
    state: State,
    framework: Framework,
    agent: Agent,
    role: str,
    group_executor: mesos_pb2.ExecutorInfo | None,
    tasks: list[mesos_pb2.TaskInfo],
    group: bool,
    refusal: str | None,
    pool: Resources,
    out: Out,
) -> Resources | None:
    """Launch one task (LAUNCH) or a whole group (LAUNCH_GROUP) atomically.

    Returns what the launch takes from the pool, for the caller to hold in the
    ledger, or None when its tasks were refused.
    """
    error, needs, executor, shapes = check_launch(
        state, framework, agent, role, group_executor, tasks, group, refusal
    )
    if error is None and not pool.contains(needs):
        error = f"Task uses more resources {needs} than available {pool}"
    if error is not None:
        reason = GROUP_INVALID if group else TASK_INVALID
        for task in tasks:
            refuse_task(state, framework, task, mesos_pb2.TASK_ERROR, reason, error, out)
        return None
    executor_info = new_executor(framework, agent, role, executor)
    stored = [
        add_task(state, framework, agent, role, task, shape, executor_info, out)
        for task, shape in zip(tasks, shapes, strict=True)
    ]
    out.append(
        LaunchRequested(
            agent.id,
            framework.id,
            framework.info,
            executor_info.info if executor_info else None,
            tuple(stored),
            group,
        )
    )
    return needs


def check_launch(
    state: State,
    framework: Framework,
    agent: Agent,
    role: str,
    group_executor: mesos_pb2.ExecutorInfo | None,
    tasks: list[mesos_pb2.TaskInfo],
    group: bool,
    refusal: str | None,
) -> tuple[str | None, Resources, mesos_pb2.ExecutorInfo | None, list[Shape]]:
    """(error, resources needed, executor to start, each task's resource shape) for a launch."""
    none = EMPTY
    if refusal is not None:
        return refusal, none, None, []
    if group:
        if group_executor is None:
            return "'LaunchGroup.executor' must be set", none, None, []
        if not tasks:
            return "Task group must not be empty", none, None, []
    taken = TakenIds(framework)
    needs = EMPTY
    executor = group_executor
    shapes = []
    mesos_checks = state.schema_version >= GROUP_CHECKS_VERSION
    for task in tasks:
        error = launch_task_error(task, agent, framework, taken, group, mesos_checks)
        if error is not None:
            return error, none, None, []
        has_executor = task.HasField("executor")
        try:
            shape = shape_of(task.resources)
        except ResourceError as exc:
            # Checked here, after the role check, as Mesos orders them.
            error = resource_role_error(task.resources, role)
            return error or str(exc), none, None, []
        error = shape.role_error(role)
        if error is not None:
            return error, none, None, []
        taken.add(task.task_id.value)
        if has_executor and not group:
            executor = task.executor
        resources = shape.resources
        if claimed_twice(needs, resources):
            return SHARED_RESOURCES, none, None, []
        shapes.append(shape)
        needs = needs + resources
    if executor is None:
        return None, needs, None, shapes
    error = executor_error(executor, framework.id)
    if error is None and group and mesos_checks:
        try:
            amounts = from_protos(executor.resources).quantities()
        except ResourceError as exc:
            return str(exc), none, None, []
        error = group_executor_error(executor, tasks, amounts)
    if error is not None:
        return error, none, None, []
    existing = agent.executors.get((framework.id, executor.executor_id.value))
    if existing is not None:
        if existing.info.command != executor.command and executor.HasField("command"):
            return (
                (
                    f"ExecutorInfo is not compatible with the running executor"
                    f" {executor.executor_id.value}"
                ),
                none,
                None,
                [],
            )
        return None, needs, None, shapes
    try:
        executor_resources = from_protos(executor.resources)
    except ResourceError as exc:
        return str(exc), none, None, []
    if claimed_twice(needs, executor_resources):
        return SHARED_RESOURCES, none, None, []
    return None, needs + executor_resources, executor, shapes


# The schema version from which launches get Mesos's task group and executor checks.
GROUP_CHECKS_VERSION = 4
CUSTOM = mesos_pb2.ExecutorInfo.CUSTOM


def launch_task_error(
    task: mesos_pb2.TaskInfo,
    agent: Agent,
    framework: Framework,
    taken: TakenIds,
    group: bool,
    mesos_checks: bool,
) -> str | None:
    """Why one task of a LAUNCH or LAUNCH_GROUP cannot launch (before its resources)."""
    has_executor = task.HasField("executor")
    if group and mesos_checks:
        # Mesos copies the group's executor into each task, and checks an executor a task
        # names against the group's with the group's (group_executor_error).
        error = task_error(
            task, agent_id=agent.id, framework_id=framework.id, taken=taken, in_group=True
        )
        return None if error is None else f"Task '{task.task_id.value}' is invalid: {error}"
    error = task_error(task, agent_id=agent.id, framework_id=framework.id, taken=taken)
    if error is not None:
        return error
    if group and has_executor:
        return "Task in a group must not have its own executor"
    executor = task.executor
    if mesos_checks and has_executor and executor.HasField("type") and executor.type != CUSTOM:
        return "'ExecutorInfo.type' must be 'CUSTOM'"
    return None


class Shape:
    """What the fold needs of one list of resource protos, worked out once per encoding.

    Schedulers launch the same few task shapes over and over, and reading
    protobufs is the costliest part of a launch (`from_protos` alone takes
    about 20 us for cpus and mem). A pure memo: the key is the exact encoding,
    so every replica computes the same values.
    """

    __slots__ = ("allocated", "encoded", "resources", "with_role")

    def __init__(self, protos: list[mesos_pb2.Resource], resources: Resources) -> None:
        # `protos` are the shape's own copies: the scheduler's belong to a log entry.
        self.resources = resources
        # (name, allocation role) of the protos that name one, in order.
        self.allocated = tuple(
            (r.name, r.allocation_info.role) for r in protos if r.HasField("allocation_info")
        )
        self.encoded = protos
        # Allocation role -> the protos with it injected, encoded as TaskInfo.resources.
        self.with_role: dict[str, bytes] = {}

    def role_error(self, role: str) -> str | None:
        for name, allocation_role in self.allocated:
            if allocation_role != role:
                return allocation_role_error(name, allocation_role, role)
        return None

    def complete(self) -> bool:
        """Whether every proto already names its allocation role."""
        return len(self.allocated) == len(self.encoded)

    def allocated_to(self, role: str) -> bytes:
        """The protos with `role` injected where none is named, as TaskInfo.resources bytes."""
        encoded = self.with_role.get(role)
        if encoded is None:
            holder = mesos_pb2.TaskInfo()
            holder.resources.extend(with_allocation(self.encoded, role))
            encoded = self.with_role[role] = holder.SerializePartialToString()
        return encoded


SHAPE_LIMIT = 4096
shapes_by_encoding: dict[tuple[bytes, ...], Shape] = {}


def shape_of(resources: Iterable[mesos_pb2.Resource]) -> Shape:
    """The memoized shape of `resources`; ResourceError (never remembered) when invalid."""
    key = tuple([resource.SerializeToString() for resource in resources])
    found = shapes_by_encoding.get(key)
    if found is None:
        copies = [mesos_pb2.Resource.FromString(encoded) for encoded in key]
        found = Shape(copies, from_protos(copies))
        if len(shapes_by_encoding) >= SHAPE_LIMIT:
            shapes_by_encoding.clear()
        shapes_by_encoding[key] = found
    return found


def parsed(resources: Iterable[mesos_pb2.Resource]) -> Resources:
    """`from_protos(resources)`, remembered (ResourceError is never remembered)."""
    return shape_of(resources).resources


SHARED_RESOURCES = "Tasks and executors of one launch must not use the same ranges or set items"


def claimed_twice(held: Resources, more: Resources) -> bool:
    """Whether `more` names a range or set item that `held` already has.

    Ranges and sets add as unions, so two tasks of a group asking for the same
    port would pass the pool check together and then share one booking.
    """
    if not held.items:
        return False
    for key, quantity in more.items.items():
        have = held.items.get(key)
        if have is None or isinstance(quantity, int):
            continue
        mine = Resources({key: have})
        if mine - Resources({key: quantity}) != mine:
            return True
    return False


class TakenIds:
    """Task ids in use by a framework (active or unreachable), plus those of this launch.

    A view instead of a merged copy of both dicts: copying every task of a
    large framework on each launch made launches O(tasks).
    """

    __slots__ = ("framework", "launching")

    def __init__(self, framework: Framework) -> None:
        self.framework = framework
        self.launching: dict[str, None] = {}

    def __contains__(self, task_id: object) -> bool:
        framework = self.framework
        return (
            task_id in self.launching
            or task_id in framework.tasks
            or task_id in framework.unreachable_tasks
        )

    def add(self, task_id: str) -> None:
        self.launching[task_id] = None


def with_allocation(resources: Iterable[mesos_pb2.Resource], role: str) -> list[mesos_pb2.Resource]:
    """The master injects the offer's allocation role into resources that lack one."""
    out = []
    for resource in resources:
        copy = mesos_pb2.Resource()
        copy.CopyFrom(resource)
        if not copy.HasField("allocation_info"):
            copy.allocation_info.role = role
        out.append(copy)
    return out


def add_executor(
    state: State,
    framework: Framework,
    agent: Agent,
    role: str,
    info: mesos_pb2.ExecutorInfo | None,
) -> Executor | None:
    """Book an executor and hold its resources (a launch holds them with its tasks)."""
    if info is None or (framework.id, info.executor_id.value) in agent.executors:
        return new_executor(framework, agent, role, info)
    executor = new_executor(framework, agent, role, info)
    assert executor is not None
    ledger.hold(state, agent, framework, role, executor.resources)
    return executor


def new_executor(
    framework: Framework, agent: Agent, role: str, info: mesos_pb2.ExecutorInfo | None
) -> Executor | None:
    """The agent's executor for `info`, booked without touching the ledger."""
    if info is None:
        return None
    key = (framework.id, info.executor_id.value)
    if key in agent.executors:
        return agent.executors[key]
    stored = mesos_pb2.ExecutorInfo()
    stored.CopyFrom(info)
    stored.framework_id.value = framework.id
    del stored.resources[:]
    stored.resources.extend(with_allocation(info.resources, role))
    if not stored.HasField("type"):
        stored.type = mesos_pb2.ExecutorInfo.CUSTOM
    executor = Executor(framework.id, stored, from_protos(info.resources), role)
    agent.executors[key] = executor
    return executor


def add_task(
    state: State,
    framework: Framework,
    agent: Agent,
    role: str,
    info: mesos_pb2.TaskInfo,
    shape: Shape,
    executor: Executor | None,
    out: Out,
) -> mesos_pb2.TaskInfo:
    """Book a task (its resources are held by the caller, with the rest of the launch)."""
    stored = mesos_pb2.TaskInfo()
    stored.CopyFrom(info)
    if not shape.complete():
        # Replacing the list from the shape's encoding beats editing each resource.
        del stored.resources[:]
        stored.MergeFromString(shape.allocated_to(role))
    if executor is not None and stored.HasField("executor"):
        stored.executor.CopyFrom(executor.info)
    executor_id = executor.info.executor_id.value if executor is not None else ""
    task_id = info.task_id.value
    task = Task(
        task_id,
        framework.id,
        agent.id,
        executor_id,
        stored,
        role,
        shape.resources,
        mesos_pb2.TASK_STAGING,
        state.now_ns,
    )
    framework.tasks[task_id] = task
    agent.tasks[(framework.id, task_id)] = task
    if executor is not None:
        executor.task_ids[task_id] = None
    out.append(TaskAdded(task))
    return stored
