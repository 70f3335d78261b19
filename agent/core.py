"""The agent's bookkeeping: frameworks, their executors, tasks and latest statuses.

Pure: the daemon feeds it what happened (a task arrived, an executor
subscribed, a status update, an executor terminated) with times and ids as
arguments, and performs the effects these functions return. Frameworks,
executors and tasks live in dicts keyed by id (insertion ordered); finished
ones move to bounded `completed_*` lists, as the Mesos agent keeps them for
its /state endpoint.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from meseta.master import resources as res
from meseta.proto.mesos.v1 import mesos_pb2

T = TypeVar("T")
TERMINAL_STATES = (
    mesos_pb2.TASK_FINISHED,
    mesos_pb2.TASK_FAILED,
    mesos_pb2.TASK_KILLED,
    mesos_pb2.TASK_ERROR,
    mesos_pb2.TASK_LOST,
    mesos_pb2.TASK_DROPPED,
    mesos_pb2.TASK_GONE,
    mesos_pb2.TASK_GONE_BY_OPERATOR,
)
# Mesos keeps this many completed frameworks / executors per framework / tasks per executor.
MAX_COMPLETED_FRAMEWORKS = 50
MAX_COMPLETED_EXECUTORS = 150
MAX_COMPLETED_TASKS = 200
COMMAND_EXECUTOR_OVERHEAD = "cpus:0.1;mem:32"


def is_terminal(state: int) -> bool:
    return state in TERMINAL_STATES


class ExecutorState(enum.Enum):
    REGISTERING = "REGISTERING"  # launched, waiting for its SUBSCRIBE
    RUNNING = "RUNNING"  # subscribed
    TERMINATING = "TERMINATING"  # shut down or killed, waiting for its container to end
    TERMINATED = "TERMINATED"


class FrameworkState(enum.Enum):
    RUNNING = "RUNNING"
    TERMINATING = "TERMINATING"


class ExecutorKind(enum.Enum):
    COMMAND = "COMMAND"  # synthesized for TaskInfo.command (executor id = task id)
    DEFAULT = "DEFAULT"  # runs task groups
    CUSTOM = "CUSTOM"  # the framework's own ExecutorInfo.command


@dataclass(slots=True)
class TaskRecord:
    info: mesos_pb2.TaskInfo
    framework_id: str
    executor_id: str
    state: int = mesos_pb2.TASK_STAGING
    # Every status the agent accepted for the task, oldest first (latest = statuses[-1]).
    statuses: list[mesos_pb2.TaskStatus] = field(default_factory=list)

    @property
    def task_id(self) -> str:
        return str(self.info.task_id.value)

    @property
    def latest(self) -> mesos_pb2.TaskStatus | None:
        return self.statuses[-1] if self.statuses else None

    def to_task(self, agent_id: str) -> mesos_pb2.Task:
        """The `mesos.v1.Task` the agent reports (re-registration, /state)."""
        task = mesos_pb2.Task(name=self.info.name, state=self.state)  # type: ignore[arg-type]
        task.task_id.CopyFrom(self.info.task_id)
        task.framework_id.value = self.framework_id
        task.executor_id.value = self.executor_id
        task.agent_id.value = agent_id
        task.resources.extend(self.info.resources)
        for status in self.statuses:
            kept = task.statuses.add()
            kept.CopyFrom(status)
            kept.ClearField("data")
        for name in ("labels", "discovery", "container", "health_check", "kill_policy"):
            if self.info.HasField(name):
                getattr(task, name).CopyFrom(getattr(self.info, name))
        return task


@dataclass(slots=True)
class ExecutorRecord:
    info: mesos_pb2.ExecutorInfo
    framework_id: str
    kind: ExecutorKind
    container_id: str
    directory: str  # the sandbox on this host
    state: ExecutorState = ExecutorState.REGISTERING
    # Tasks handed to the executor (LAUNCH / LAUNCH_GROUP sent), by task id.
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    # Tasks waiting for the executor to subscribe, by task id; groups keep their grouping.
    queued: dict[str, TaskRecord] = field(default_factory=dict)
    # (task ids, sent as one LAUNCH_GROUP) in arrival order
    queued_groups: list[tuple[tuple[str, ...], bool]] = field(default_factory=list)
    completed: list[TaskRecord] = field(default_factory=list)
    pid: int | None = None
    start_time: int | None = None  # /proc/<pid>/stat field 22, tells a reused pid apart
    launched_ns: int = 0
    exit_status: int | None = None

    @property
    def executor_id(self) -> str:
        return str(self.info.executor_id.value)

    def live_tasks(self) -> list[TaskRecord]:
        return [*self.queued.values(), *self.tasks.values()]

    def find(self, task_id: str) -> TaskRecord | None:
        return self.tasks.get(task_id) or self.queued.get(task_id)

    def resources(self) -> list[mesos_pb2.Resource]:
        """What it holds: its own resources and its queued and live tasks' (Mesos's
        Executor::allocatedResources)."""
        held = list(self.info.resources)
        for task in self.live_tasks():
            held.extend(task.info.resources)
        return held


@dataclass(slots=True)
class FrameworkRecord:
    info: mesos_pb2.FrameworkInfo
    state: FrameworkState = FrameworkState.RUNNING
    executors: dict[str, ExecutorRecord] = field(default_factory=dict)
    completed_executors: list[ExecutorRecord] = field(default_factory=list)

    @property
    def framework_id(self) -> str:
        return str(self.info.id.value)

    @property
    def checkpoint(self) -> bool:
        return bool(self.info.checkpoint)

    def partition_aware(self) -> bool:
        aware = mesos_pb2.FrameworkInfo.Capability.PARTITION_AWARE
        return any(capability.type == aware for capability in self.info.capabilities)


@dataclass(slots=True)
class AgentCore:
    frameworks: dict[str, FrameworkRecord] = field(default_factory=dict)
    completed_frameworks: list[FrameworkRecord] = field(default_factory=list)

    # -- lookups -----------------------------------------------------------------------

    def executor(self, framework_id: str, executor_id: str) -> ExecutorRecord | None:
        framework = self.frameworks.get(framework_id)
        return framework.executors.get(executor_id) if framework else None

    def task(self, framework_id: str, task_id: str) -> tuple[ExecutorRecord, TaskRecord] | None:
        framework = self.frameworks.get(framework_id)
        if framework is None:
            return None
        for executor in framework.executors.values():
            record = executor.find(task_id)
            if record is not None:
                return executor, record
        return None

    def executors(self) -> list[ExecutorRecord]:
        return [e for f in self.frameworks.values() for e in f.executors.values()]

    def tasks(self) -> list[TaskRecord]:
        return [t for e in self.executors() for t in e.live_tasks()]

    def reported_tasks(self, agent_id: str) -> list[mesos_pb2.Task]:
        return [task.to_task(agent_id) for task in self.tasks()]

    def tasks_by_state(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for task in self.tasks():
            name = mesos_pb2.TaskState.Name(task.state)
            counts[name] = counts.get(name, 0) + 1
        for framework in [*self.frameworks.values(), *self.completed_frameworks]:
            for executor in [*framework.executors.values(), *framework.completed_executors]:
                for task in executor.completed:
                    name = mesos_pb2.TaskState.Name(task.state)
                    counts[name] = counts.get(name, 0) + 1
        return counts

    # -- changes -----------------------------------------------------------------------

    def restore(
        self,
        frameworks: dict[str, mesos_pb2.FrameworkInfo],
        executors: list[ExecutorRecord],
        tasks: list[tuple[TaskRecord, bool]],
    ) -> list[TaskRecord]:
        """Rebuild from checkpoints; return the tasks that never reached their executor
        (queued when the agent went down: Mesos reports them lost, REASON_AGENT_RESTARTED)."""
        for info in frameworks.values():
            self.add_framework(info)
        for executor in executors:
            if executor.framework_id in self.frameworks:
                self.add_executor(executor.framework_id, executor)
        lost = []
        for task, queued in tasks:
            owner = self.executor(task.framework_id, task.executor_id)
            if owner is None:
                continue
            if is_terminal(task.state):
                owner.completed.append(task)
            elif queued:
                owner.queued[task.task_id] = task
                lost.append(task)
            else:
                owner.tasks[task.task_id] = task
        return lost

    def add_framework(self, info: mesos_pb2.FrameworkInfo) -> FrameworkRecord:
        """Add or refresh a framework (a newer FrameworkInfo replaces the old one)."""
        framework = self.frameworks.get(info.id.value)
        if framework is None:
            framework = FrameworkRecord(info=info)
            self.frameworks[info.id.value] = framework
        else:
            framework.info = info
        return framework

    def add_executor(self, framework_id: str, executor: ExecutorRecord) -> None:
        self.frameworks[framework_id].executors[executor.executor_id] = executor

    def queue_tasks(
        self, executor: ExecutorRecord, tasks: list[mesos_pb2.TaskInfo], *, group: bool
    ) -> list[TaskRecord]:
        """Tasks for an executor; delivered now if it runs, else when it subscribes."""
        ids, records = [], []
        for info in tasks:
            record = TaskRecord(info=info, framework_id=executor.framework_id,
                                executor_id=executor.executor_id)  # fmt: skip
            executor.queued[record.task_id] = record
            ids.append(record.task_id)
            records.append(record)
        executor.queued_groups.append((tuple(ids), group))
        return records

    def take_queued(self, executor: ExecutorRecord) -> list[tuple[list[TaskRecord], bool]]:
        """Move the queued tasks (by group) to the launched ones; the daemon sends them."""
        groups = []
        for ids, as_group in executor.queued_groups:
            group = [executor.queued.pop(task_id) for task_id in ids if task_id in executor.queued]
            for record in group:
                executor.tasks[record.task_id] = record
            if group:
                groups.append((group, as_group))
        executor.queued_groups = []
        return groups

    def apply_status(self, status: mesos_pb2.TaskStatus, framework_id: str) -> TaskRecord | None:
        """Record a status the agent accepted; a terminal one completes the task."""
        found = self.task(framework_id, status.task_id.value)
        if found is None:
            return None
        executor, record = found
        if is_terminal(record.state):
            return record  # the agent never moves a task out of a terminal state
        record.state = status.state
        record.statuses.append(status)
        if is_terminal(status.state):
            executor.queued.pop(record.task_id, None)
            executor.tasks.pop(record.task_id, None)
            _append_bounded(executor.completed, record, MAX_COMPLETED_TASKS)
        return record

    def remove_executor(self, executor: ExecutorRecord) -> None:
        """The executor's container is gone; its record moves to the completed ones."""
        executor.state = ExecutorState.TERMINATED
        framework = self.frameworks.get(executor.framework_id)
        if framework is None or framework.executors.get(executor.executor_id) is not executor:
            return
        del framework.executors[executor.executor_id]
        _append_bounded(framework.completed_executors, executor, MAX_COMPLETED_EXECUTORS)
        if not framework.executors:
            self.remove_framework(framework)

    def remove_framework(self, framework: FrameworkRecord) -> None:
        """A framework with no executors left is forgotten (kept as completed)."""
        if self.frameworks.get(framework.framework_id) is framework:
            del self.frameworks[framework.framework_id]
            _append_bounded(self.completed_frameworks, framework, MAX_COMPLETED_FRAMEWORKS)


def _append_bounded(items: list[T], item: T, limit: int) -> None:
    items.append(item)
    if len(items) > limit:
        del items[0]


# -- statuses the agent itself generates -----------------------------------------------


def agent_status(
    record: TaskRecord,
    state: int,
    reason: int,
    message: str,
    *,
    agent_id: str,
    status_uuid: bytes,
    now_s: float,
) -> mesos_pb2.TaskStatus:
    """A status update with source AGENT (executor gone, launch failed, restart...)."""
    status = mesos_pb2.TaskStatus(
        state=state,  # type: ignore[arg-type]
        source=mesos_pb2.TaskStatus.SOURCE_AGENT,
        reason=reason,  # type: ignore[arg-type]
        message=message,
        timestamp=now_s,
        uuid=status_uuid,
    )
    status.task_id.CopyFrom(record.info.task_id)
    status.agent_id.value = agent_id
    status.executor_id.value = record.executor_id
    return status


def drain_kill_policy(
    config: mesos_pb2.DrainConfig, policy: mesos_pb2.KillPolicy | None
) -> mesos_pb2.KillPolicy | None:
    """The kill policy a drain kills a task with: its own, its grace period capped by the
    drain's `max_grace_period` (a task without one gets the cap), as Mesos's agent."""
    if not config.HasField("max_grace_period"):
        return policy
    cap = max(config.max_grace_period.nanoseconds, 0)  # Mesos does not refuse a negative one
    own = policy.grace_period if policy is not None and policy.HasField("grace_period") else None
    if policy is not None and own is not None and own.nanoseconds <= cap:
        return policy
    capped = mesos_pb2.KillPolicy()
    capped.grace_period.nanoseconds = cap
    return capped


def mark_drained(
    status: mesos_pb2.TaskStatus, config: mesos_pb2.DrainConfig, partition_aware: bool
) -> None:
    """While the agent drains, a KILLING or KILLED update says so (REASON_AGENT_DRAINING,
    over any other reason); with `mark_gone`, partition-aware frameworks hear
    TASK_GONE_BY_OPERATOR (Mesos's Slave::statusUpdate)."""
    if status.state not in (mesos_pb2.TASK_KILLING, mesos_pb2.TASK_KILLED):
        return
    status.reason = mesos_pb2.TaskStatus.REASON_AGENT_DRAINING
    if config.mark_gone and partition_aware:
        status.state = mesos_pb2.TASK_GONE_BY_OPERATOR


def lost_state(framework: FrameworkRecord) -> int:
    """TASK_DROPPED for partition-aware frameworks, TASK_LOST otherwise (contract 5.4)."""
    return mesos_pb2.TASK_DROPPED if framework.partition_aware() else mesos_pb2.TASK_LOST


def termination_state(
    framework: FrameworkRecord, executor: ExecutorRecord, reason: int | None
) -> tuple[int, int]:
    """The (state, reason) for a task whose executor ended before it did (contract 3.3)."""
    if reason is None:
        return mesos_pb2.TASK_FAILED, mesos_pb2.TaskStatus.REASON_EXECUTOR_TERMINATED
    if reason in (mesos_pb2.TaskStatus.REASON_CONTAINER_PREEMPTED,
                  mesos_pb2.TaskStatus.REASON_CONTAINER_UPDATE_FAILED):  # fmt: skip
        gone = mesos_pb2.TASK_GONE if framework.partition_aware() else mesos_pb2.TASK_LOST
        return gone, reason
    return mesos_pb2.TASK_FAILED, reason


def command_executor_info(
    task: mesos_pb2.TaskInfo, framework_id: str, argv: list[str]
) -> mesos_pb2.ExecutorInfo:
    """The ExecutorInfo Mesos synthesizes for a TaskInfo.command task (contract 3.5)."""
    value = task.command.value if task.command.shell else " ".join(task.command.arguments)
    shown = value[:12] + ("..." if len(value) > 12 else "")
    info = mesos_pb2.ExecutorInfo(
        name=f"Command Executor (Task: {task.task_id.value}) (Command: sh -c '{shown}')",
        source=task.task_id.value,
    )
    info.executor_id.value = task.task_id.value
    info.framework_id.value = framework_id
    info.command.shell = False
    info.command.value = argv[0]
    info.command.arguments.extend(argv)
    info.command.uris.extend(task.command.uris)
    info.command.environment.CopyFrom(task.command.environment)
    if task.command.HasField("user"):
        info.command.user = task.command.user
    if task.HasField("labels"):
        info.labels.CopyFrom(task.labels)
    if task.HasField("discovery"):
        info.discovery.CopyFrom(task.discovery)
    if task.HasField("container"):  # the command executor runs in the task's container
        info.container.CopyFrom(task.container)
    if task.HasField("kill_policy") and task.kill_policy.HasField("grace_period"):
        # grace + the reap interval (1 s in Mesos) + 1 s, as Mesos gives the command executor
        grace_ns = task.kill_policy.grace_period.nanoseconds + 2_000_000_000
        info.shutdown_grace_period.nanoseconds = grace_ns
    return info


# -- persistent volumes (Mesos's volume directories and filesystem/posix isolator) -------

# Where volumes live, under the work dir or a PATH disk's root (Mesos's getPersistentVolumePath).
VOLUMES_ROOT = ("volumes", "roles")


@dataclass(frozen=True, slots=True)
class Volume:
    role: str  # the role it is reserved for (the last refinement)
    persistence_id: str
    container_path: str  # where the executor's sandbox shows it
    root: str = ""  # the PATH or MOUNT disk it is on ("": the work dir's disk)
    mount: bool = False  # on a MOUNT disk: the volume is the whole mount

    @property
    def role_directory(self) -> str:
        """A hierarchical role's '/' is written as a space, as Mesos does: one directory per
        role, whatever its depth."""
        return self.role.replace("/", " ")

    @property
    def directory(self) -> tuple[str, ...]:
        """Its directory's path under the work dir (a root that is absolute replaces it): a
        MOUNT disk's root itself, else `volumes/roles/<role>/<id>` under the disk's root."""
        if self.mount:
            return (self.root,)
        under = (*VOLUMES_ROOT, self.role_directory, self.persistence_id)
        return (self.root, *under) if self.root else under


@dataclass(frozen=True, slots=True)
class VolumeChanges:
    """What a new checkpointed total means for the volume directories."""

    create: list[Volume]  # every listed volume (its directory kept if it exists)
    remove: list[Volume]  # volumes no longer listed
    busy: list[Volume]  # no longer listed, but an executor still uses them: kept


def persistent_volumes(resources: Iterable[mesos_pb2.Resource]) -> list[Volume]:
    """The persistent volumes among `resources`, in either reservation format."""
    out = []
    for resource in resources:
        if resource.HasField("disk") and resource.disk.HasField("persistence"):
            role = resource.reservations[-1].role if resource.reservations else resource.role
            disk = resource.disk
            source = disk.source
            mount = disk.HasField("source") and source.type == source.MOUNT
            root = source.mount.root if mount else source.path.root
            out.append(Volume(role, disk.persistence.id, disk.volume.container_path, root, mount))
    return out


def volume_changes(
    old: Iterable[mesos_pb2.Resource],
    new: Iterable[mesos_pb2.Resource],
    executors: Iterable[ExecutorRecord],
) -> VolumeChanges:
    """Mesos's syncCheckpointedResources: the directories of the volumes in `new` exist,
    those of volumes only in `old` go, unless a live executor or task still uses one."""
    listed = _by_directory(new)
    gone = [v for d, v in _by_directory(old).items() if d not in listed]
    in_use = {d for executor in executors for d in _by_directory(executor.resources())}
    return VolumeChanges(
        create=list(listed.values()),
        remove=[v for v in gone if v.directory not in in_use],
        busy=[v for v in gone if v.directory in in_use],
    )


def _by_directory(resources: Iterable[mesos_pb2.Resource]) -> dict[tuple[str, ...], Volume]:
    return {volume.directory: volume for volume in persistent_volumes(resources)}


def volume_link_error(volume: Volume) -> str | None:
    """Why the volume cannot be shown in a sandbox at its container path, or None. Without
    a mount namespace it is a symlink in the sandbox (Mesos's filesystem/posix isolator),
    which cannot be at an absolute path nor may leave the sandbox."""
    path = volume.container_path
    if path.startswith("/"):
        return f"Absolute container path '{path}' is not supported without filesystem isolation"
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        return (
            f"Container path '{path}' of persistent volume '{volume.persistence_id}'"
            " is not a path inside the sandbox"
        )
    return None


# -- --reconfiguration_policy (contract 7.5) --------------------------------------------


def reconfiguration_error(
    old: mesos_pb2.AgentInfo, new: mesos_pb2.AgentInfo, policy: str
) -> str | None:
    """Why `new` may not replace the checkpointed `old` under `policy`, or None."""
    if old.hostname != new.hostname:
        return f"hostname changed from '{old.hostname}' to '{new.hostname}'"
    if old.port != new.port:
        return f"port changed from {old.port} to {new.port}"
    if old.domain != new.domain and not (policy == "additive" and not old.HasField("domain")):
        return "domain changed"
    old_resources = res.from_protos(old.resources)
    new_resources = res.from_protos(new.resources)
    if policy == "equal":
        if old_resources != new_resources:
            return (
                f"resources changed from '{res.format_resources(old_resources)}'"
                f" to '{res.format_resources(new_resources)}'"
            )
        if _attribute_map(old) != _attribute_map(new):
            return "attributes changed"
        return None
    if not _resources_grew(old_resources, new_resources):
        return (
            f"resources '{res.format_resources(new_resources)}' do not contain"
            f" '{res.format_resources(old_resources)}'"
        )
    return _attributes_grew(old, new)


def _resources_grew(old: res.Resources, new: res.Resources) -> bool:
    """Every old (name, role) still there with the same type and no less of it."""
    for key, quantity in old:
        if key not in new.items:
            return False
        grown = new.items[key]
        if isinstance(quantity, int) != isinstance(grown, int):
            return False
        if res.is_items(quantity) != res.is_items(grown):
            return False
    return new.contains(old)


def _attribute_map(info: mesos_pb2.AgentInfo) -> dict[str, bytes]:
    return {a.name: a.SerializeToString(deterministic=True) for a in info.attributes}


def _attributes_grew(old: mesos_pb2.AgentInfo, new: mesos_pb2.AgentInfo) -> str | None:
    current = {attribute.name: attribute for attribute in new.attributes}
    for attribute in old.attributes:
        now = current.get(attribute.name)
        if now is None or now.type != attribute.type:
            return f"attribute '{attribute.name}' removed or changed type"
        if attribute.type == mesos_pb2.Value.RANGES:
            before = res.merge_ranges((r.begin, r.end) for r in attribute.ranges.range)
            after = res.merge_ranges((r.begin, r.end) for r in now.ranges.range)
            if not res.ranges_contain(after, before):
                return f"attribute '{attribute.name}' lost ranges"
        elif attribute != now:  # TEXT and SCALAR must stay equal (Mesos's code)
            return f"attribute '{attribute.name}' changed"
    return None
