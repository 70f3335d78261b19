"""Random but plausible master commands, built from the current fold state.

`Workload.next_command()` picks a kind of command (registrations, subscriptions,
offers built from what agents have available, accepts with random tasks,
status updates, acknowledgements, kills, disconnects, ticks, leader
elections, gone agents, ...) and fills it in from the state, mostly validly and
sometimes not (stale offers, duplicate task ids, unknown tasks). The choices
come from a `Chooser`: `random.Random` for seeded logs, or `HypothesisChooser`
for property tests, where every choice is a draw hypothesis can shrink.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, cast

from meseta.master.resources import (
    DYNAMIC,
    MILLI,
    UNRESERVED,
    Resources,
    is_volume,
    parse,
    to_protos,
    unvolumed,
)
from meseta.master.state import AgentStatus, FrameworkStatus, State, Task, is_terminal
from meseta.master.v1 import commands_pb2 as c
from meseta.proto.mesos.v1 import mesos_pb2 as m
from meseta.proto.mesos.v1.maintenance import maintenance_pb2 as mt
from meseta.proto.mesos.v1.quota import quota_pb2 as q
from meseta.proto.mesos.v1.scheduler import scheduler_pb2 as s
from support.fold_cluster import (
    AGENT_CAPABILITIES,
    NS_PER_S,
    Operation,
    agent_capabilities,
    command,
    executor_info,
    framework_info,
    resource_protos,
    task_info,
    uuid_bytes,
)

T = TypeVar("T")

HOSTS = ("h0", "h1", "h2", "h3", "h4")
AGENT_RESOURCES = "cpus:4;mem:2048;disk:1024;ports:[31000-31009]"
TASK_SHAPES = ("cpus:1;mem:256", "cpus:0.5;mem:128", "cpus:2;mem:512", "cpus:1;ports:[31000-31001]")
UPDATE_STATES = (
    m.TASK_STARTING,
    m.TASK_RUNNING,
    m.TASK_RUNNING,
    m.TASK_FINISHED,
    m.TASK_FAILED,
    m.TASK_KILLED,
    m.TASK_LOST,
)

# How far a tick moves the clock: mostly seconds, sometimes past every timeout.
TICKS_NS = (NS_PER_S, NS_PER_S, 10 * NS_PER_S, 10 * NS_PER_S, 100 * NS_PER_S, 700 * NS_PER_S)
# Keep the cluster small enough that tasks, not registrations, dominate.
MAX_REACHABLE_AGENTS = 5
MAX_LIVE_FRAMEWORKS = 4

# Relative weights of each kind of command.
WEIGHTS: dict[str, int] = {
    "register_agent": 3,
    "reregister_agent": 3,
    "disconnect_agent": 2,
    "mark_agent_unreachable": 1,
    "mark_agent_gone": 1,
    "unregister_agent": 1,
    "deactivate_or_drain": 2,
    "update_quota": 1,
    "resource_operation": 2,
    "maintenance": 1,
    "respond_to_inverse_offers": 2,
    "subscribe_framework": 3,
    "resubscribe_framework": 2,
    "disconnect_framework": 2,
    "teardown_framework": 1,
    "suppress_revive": 2,
    "create_offers": 8,
    "accept_offers": 10,
    "decline_offers": 2,
    "rescind_offers": 1,
    "update_task_status": 12,
    "acknowledge_task_status": 10,
    "kill_task": 3,
    "executor": 1,
    "tick": 4,
    "elect_leader": 1,
}


class Chooser(Protocol):
    def choice(self, seq: Sequence[T]) -> T: ...

    def randint(self, a: int, b: int) -> int: ...

    def random(self) -> float: ...


class HypothesisChooser:
    """A `Chooser` whose choices are hypothesis draws (shrinkable)."""

    def __init__(self, draw: Callable[[Any], Any]) -> None:
        from hypothesis import strategies as st

        self.draw = draw
        self.st = st

    def choice(self, seq: Sequence[T]) -> T:
        return cast(T, seq[self.draw(self.st.integers(0, len(seq) - 1))])

    def randint(self, a: int, b: int) -> int:
        return cast(int, self.draw(self.st.integers(a, b)))

    def random(self) -> float:
        # Hypothesis favours (and shrinks towards) 0; `maybe(p)` is `random() < p`, so
        # flipping the draw makes the simplest choice the common path, not the rare one.
        return 1.0 - cast(float, self.draw(self.st.floats(0, 1, exclude_max=True)))


class Workload:
    """Builds the next command from `state`; remembers what agents sent (uuids)."""

    def __init__(self, state: State, chooser: Chooser) -> None:
        self.state = state
        self.rng = chooser
        self.kinds = [kind for kind, weight in WEIGHTS.items() for _ in range(weight)]
        self.sequence = 0
        self.term = state.leader_term
        # (framework id, task id) -> every uuid an agent sent for the task, oldest first.
        self.uuids: dict[tuple[str, str], list[bytes]] = {}

    def fresh(self, prefix: str) -> str:
        self.sequence += 1
        return f"{prefix}{self.sequence}"

    def maybe(self, probability: float) -> bool:
        return self.rng.random() < probability

    def next_entry(self, sizes: tuple[int, ...] = (1, 1, 2, 4)) -> tuple[list[c.Command], int]:
        """A batch of commands for one entry and how far to move the clock before it (the
        longest of their advances): timeouts (offers, inverse offers, failovers,
        re-registrations) come due as they would."""
        picked = [self.next_command() for _ in range(self.rng.choice(sizes))]
        return [built for built, _ in picked], max(advance for _, advance in picked)

    def next_command(self) -> tuple[c.Command, int]:
        """(command, nanoseconds to advance the clock before it)."""
        for _ in range(20):
            kind = self.rng.choice(self.kinds)
            built = getattr(self, kind)()
            if built is not None:
                if kind == "tick":
                    return built, self.rng.choice(TICKS_NS)
                return built, self.rng.choice((1_000_000, 100_000_000))
        return command(tick=c.Tick()), NS_PER_S

    # -- helpers -------------------------------------------------------------------

    def agents(self, *statuses: AgentStatus) -> list[str]:
        return [a.id for a in self.state.agents.values() if not statuses or a.status in statuses]

    def frameworks(self, *statuses: FrameworkStatus) -> list[str]:
        return [
            f.id for f in self.state.frameworks.values() if not statuses or f.status in statuses
        ]

    def tasks(self, *, unreachable: bool = True) -> list[Task]:
        out: list[Task] = []
        for framework in self.state.frameworks.values():
            out += framework.tasks.values()
            if unreachable:
                out += framework.unreachable_tasks.values()
        return out

    # -- agents --------------------------------------------------------------------

    def register_agent(self) -> c.Command | None:
        reachable = self.agents(
            AgentStatus.ACTIVE, AgentStatus.DISCONNECTED, AgentStatus.RECOVERING
        )
        if len(reachable) >= MAX_REACHABLE_AGENTS and self.maybe(0.9):
            return None
        info = m.AgentInfo(hostname=self.rng.choice(HOSTS), port=self.rng.choice((5051, 5052)))
        info.resources.extend(resource_protos(AGENT_RESOURCES))
        return command(
            register_agent=c.RegisterAgent(
                agent_info=info, stream_id=self.fresh("as-"), capabilities=self.capabilities()
            )
        )

    def capabilities(self) -> list[m.AgentInfo.Capability]:
        """Mostly meseta's agent (it can drain and resize volumes), sometimes one that
        cannot."""
        resize = (m.AgentInfo.Capability.RESIZE_VOLUME,)
        return agent_capabilities((*AGENT_CAPABILITIES, *resize) if self.maybe(0.9) else ())

    def reregister_agent(self) -> c.Command | None:
        agents = self.agents()
        if not agents:
            return None
        agent = self.state.agents[self.rng.choice(agents)]
        reports = []
        for task in self.tasks():
            if task.agent_id != agent.id or is_terminal(task.state) or self.maybe(0.2):
                continue
            report = m.Task(name=task.info.name, state=m.TASK_RUNNING)
            if task.state not in (m.TASK_UNREACHABLE, m.TASK_STAGING):
                report.state = cast(m.TaskState, task.state)
            report.task_id.value = task.task_id
            report.framework_id.value = task.framework_id
            report.agent_id.value = agent.id
            report.resources.extend(task.info.resources)
            reports.append(report)
        framework_ids = self.frameworks(FrameworkStatus.CONNECTED, FrameworkStatus.DISCONNECTED)
        orphan = parse("cpus:0.1")
        if framework_ids and self.maybe(0.2) and agent.available.contains(orphan):
            # A task the master does not know (it fits: the agent runs it).
            report = m.Task(name="orphan", state=m.TASK_RUNNING)
            report.task_id.value = self.fresh("orphan-")
            report.framework_id.value = self.rng.choice(framework_ids)
            report.agent_id.value = agent.id
            report.resources.extend(resource_protos(orphan))
            reports.append(report)
        return command(
            reregister_agent=c.ReregisterAgent(
                agent_info=agent.info,
                stream_id=self.fresh("as-"),
                tasks=reports,
                capabilities=self.capabilities(),
            )
        )

    def disconnect_agent(self) -> c.Command | None:
        agents = self.agents(AgentStatus.ACTIVE)
        if not agents:
            return None
        agent = self.state.agents[self.rng.choice(agents)]
        stream = agent.stream_id if self.maybe(0.9) else "stale"
        return command(disconnect_agent=c.DisconnectAgent(agent_id=agent.id, stream_id=stream))

    def mark_agent_unreachable(self) -> c.Command | None:
        agents = self.agents()
        if not agents or self.maybe(0.5):
            return None
        agent_id = self.rng.choice(agents)
        return command(mark_agent_unreachable=c.MarkAgentUnreachable(agent_id=agent_id))

    def mark_agent_gone(self) -> c.Command | None:
        agents = self.agents()
        if not agents or self.maybe(0.5):
            return None
        return command(mark_agent_gone=c.MarkAgentGone(agent_id=self.rng.choice(agents)))

    def unregister_agent(self) -> c.Command | None:
        agents = self.agents()
        if not agents or self.maybe(0.5):
            return None
        agent_id = self.rng.choice(agents)
        return command(unregister_agent=c.UnregisterAgent(agent_id=agent_id))

    def deactivate_or_drain(self) -> c.Command | None:
        """An operator's DEACTIVATE_AGENT, REACTIVATE_AGENT or DRAIN_AGENT."""
        agents = self.agents()
        if not agents:
            return None
        agent_id = self.rng.choice(agents)
        kind = self.rng.choice(("deactivate", "reactivate", "drain"))
        if kind == "deactivate":
            return command(deactivate_agent=c.DeactivateAgent(agent_id=agent_id))
        if kind == "reactivate":
            return command(reactivate_agent=c.ReactivateAgent(agent_id=agent_id))
        config = m.DrainConfig(mark_gone=self.maybe(0.3))
        if self.maybe(0.5):
            config.max_grace_period.nanoseconds = self.rng.randint(0, 10) * NS_PER_S
        return command(drain_agent=c.DrainAgent(agent_id=agent_id, config=config))

    def update_quota(self) -> c.Command:
        """An operator's UPDATE_QUOTA: often refused (beyond consumption or capacity, or
        for a nested role) unless forced; sometimes a removal."""
        configs = []
        for _ in range(self.rng.randint(1, 2)):
            config = q.QuotaConfig(role=self.rng.choice(("a", "b", "*", "c", "a/x")))
            for name in ("cpus", "mem"):
                scale = 4 if name == "cpus" else 2048
                if self.maybe(0.4):
                    config.guarantees[name].value = self.rng.randint(0, 4) * scale / 4
                if self.maybe(0.5):
                    config.limits[name].value = self.rng.randint(0, 8) * scale / 4
            for name, guarantee in config.guarantees.items():
                limit = config.limits.get(name)
                if limit is not None and limit.value < guarantee.value:
                    limit.value = guarantee.value
            configs.append(config)
        return command(update_quota=c.UpdateQuota(configs=configs, force=self.maybe(0.3)))

    # -- frameworks ----------------------------------------------------------------

    def subscribe_framework(self) -> c.Command | None:
        live = self.frameworks(FrameworkStatus.CONNECTED, FrameworkStatus.DISCONNECTED)
        if len(live) >= MAX_LIVE_FRAMEWORKS and self.maybe(0.9):
            return None
        multi = self.maybe(0.3)
        info = framework_info(
            self.fresh("fw-"),
            roles=["a", "b"] if multi else None,
            partition_aware=self.maybe(0.5),
            checkpoint=self.maybe(0.5),
            failover_timeout=self.rng.choice((0.0, 10.0, 3600.0)),
        )
        if self.maybe(0.05):
            info.failover_timeout = -1  # rejected
        return command(
            subscribe_framework=c.SubscribeFramework(
                framework_info=info, stream_id=self.fresh("fs-")
            )
        )

    def resubscribe_framework(self) -> c.Command | None:
        frameworks = self.frameworks()
        if not frameworks:
            return None
        info = m.FrameworkInfo()
        info.CopyFrom(self.state.frameworks[self.rng.choice(frameworks)].info)
        if self.maybe(0.1):
            info.principal = "someone-else"  # rejected
        return command(
            subscribe_framework=c.SubscribeFramework(
                framework_info=info, stream_id=self.fresh("fs-")
            )
        )

    def disconnect_framework(self) -> c.Command | None:
        frameworks = self.frameworks(FrameworkStatus.CONNECTED)
        if not frameworks:
            return None
        framework = self.state.frameworks[self.rng.choice(frameworks)]
        return command(
            disconnect_framework=c.DisconnectFramework(
                framework_id=framework.id, stream_id=framework.stream_id
            )
        )

    def teardown_framework(self) -> c.Command | None:
        frameworks = self.frameworks()
        if not frameworks or self.maybe(0.5):
            return None
        framework_id = self.rng.choice(frameworks)
        return command(teardown_framework=c.TeardownFramework(framework_id=framework_id))

    def suppress_revive(self) -> c.Command | None:
        frameworks = self.frameworks(FrameworkStatus.CONNECTED)
        if not frameworks:
            return None
        framework = self.state.frameworks[self.rng.choice(frameworks)]
        roles = [] if self.maybe(0.5) else [self.rng.choice(framework.roles)]
        if self.maybe(0.5):
            return command(suppress_offers=c.SuppressOffers(framework_id=framework.id, roles=roles))
        return command(revive_offers=c.ReviveOffers(framework_id=framework.id, roles=roles))

    # -- offers --------------------------------------------------------------------

    def create_offers(self) -> c.Command | None:
        frameworks = self.frameworks(FrameworkStatus.CONNECTED)
        agents = self.agents(AgentStatus.ACTIVE)
        if not frameworks or not agents:
            return None
        decisions = []
        for _ in range(self.rng.randint(1, 3)):
            framework = self.state.frameworks[self.rng.choice(frameworks)]
            agent = self.state.agents[self.rng.choice(agents)]
            role = self.rng.choice(framework.roles)
            available = agent.available.allocatable_to(role)
            # Sometimes stale: more than is left.
            offered = parse("cpus:1;mem:256") if self.maybe(0.3) else available
            decision = c.OfferDecision(framework_id=framework.id, agent_id=agent.id, role=role)
            decision.resources.extend(resource_protos(offered))
            decisions.append(decision)
        return command(
            create_offers=c.CreateOffers(offers=decisions, base_index=self.state.applied_index)
        )

    def accept_offers(self) -> c.Command | None:
        offers = list(self.state.offers.values())
        if not offers:
            return None
        offer = self.rng.choice(offers)
        offer_ids = [offer.id]
        if self.maybe(0.1):
            offer_ids.append(self.rng.choice(offers).id)  # maybe another agent or framework
        if self.maybe(0.05):
            offer_ids = ["no-such-offer"]
        accept = s.Call.Accept()
        for offer_id in offer_ids:
            accept.offer_ids.add(value=offer_id)
        if self.maybe(0.25):
            operation = self.reservation_operation(offer.resources, offer.role)
            if self.maybe(0.1):
                operation.id.value = self.fresh("op-")  # feedback: refused
            accept.operations.append(operation)
        if self.maybe(0.8):
            launch = self.launch_operation(offer.framework_id, offer.agent_id)
            shaped = offer.resources.shaped()
            if shaped and self.maybe(0.5):
                # A task on a reservation or a volume the offer carries.
                key = self.rng.choice(list(shaped.items))
                quantity = shaped.items[key]
                if isinstance(quantity, int) and not is_volume(key) and self.maybe(0.5):
                    quantity = min(quantity, 500)
                task = task_info(self.task_id(offer.framework_id), offer.agent_id, "cpus:0.1")
                task.ClearField("resources")
                task.resources.extend(to_protos(Resources({key: quantity})))
                launch.launch.task_infos.append(task)
            accept.operations.append(launch)
        accept.filters.refuse_seconds = self.rng.choice((0.0, 5.0, 60.0))
        return command(accept_offers=c.AcceptOffers(framework_id=offer.framework_id, accept=accept))

    def resource_operation(self) -> c.Command | None:
        """An operator's RESERVE_RESOURCES, UNRESERVE_RESOURCES, CREATE_VOLUMES or
        DESTROY_VOLUMES on an agent's unallocated resources (sometimes too much)."""
        agents = self.agents(AgentStatus.ACTIVE)
        if not agents:
            return None
        agent = self.state.agents[self.rng.choice(agents)]
        role = self.rng.choice(("a", "b", "a/x"))
        operation = self.reservation_operation(agent.available, role)
        apply = c.ApplyResourceOperation(agent_id=agent.id, operation=operation)
        return command(apply_resource_operation=apply)

    def maintenance(self) -> c.Command:
        """An operator's schedule (sometimes dropping a DOWN machine: refused), or a
        scheduled machine brought DOWN, or a DOWN one UP."""
        kind = self.rng.choice(("schedule", "schedule", "down", "up"))
        machines = list(self.state.machines.values())
        if kind == "down" and machines:
            machine = self.rng.choice(machines).id
            return command(start_maintenance=c.StartMaintenance(machines=[machine]))
        if kind == "up" and machines:
            machine = self.rng.choice(machines).id
            return command(stop_maintenance=c.StopMaintenance(machines=[machine]))
        schedule = mt.Schedule()
        hosts = [host for host in HOSTS if self.maybe(0.3)]
        if hosts:
            window = schedule.windows.add()
            window.machine_ids.extend(m.MachineID(hostname=host) for host in hosts)
            window.unavailability.start.nanoseconds = self.rng.choice((1, 2)) * NS_PER_S
        return command(update_maintenance_schedule=c.UpdateMaintenanceSchedule(schedule=schedule))

    def respond_to_inverse_offers(self) -> c.Command | None:
        inverse_offers = list(self.state.inverse_offers.values())
        if not inverse_offers:
            return None
        inverse = self.rng.choice(inverse_offers)
        respond = c.RespondToInverseOffers(
            framework_id=inverse.framework_id,
            inverse_offer_ids=[inverse.id],
            accept=self.maybe(0.5),
        )
        if self.maybe(0.5):
            respond.filters.refuse_seconds = self.rng.choice((0.0, 5.0, 60.0))
        return command(respond_to_inverse_offers=respond)

    def reservation_operation(self, pool: Resources, role: str) -> m.Offer.Operation:
        """RESERVE, UNRESERVE, CREATE or DESTROY of part of `pool`, for `role`."""
        shaped = pool.shaped()
        volumes = [key for key in shaped.items if is_volume(key)]
        reservations = [key for key in shaped.items if not is_volume(key)]
        kind = self.rng.choice(
            ("reserve", "reserve", "unreserve", "create", "destroy", "grow", "shrink")
        )
        if kind in ("grow", "shrink") and volumes:
            key = self.rng.choice(volumes)
            (given,) = to_protos(Resources({key: pool.items[key]}))
            operation = Operation(type=Operation.GROW_VOLUME)
            if kind == "grow":
                operation.grow_volume.volume.CopyFrom(given)
                (addition,) = to_protos(Resources({unvolumed(key): 64 * MILLI}))
                operation.grow_volume.addition.CopyFrom(addition)
            else:
                operation.type = Operation.SHRINK_VOLUME
                operation.shrink_volume.volume.CopyFrom(given)
                operation.shrink_volume.subtract.value = self.rng.choice((1, 32, 4096))
            return operation
        if kind == "unreserve" and reservations:
            key = self.rng.choice(reservations)
            operation = Operation(type=Operation.UNRESERVE)
            operation.unreserve.resources.extend(to_protos(Resources({key: pool.items[key]})))
            return operation
        if kind == "destroy" and volumes:
            key = self.rng.choice(volumes)
            operation = Operation(type=Operation.DESTROY)
            operation.destroy.volumes.extend(to_protos(Resources({key: pool.items[key]})))
            return operation
        if kind == "create" and role != UNRESERVED:
            disk = to_protos(parse(f"disk:{self.rng.choice((64, 128, 2048))}"))[0]
            disk.reservations.add(type=DYNAMIC, role=role)
            disk.disk.persistence.id = self.fresh("vol-")
            disk.disk.volume.container_path = "data"
            disk.disk.volume.mode = m.Volume.RW
            operation = Operation(type=Operation.CREATE)
            operation.create.volumes.append(disk)
            return operation
        operation = Operation(type=Operation.RESERVE)
        for resource in to_protos(parse(self.rng.choice(("cpus:1", "mem:256;disk:256", "cpus:9")))):
            resource.reservations.add(type=DYNAMIC, role=role)
            if self.maybe(0.5):
                resource.reservations[-1].principal = "p"
            operation.reserve.resources.append(resource)
        return operation

    def task_id(self, framework_id: str) -> str:
        framework = self.state.frameworks.get(framework_id)
        if framework is not None and framework.tasks and self.maybe(0.05):
            return self.rng.choice(list(framework.tasks))  # a duplicate
        return self.fresh("t")

    def launch_operation(self, framework_id: str, agent_id: str) -> m.Offer.Operation:
        count = self.rng.randint(1, 3)
        if self.maybe(0.25):
            operation = Operation(type=Operation.LAUNCH_GROUP)
            executor = executor_info(self.fresh("ex-"), default=True)
            if self.maybe(0.9):  # else the group is refused, as Mesos refuses it
                executor.framework_id.value = framework_id
            operation.launch_group.executor.CopyFrom(executor)
            tasks = operation.launch_group.task_group.tasks
        else:
            operation = Operation(type=Operation.LAUNCH)
            tasks = operation.launch.task_infos
        for _ in range(count):
            shape = self.rng.choice(TASK_SHAPES)
            task = task_info(self.task_id(framework_id), agent_id, shape)
            if self.maybe(0.03):
                task.agent_id.value = "elsewhere"  # invalid
            tasks.append(task)
        return operation

    def decline_offers(self) -> c.Command | None:
        offers = list(self.state.offers.values())
        if not offers:
            return None
        offer = self.rng.choice(offers)
        decline = c.DeclineOffers(framework_id=offer.framework_id)
        decline.offer_ids.add(value=offer.id)
        if self.maybe(0.5):
            decline.filters.refuse_seconds = self.rng.choice((0.0, 1.0, 30.0))
        return command(decline_offers=decline)

    def rescind_offers(self) -> c.Command | None:
        if not self.state.offers:
            return None
        offer_id = self.rng.choice(list(self.state.offers))
        return command(rescind_offers=c.RescindOffers(offer_ids=[offer_id]))

    # -- tasks ---------------------------------------------------------------------

    def update_task_status(self) -> c.Command | None:
        tasks = self.tasks()
        if not tasks:
            return None
        task = self.rng.choice(tasks)
        state = self.rng.choice(UPDATE_STATES)
        status = m.TaskStatus(state=state, source=m.TaskStatus.SOURCE_EXECUTOR)
        status.task_id.value = task.task_id
        status.agent_id.value = task.agent_id
        self.sequence += 1
        status.uuid = uuid_bytes(self.sequence)
        self.uuids.setdefault((task.framework_id, task.task_id), []).append(status.uuid)
        update = c.UpdateTaskStatus(
            agent_id=task.agent_id, framework_id=task.framework_id, status=status
        )
        if self.maybe(0.2):
            update.latest_state = self.rng.choice(UPDATE_STATES)
        return command(update_task_status=update)

    def acknowledge_task_status(self) -> c.Command | None:
        candidates = [
            t for t in self.tasks(unreachable=False) if (t.framework_id, t.task_id) in self.uuids
        ]
        if not candidates:
            return None
        task = self.rng.choice(candidates)
        sent = self.uuids[(task.framework_id, task.task_id)]
        uuid = sent[-1] if self.maybe(0.85) else self.rng.choice(sent)
        return command(
            acknowledge_task_status=c.AcknowledgeTaskStatus(
                framework_id=task.framework_id,
                agent_id=task.agent_id,
                task_id=task.task_id,
                uuid=uuid,
            )
        )

    def kill_task(self) -> c.Command | None:
        frameworks = self.frameworks()
        if not frameworks:
            return None
        tasks = self.tasks()
        if tasks and self.maybe(0.8):
            task = self.rng.choice(tasks)
            kill = c.KillTask(framework_id=task.framework_id, task_id=task.task_id)
        else:
            kill = c.KillTask(
                framework_id=self.rng.choice(frameworks), task_id=self.fresh("unknown-")
            )
            agents = self.agents()
            if agents and self.maybe(0.5):
                kill.agent_id = self.rng.choice(agents)
        return command(kill_task=kill)

    def executor(self) -> c.Command | None:
        candidates = [
            (agent.id, key) for agent in self.state.agents.values() for key in agent.executors
        ]
        if not candidates:
            return None
        agent_id, (framework_id, executor_id) = self.rng.choice(candidates)
        if self.maybe(0.5):
            return command(
                shutdown_executor=c.ShutdownExecutor(
                    framework_id=framework_id, agent_id=agent_id, executor_id=executor_id
                )
            )
        return command(
            exit_executor=c.ExitExecutor(
                agent_id=agent_id, framework_id=framework_id, executor_id=executor_id, status=0
            )
        )

    # -- cluster -------------------------------------------------------------------

    def tick(self) -> c.Command:
        return command(tick=c.Tick())

    def elect_leader(self) -> c.Command | None:
        if self.maybe(0.7):
            return None
        self.term = max(self.term, self.state.leader_term) + 1
        config = c.MasterConfig(
            agent_reregister_timeout_ns=600 * NS_PER_S,
            offer_timeout_ns=self.rng.choice((0, 30 * NS_PER_S)),
        )
        info = m.MasterInfo(id=f"master-{self.term}", ip=0x7F000001, port=5050)
        return command(elect_leader=c.ElectLeader(term=self.term, master_info=info, config=config))
