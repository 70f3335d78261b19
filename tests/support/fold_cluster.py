"""A small driver for the master fold in tests: commands in, domain events out.

`Cluster` wraps a `State` with an index and a clock, builds one log entry per
call, applies it with `fold.apply`, and after every entry checks
`invariants.check` and that no terminal task ever changed state. Methods are
named after the scheduler, agent and operator calls they stand for and return
the entry's domain events; `add_*` helpers return the id of what they made.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar, cast

from meseta.log.v1.entries_pb2 import Entry
from meseta.master import fold, invariants
from meseta.master.decide import SCHEMA_VERSION
from meseta.master.events import (
    AgentRegistered,
    DomainEvent,
    FrameworkSubscribed,
    OffersCreated,
)
from meseta.master.resources import UNRESERVED, Resources, parse, to_protos
from meseta.master.state import State, Task, is_terminal
from meseta.master.v1 import commands_pb2 as c
from meseta.proto.mesos.v1 import mesos_pb2 as m
from meseta.proto.mesos.v1.quota import quota_pb2 as q
from meseta.proto.mesos.v1.scheduler import scheduler_pb2 as s

T0_NS = 1_700_000_000_000_000_000
STEP_NS = 1_000_000  # entries are 1 ms apart unless a test says otherwise
NS_PER_S = 1_000_000_000

AGENT_RESOURCES = "cpus:4;mem:1024;ports:[31000-32000]"
TASK_RESOURCES = "cpus:1;mem:128"

PARTITION_AWARE = m.FrameworkInfo.Capability.PARTITION_AWARE
MULTI_ROLE = m.FrameworkInfo.Capability.MULTI_ROLE
Operation = m.Offer.Operation

E = TypeVar("E")


def quota_config(
    role: str,
    guarantees: Mapping[str, float] | None = None,
    limits: Mapping[str, float] | None = None,
) -> q.QuotaConfig:
    config = q.QuotaConfig(role=role)
    for name, value in (guarantees or {}).items():
        config.guarantees[name].value = value
    for name, value in (limits or {}).items():
        config.limits[name].value = value
    return config


# What the agents of these tests advertise (meseta's agent advertises every capability).
AGENT_CAPABILITIES = (m.AgentInfo.Capability.AGENT_DRAINING,)


def agent_capabilities(types: Sequence[int]) -> list[m.AgentInfo.Capability]:
    return [m.AgentInfo.Capability(type=cast(m.AgentInfo.Capability.Type, t)) for t in types]


def command(**body: Any) -> c.Command:
    return c.Command(**body)


def of_type(events: Iterable[object], kind: type[E]) -> list[E]:
    return [event for event in events if isinstance(event, kind)]


def one(events: Iterable[object], kind: type[E]) -> E:
    found = of_type(events, kind)
    assert len(found) == 1, f"expected one {kind.__name__}, got {found!r}"
    return found[0]


def names(events: Iterable[object]) -> list[str]:
    return [type(event).__name__ for event in events]


def resource_protos(text: str | Resources) -> list[m.Resource]:
    resources = parse(text) if isinstance(text, str) else text
    return to_protos(resources)


def task_info(
    task_id: str,
    agent_id: str,
    resources: str = TASK_RESOURCES,
    *,
    executor: m.ExecutorInfo | None = None,
    command_value: str = "true",
) -> m.TaskInfo:
    info = m.TaskInfo(name=task_id)
    info.task_id.value = task_id
    info.agent_id.value = agent_id
    if executor is not None:
        info.executor.CopyFrom(executor)
    else:
        info.command.value = command_value
    info.resources.extend(resource_protos(resources))
    return info


def executor_info(
    executor_id: str, resources: str | None = None, *, default: bool = False
) -> m.ExecutorInfo:
    """A custom executor, or the default one as Mesos wants it for a task group (its
    framework_id is filled in by `FoldCluster.launch_group`)."""
    info = m.ExecutorInfo()
    info.executor_id.value = executor_id
    if default:
        info.type = m.ExecutorInfo.DEFAULT
    else:
        info.command.value = "executor"
    default_resources = "cpus:0.1;mem:32;disk:32" if default else "cpus:0.1;mem:32"
    info.resources.extend(resource_protos(resources or default_resources))
    return info


def framework_info(
    name: str = "fw",
    *,
    user: str = "u",
    framework_id: str | None = None,
    roles: Sequence[str] | None = None,
    role: str | None = None,
    partition_aware: bool = False,
    checkpoint: bool = False,
    failover_timeout: float | None = None,
    principal: str | None = None,
) -> m.FrameworkInfo:
    info = m.FrameworkInfo(user=user, name=name, checkpoint=checkpoint)
    if framework_id is not None:
        info.id.value = framework_id
    if roles is not None:
        info.capabilities.add(type=MULTI_ROLE)
        info.roles.extend(roles)
    if role is not None:
        info.role = role
    if partition_aware:
        info.capabilities.add(type=PARTITION_AWARE)
    if failover_timeout is not None:
        info.failover_timeout = failover_timeout
    if principal is not None:
        info.principal = principal
    return info


def uuid_bytes(n: int) -> bytes:
    return n.to_bytes(16, "big")


class Cluster:
    """One fold, driven one entry at a time, with checks after every entry."""

    def __init__(
        self,
        cluster_id: str = "C",
        *,
        init: bool = True,
        elect: bool = True,
        check: bool = True,
        offer_timeout_ns: int | None = None,
        agent_reregister_timeout_ns: int | None = None,
    ) -> None:
        self.state = State()
        self.index = 0
        self.now_ns = T0_NS
        self.check = check
        self.entries: list[Entry] = []
        self.term = 0
        self.offer_timeout_ns = offer_timeout_ns
        self.agent_reregister_timeout_ns = agent_reregister_timeout_ns
        self.streams = itertools.count(1)
        self.uuids = itertools.count(1)
        # (framework id, task id) -> uuid of the newest update this driver sent.
        self.last_uuid: dict[tuple[str, str], bytes] = {}
        # id(task) -> (task, its terminal state): terminal tasks must never change.
        self.terminal: dict[int, tuple[Task, int]] = {}
        if init:
            self.run(init_cluster=c.InitCluster(cluster_id=cluster_id))
        if elect:
            self.elect()

    # -- entries -------------------------------------------------------------------

    def entry(
        self,
        commands: Sequence[c.Command],
        *,
        advance_ns: int = STEP_NS,
        proposal_id: bytes | None = None,
        ignorable: bool = False,
        schema_version: int = SCHEMA_VERSION,
    ) -> Entry:
        self.now_ns += advance_ns
        entry = Entry(events=c.CommandBatch(commands=list(commands)).SerializeToString())
        entry.header.timestamp_ns = self.now_ns
        entry.header.proposal_id = (
            proposal_id if proposal_id is not None else b"p%d" % (self.index + 1)
        )
        entry.header.ignorable_if_unknown = ignorable
        entry.header.schema_version = schema_version
        return entry

    def apply(self, entry: Entry) -> list[DomainEvent]:
        self.index += 1
        self.entries.append(entry)
        events = fold.apply(self.state, entry, self.index)
        if self.check:
            self.verify()
        return events

    def batch(self, commands: Sequence[c.Command], **options: Any) -> list[DomainEvent]:
        return self.apply(self.entry(commands, **options))

    def run(self, advance_ns: int = STEP_NS, **body: Any) -> list[DomainEvent]:
        return self.batch([command(**body)], advance_ns=advance_ns)

    def verify(self) -> None:
        errors = invariants.check(self.state)
        assert not errors, f"invariants broken after entry {self.index}: {errors}"
        for task, terminal_state in self.terminal.values():
            assert task.state == terminal_state, (
                f"terminal task {task.task_id} changed from {m.TaskState.Name(terminal_state)}"
                f" to {m.TaskState.Name(task.state)} at entry {self.index}"
            )
        for task in self.tasks():
            if is_terminal(task.state) and id(task) not in self.terminal:
                self.terminal[id(task)] = (task, task.state)

    def tasks(self) -> list[Task]:
        out: list[Task] = []
        for framework in self.state.frameworks.values():
            out += framework.tasks.values()
            out += framework.unreachable_tasks.values()
        return out

    def stream(self, prefix: str) -> str:
        return f"{prefix}{next(self.streams)}"

    # -- cluster -------------------------------------------------------------------

    def elect(self, term: int | None = None) -> list[DomainEvent]:
        self.term = term if term is not None else self.term + 1
        config = c.MasterConfig()
        if self.offer_timeout_ns is not None:
            config.offer_timeout_ns = self.offer_timeout_ns
        if self.agent_reregister_timeout_ns is not None:
            config.agent_reregister_timeout_ns = self.agent_reregister_timeout_ns
        info = m.MasterInfo(id=f"master-{self.term}", ip=0x7F000001, port=5050)
        return self.run(elect_leader=c.ElectLeader(term=self.term, master_info=info, config=config))

    def tick(self, advance_ns: int = STEP_NS) -> list[DomainEvent]:
        return self.run(advance_ns=advance_ns, tick=c.Tick())

    # -- agents --------------------------------------------------------------------

    def register_agent(
        self,
        hostname: str = "h1",
        port: int = 5051,
        resources: str = AGENT_RESOURCES,
        stream_id: str | None = None,
        capabilities: Sequence[int] = AGENT_CAPABILITIES,
    ) -> list[DomainEvent]:
        info = m.AgentInfo(hostname=hostname, port=port)
        info.resources.extend(resource_protos(resources))
        return self.run(
            register_agent=c.RegisterAgent(
                agent_info=info,
                stream_id=stream_id or self.stream("agent-stream-"),
                capabilities=agent_capabilities(capabilities),
            )
        )

    def add_agent(self, hostname: str = "h1", port: int = 5051, **options: Any) -> str:
        return one(self.register_agent(hostname, port, **options), AgentRegistered).agent_id

    def reregister_agent(
        self,
        agent_id: str,
        *,
        tasks: Sequence[m.Task] = (),
        executors: Sequence[m.ExecutorInfo] = (),
        info: m.AgentInfo | None = None,
        report_known_tasks: bool = False,
        stream_id: str | None = None,
        capabilities: Sequence[int] = AGENT_CAPABILITIES,
    ) -> list[DomainEvent]:
        if info is None:
            info = m.AgentInfo()
            info.CopyFrom(self.state.agents[agent_id].info)
        reported = list(tasks)
        if report_known_tasks:
            reported += [self.task_report(t) for t in self.tasks() if t.agent_id == agent_id]
        return self.run(
            reregister_agent=c.ReregisterAgent(
                agent_info=info,
                stream_id=stream_id or self.stream("agent-stream-"),
                tasks=reported,
                executors=list(executors),
                capabilities=agent_capabilities(capabilities),
            )
        )

    def task_report(self, task: Task, state: int | None = None) -> m.Task:
        """What an agent reports for a task it runs (its own view of the state)."""
        report = m.Task(name=task.info.name, state=cast(m.TaskState, task.state))
        if state is not None:
            report.state = cast(m.TaskState, state)
        elif task.state == m.TASK_UNREACHABLE or task.state == m.TASK_STAGING:
            report.state = m.TASK_RUNNING
        report.task_id.value = task.task_id
        report.framework_id.value = task.framework_id
        report.agent_id.value = task.agent_id
        if task.executor_id:
            report.executor_id.value = task.executor_id
        report.resources.extend(task.info.resources)
        return report

    def disconnect_agent(self, agent_id: str, stream_id: str | None = None) -> list[DomainEvent]:
        stream = stream_id if stream_id is not None else self.state.agents[agent_id].stream_id
        return self.run(disconnect_agent=c.DisconnectAgent(agent_id=agent_id, stream_id=stream))

    def mark_unreachable(self, agent_id: str) -> list[DomainEvent]:
        return self.run(mark_agent_unreachable=c.MarkAgentUnreachable(agent_id=agent_id))

    def mark_gone(self, agent_id: str) -> list[DomainEvent]:
        return self.run(mark_agent_gone=c.MarkAgentGone(agent_id=agent_id))

    def unregister(self, agent_id: str) -> list[DomainEvent]:
        return self.run(unregister_agent=c.UnregisterAgent(agent_id=agent_id))

    def set_quota(
        self,
        role: str,
        *,
        guarantees: Mapping[str, float] | None = None,
        limits: Mapping[str, float] | None = None,
        force: bool = False,
    ) -> list[DomainEvent]:
        return self.quotas([quota_config(role, guarantees, limits)], force=force)

    def quotas(self, configs: Sequence[q.QuotaConfig], force: bool = False) -> list[DomainEvent]:
        return self.run(update_quota=c.UpdateQuota(configs=list(configs), force=force))

    def deactivate(self, agent_id: str) -> list[DomainEvent]:
        return self.run(deactivate_agent=c.DeactivateAgent(agent_id=agent_id))

    def reactivate(self, agent_id: str) -> list[DomainEvent]:
        return self.run(reactivate_agent=c.ReactivateAgent(agent_id=agent_id))

    def drain(
        self, agent_id: str, *, max_grace_ns: int | None = None, mark_gone: bool = False
    ) -> list[DomainEvent]:
        config = m.DrainConfig(mark_gone=mark_gone)
        if max_grace_ns is not None:
            config.max_grace_period.nanoseconds = max_grace_ns
        return self.run(drain_agent=c.DrainAgent(agent_id=agent_id, config=config))

    # -- frameworks ----------------------------------------------------------------

    def subscribe(
        self,
        name: str = "fw",
        *,
        info: m.FrameworkInfo | None = None,
        suppressed_roles: Sequence[str] = (),
        stream_id: str | None = None,
        **options: Any,
    ) -> list[DomainEvent]:
        info = info if info is not None else framework_info(name, **options)
        return self.run(
            subscribe_framework=c.SubscribeFramework(
                framework_info=info,
                suppressed_roles=list(suppressed_roles),
                stream_id=stream_id or self.stream("framework-stream-"),
            )
        )

    def add_framework(self, name: str = "fw", **options: Any) -> str:
        return one(self.subscribe(name, **options), FrameworkSubscribed).framework_id

    def resubscribe(
        self, framework_id: str, stream_id: str | None = None, **changes: Any
    ) -> list[DomainEvent]:
        info = m.FrameworkInfo()
        info.CopyFrom(self.state.frameworks[framework_id].info)
        for name, value in changes.items():
            setattr(info, name, value)
        return self.subscribe(info=info, stream_id=stream_id)

    def disconnect_framework(
        self, framework_id: str, stream_id: str | None = None
    ) -> list[DomainEvent]:
        stream = (
            stream_id if stream_id is not None else self.state.frameworks[framework_id].stream_id
        )
        return self.run(
            disconnect_framework=c.DisconnectFramework(framework_id=framework_id, stream_id=stream)
        )

    def teardown(self, framework_id: str) -> list[DomainEvent]:
        return self.run(teardown_framework=c.TeardownFramework(framework_id=framework_id))

    def suppress(self, framework_id: str, roles: Sequence[str] = ()) -> list[DomainEvent]:
        return self.run(
            suppress_offers=c.SuppressOffers(framework_id=framework_id, roles=list(roles))
        )

    def revive(self, framework_id: str, roles: Sequence[str] = ()) -> list[DomainEvent]:
        return self.run(revive_offers=c.ReviveOffers(framework_id=framework_id, roles=list(roles)))

    # -- offers --------------------------------------------------------------------

    def decision(
        self,
        framework_id: str,
        agent_id: str,
        role: str = UNRESERVED,
        resources: str | Resources | None = None,
    ) -> c.OfferDecision:
        if resources is None:
            resources = self.state.agents[agent_id].available.allocatable_to(role)
        decision = c.OfferDecision(framework_id=framework_id, agent_id=agent_id, role=role)
        decision.resources.extend(resource_protos(resources))
        return decision

    def offer(
        self,
        framework_id: str,
        agent_id: str,
        role: str = UNRESERVED,
        resources: str | Resources | None = None,
    ) -> list[DomainEvent]:
        decision = self.decision(framework_id, agent_id, role, resources)
        return self.create_offers([decision])

    def create_offers(self, decisions: Sequence[c.OfferDecision]) -> list[DomainEvent]:
        return self.run(create_offers=c.CreateOffers(offers=list(decisions), base_index=self.index))

    def add_offer(self, framework_id: str, agent_id: str, **options: Any) -> str:
        created = one(self.offer(framework_id, agent_id, **options), OffersCreated)
        return created.offers[0].id

    def accept(
        self,
        framework_id: str,
        offer_ids: Sequence[str],
        operations: Sequence[m.Offer.Operation],
        refuse_seconds: float | None = None,
    ) -> list[DomainEvent]:
        accept = s.Call.Accept()
        for offer_id in offer_ids:
            accept.offer_ids.add(value=offer_id)
        accept.operations.extend(operations)
        if refuse_seconds is not None:
            accept.filters.refuse_seconds = refuse_seconds
        return self.run(accept_offers=c.AcceptOffers(framework_id=framework_id, accept=accept))

    def launch(
        self,
        framework_id: str,
        offer_ids: Sequence[str],
        tasks: Sequence[m.TaskInfo],
        refuse_seconds: float | None = None,
    ) -> list[DomainEvent]:
        operation = Operation(type=Operation.LAUNCH)
        operation.launch.task_infos.extend(tasks)
        return self.accept(framework_id, offer_ids, [operation], refuse_seconds)

    def launch_group(
        self,
        framework_id: str,
        offer_ids: Sequence[str],
        executor: m.ExecutorInfo | None,
        tasks: Sequence[m.TaskInfo],
    ) -> list[DomainEvent]:
        """A LAUNCH_GROUP; an executor without framework_id gets the framework's, as a
        scheduler sets it (Mesos refuses a group executor without one)."""
        operation = Operation(type=Operation.LAUNCH_GROUP)
        if executor is not None:
            operation.launch_group.executor.CopyFrom(executor)
            if not executor.HasField("framework_id"):
                operation.launch_group.executor.framework_id.value = framework_id
        operation.launch_group.task_group.tasks.extend(tasks)
        return self.accept(framework_id, offer_ids, [operation])

    def start_task(
        self,
        framework_id: str,
        agent_id: str,
        task_id: str,
        resources: str = TASK_RESOURCES,
        *,
        running: bool = True,
        role: str = UNRESERVED,
    ) -> Task:
        """Offer, launch (refuse_seconds 0) and, unless told otherwise, report RUNNING."""
        offer_id = self.add_offer(framework_id, agent_id, role=role)
        self.launch(
            framework_id, [offer_id], [task_info(task_id, agent_id, resources)], refuse_seconds=0
        )
        if running:
            self.status(framework_id, agent_id, task_id, m.TASK_RUNNING)
        return self.state.frameworks[framework_id].tasks[task_id]

    def decline(
        self, framework_id: str, offer_ids: Sequence[str], refuse_seconds: float | None = None
    ) -> list[DomainEvent]:
        decline = c.DeclineOffers(framework_id=framework_id)
        for offer_id in offer_ids:
            decline.offer_ids.add(value=offer_id)
        if refuse_seconds is not None:
            decline.filters.refuse_seconds = refuse_seconds
        return self.run(decline_offers=decline)

    def rescind(self, offer_ids: Sequence[str]) -> list[DomainEvent]:
        return self.run(rescind_offers=c.RescindOffers(offer_ids=list(offer_ids)))

    # -- tasks ---------------------------------------------------------------------

    def status(
        self,
        framework_id: str,
        agent_id: str,
        task_id: str,
        state: int,
        *,
        uuid: bytes | None = None,
        reliable: bool = True,
        latest_state: int | None = None,
        executor_id: str | None = None,
    ) -> list[DomainEvent]:
        status = m.TaskStatus(state=cast(m.TaskState, state), source=m.TaskStatus.SOURCE_EXECUTOR)
        status.task_id.value = task_id
        if executor_id is not None:
            status.executor_id.value = executor_id
        if reliable:
            status.uuid = uuid if uuid is not None else uuid_bytes(next(self.uuids))
            self.last_uuid[(framework_id, task_id)] = status.uuid
        update = c.UpdateTaskStatus(agent_id=agent_id, framework_id=framework_id, status=status)
        if latest_state is not None:
            update.latest_state = cast(m.TaskState, latest_state)
        return self.run(update_task_status=update)

    def ack(
        self, framework_id: str, agent_id: str, task_id: str, uuid: bytes | None = None
    ) -> list[DomainEvent]:
        if uuid is None:
            uuid = self.last_uuid[(framework_id, task_id)]
        return self.run(
            acknowledge_task_status=c.AcknowledgeTaskStatus(
                framework_id=framework_id, agent_id=agent_id, task_id=task_id, uuid=uuid
            )
        )

    def kill(
        self, framework_id: str, task_id: str, agent_id: str | None = None
    ) -> list[DomainEvent]:
        kill = c.KillTask(framework_id=framework_id, task_id=task_id)
        if agent_id is not None:
            kill.agent_id = agent_id
        return self.run(kill_task=kill)

    def exit_executor(
        self, framework_id: str, agent_id: str, executor_id: str, status: int | None = None
    ) -> list[DomainEvent]:
        exited = c.ExitExecutor(
            agent_id=agent_id, framework_id=framework_id, executor_id=executor_id
        )
        if status is not None:
            exited.status = status
        return self.run(exit_executor=exited)
