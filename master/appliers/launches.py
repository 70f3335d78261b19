"""Offer operations inside ACCEPT: LAUNCH and LAUNCH_GROUP.

Each operation draws from the pool of the accepted offers. Invalid tasks get
TASK_ERROR from the master; valid ones join the books as STAGING and the
agent is asked to run them. Reservation and volume operations come with the
resource-management issue and are refused with OPERATION_ERROR for now.
"""

from __future__ import annotations

from collections.abc import Iterable

from meseta.master import ledger
from meseta.master.events import (
    DomainEvent,
    LaunchRequested,
    OperationStatusUpdated,
    TaskAdded,
    TaskStatusUpdated,
)
from meseta.master.resources import EMPTY, ResourceError, Resources, from_protos
from meseta.master.state import Agent, Executor, Framework, State, Task
from meseta.master.statuses import master_status, visible_state
from meseta.master.validation import executor_error, resource_role_error, task_error
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
            framework.id, task.task_id.value, task.agent_id.value, status.state, status
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


def operation_error(framework: Framework, operation: Operation, message: str, out: Out) -> None:
    if not operation.HasField("id"):
        return
    status = mesos_pb2.OperationStatus(state=mesos_pb2.OPERATION_ERROR, message=message)
    status.operation_id.CopyFrom(operation.id)
    out.append(OperationStatusUpdated(framework.id, status))


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
    if operation.type == Operation.LAUNCH:
        for task in operation.launch.task_infos:
            pool = launch(state, framework, agent, role, None, [task], operation, pool, out)
        return pool
    if operation.type == Operation.LAUNCH_GROUP:
        group = operation.launch_group
        executor = group.executor if group.HasField("executor") else None
        return launch(
            state,
            framework,
            agent,
            role,
            executor,
            list(group.task_group.tasks),
            operation,
            pool,
            out,
        )
    if operation.type != Operation.UNKNOWN:
        name = Operation.Type.Name(operation.type)
        operation_error(framework, operation, f"Operation {name} is not supported yet", out)
    return pool


def launch(
    state: State,
    framework: Framework,
    agent: Agent,
    role: str,
    group_executor: mesos_pb2.ExecutorInfo | None,
    tasks: list[mesos_pb2.TaskInfo],
    operation: Operation,
    pool: Resources,
    out: Out,
) -> Resources:
    """Launch one task (LAUNCH) or a whole group (LAUNCH_GROUP) atomically."""
    group = operation.type == Operation.LAUNCH_GROUP
    reason = GROUP_INVALID if group else TASK_INVALID
    error, needs, executor, task_resources = check_launch(
        state, framework, agent, role, group_executor, tasks, operation
    )
    if error is None and not pool.contains(needs):
        error = f"Task uses more resources {needs} than available {pool}"
    if error is not None:
        for task in tasks:
            refuse_task(state, framework, task, mesos_pb2.TASK_ERROR, reason, error, out)
        return pool
    executor_info = add_executor(state, framework, agent, role, executor)
    stored = [
        add_task(state, framework, agent, role, task, resources, executor_info, out)
        for task, resources in zip(tasks, task_resources, strict=True)
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
    return pool - needs


def check_launch(
    state: State,
    framework: Framework,
    agent: Agent,
    role: str,
    group_executor: mesos_pb2.ExecutorInfo | None,
    tasks: list[mesos_pb2.TaskInfo],
    operation: Operation,
) -> tuple[str | None, Resources, mesos_pb2.ExecutorInfo | None, list[Resources]]:
    """(error, resources needed, executor to start, each task's resources) for a launch."""
    none = EMPTY
    if operation.HasField("id"):
        return "An offer operation id is not allowed on LAUNCH/LAUNCH_GROUP", none, None, []
    if operation.type == Operation.LAUNCH_GROUP:
        if group_executor is None:
            return "'LaunchGroup.executor' must be set", none, None, []
        if not tasks:
            return "Task group must not be empty", none, None, []
    taken = TakenIds(framework)
    needs = EMPTY
    executor = group_executor
    task_resources = []
    for task in tasks:
        error = task_error(task, agent_id=agent.id, framework_id=framework.id, taken=taken)
        has_executor = task.HasField("executor")
        if error is None and group_executor is not None and has_executor:
            error = "Task in a group must not have its own executor"
        task_protos = task.resources
        error = error or resource_role_error(task_protos, role)
        if error is not None:
            return error, none, None, []
        taken.add(task.task_id.value)
        if has_executor:
            executor = task.executor
        try:
            resources = parsed(task_protos)
        except ResourceError as exc:
            return str(exc), none, None, []
        if claimed_twice(needs, resources):
            return SHARED_RESOURCES, none, None, []
        task_resources.append(resources)
        needs = needs + resources
    if executor is None:
        return None, needs, None, task_resources
    error = executor_error(executor, framework.id)
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
        return None, needs, None, task_resources
    try:
        executor_resources = from_protos(executor.resources)
    except ResourceError as exc:
        return str(exc), none, None, []
    if claimed_twice(needs, executor_resources):
        return SHARED_RESOURCES, none, None, []
    return None, needs + executor_resources, executor, task_resources


# Parsed task resources by their encoding. Schedulers launch the same few task
# shapes over and over and `from_protos` is the costliest step of a launch
# (about 20 us for cpus and mem). A pure memo: `Resources` are immutable and
# the key is the exact encoding, so every replica computes the same values.
PARSED_LIMIT = 4096
parsed_resources: dict[tuple[bytes, ...], Resources] = {}


def parsed(resources: Iterable[mesos_pb2.Resource]) -> Resources:
    """`from_protos(resources)`, remembered (ResourceError is never remembered)."""
    key = tuple([resource.SerializeToString() for resource in resources])
    found = parsed_resources.get(key)
    if found is None:
        found = from_protos(resources)
        if len(parsed_resources) >= PARSED_LIMIT:
            parsed_resources.clear()
        parsed_resources[key] = found
    return found


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
    resources = from_protos(info.resources)
    executor = Executor(framework.id, stored, resources, role)
    agent.executors[key] = executor
    ledger.hold(state, agent, framework, role, resources)
    return executor


def add_task(
    state: State,
    framework: Framework,
    agent: Agent,
    role: str,
    info: mesos_pb2.TaskInfo,
    resources: Resources,
    executor: Executor | None,
    out: Out,
) -> mesos_pb2.TaskInfo:
    stored = mesos_pb2.TaskInfo()
    stored.CopyFrom(info)
    for resource in stored.resources:
        if not resource.HasField("allocation_info"):
            resource.allocation_info.role = role
    if executor is not None and stored.HasField("executor"):
        stored.executor.CopyFrom(executor.info)
    executor_id = executor.info.executor_id.value if executor is not None else ""
    task = Task(
        info.task_id.value,
        framework.id,
        agent.id,
        executor_id,
        stored,
        role,
        resources,
        mesos_pb2.TASK_STAGING,
        state.now_ns,
    )
    framework.tasks[task.task_id] = task
    agent.tasks[(framework.id, task.task_id)] = task
    if executor is not None:
        executor.task_ids[task.task_id] = None
    ledger.hold(state, agent, framework, role, resources)
    out.append(TaskAdded(task))
    return stored
