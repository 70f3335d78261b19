"""Leader duties (I/O shell): what only the leading replica does.

On election it catches up with the log, proposes `ElectLeader` (which ends
every old subscription and offer), and from then on proposes `Tick`s that
carry time into the fold, runs the allocator over agents that changed and
proposes its offers as one entry, and marks silent agents unreachable. Every
proposal is stamped with the Raft term; the fold refuses entries of a
deposed leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from meseta.log.errors import LogClosed, NotLeaderError, ProposalTimeout
from meseta.master import decide
from meseta.master.allocator import AllocatorConfig, allocate
from meseta.master.events import DomainEvent
from meseta.master.resources import to_protos
from meseta.master.service import MasterService
from meseta.master.state import AgentStatus
from meseta.master.v1 import commands_pb2
from meseta.proto.mesos.v1 import mesos_pb2

log = logging.getLogger(__name__)

LeadershipListener = Callable[[bool, int], None]


RUN_SAMPLES = 1000  # allocation run times kept for the timer's percentiles


@dataclass(slots=True)
class LeaderConfig:
    master_info: mesos_pb2.MasterInfo
    master_config: commands_pb2.MasterConfig = field(default_factory=commands_pb2.MasterConfig)
    allocator: AllocatorConfig = field(default_factory=AllocatorConfig)
    allocation_interval_s: float = 1.0
    # Wait this long after a change before allocating, to batch bursts.
    allocation_batch_s: float = 0.02
    tick_interval_s: float = 1.0
    agent_ping_timeout_s: float = 15.0
    max_agent_ping_timeouts: int = 5
    poll_interval_s: float = 0.05
    # How long the fold may take to reach an index the leader waits for (its barrier,
    # its own elect_leader), and the pause before trying to take office again.
    apply_timeout_s: float = 60.0
    retry_office_s: float = 1.0


class Leadership:
    """Watches who leads; runs the duties while this replica does."""

    def __init__(self, service: MasterService, config: LeaderConfig) -> None:
        self.service = service
        self.log = service.log
        self.config = config
        self.listeners: list[LeadershipListener] = []
        self.term = 0  # term this replica leads in; 0 when following
        self.ready = False  # ElectLeader applied: the API may serve as leader
        self.allocation_wanted = asyncio.Event()
        # allocator/mesos/allocation_runs and allocation_run_ms: this replica's runs.
        self.allocation_runs = 0
        self.allocation_run_ms: deque[float] = deque(maxlen=RUN_SAMPLES)
        # ...and allocation_run_latency_ms: from what asked for a run to its start.
        self.allocation_run_latency_ms: deque[float] = deque(maxlen=RUN_SAMPLES)
        self.considered_index = 0
        self.last_contact: dict[str, float] = {}
        self.watch_task: asyncio.Task[None] | None = None
        self.background: set[asyncio.Task[None]] = set()
        self.duties: asyncio.Task[None] | None = None
        service.listeners.append(self.on_events)

    def start(self) -> None:
        self.watch_task = asyncio.get_running_loop().create_task(self.watch(), name="leadership")

    async def stop(self) -> None:
        for task in (self.watch_task, self.duties):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    @property
    def leading(self) -> bool:
        return (
            self.term != 0 and self.ready and self.log.is_leader() and self.log.term() == self.term
        )

    def note_contact(self, agent_id: str) -> None:
        self.last_contact[agent_id] = time.monotonic()

    def spawn_proposal(self, *commands: commands_pb2.Command) -> None:
        """Propose without waiting (e.g. from a stream's close callback)."""

        async def run() -> None:
            try:
                await self.propose(*commands)
            except (NotLeaderError, LogClosed, ProposalTimeout) as error:
                log.info("background proposal dropped: %r", error)

        task = asyncio.get_running_loop().create_task(run())
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def on_events(self, index: int, events: list[DomainEvent]) -> None:
        if self.term and self.service.state.dirty_agents:
            self.allocation_wanted.set()

    async def watch(self) -> None:
        while True:
            term = self.log.term() if self.log.is_leader() else 0
            if term != self.term:
                await self.change(term)
            await asyncio.sleep(self.config.poll_interval_s)

    async def change(self, term: int) -> None:
        if self.duties is not None:
            self.duties.cancel()
            await asyncio.gather(self.duties, return_exceptions=True)
            self.duties = None
        was_leading = self.ready
        self.term, self.ready = term, False
        if was_leading:
            self.notify(False)
        if term:
            self.duties = asyncio.get_running_loop().create_task(self.lead(term), name="duties")

    def notify(self, leading: bool) -> None:
        for listener in self.listeners:
            listener(leading, self.term)

    async def lead(self, term: int) -> None:
        try:
            while True:
                try:
                    await self.take_office(term)
                    break
                except ProposalTimeout as error:
                    # Still the Raft leader of this term (else NotLeaderError): a slow
                    # commit or fold must not leave the cluster without a master.
                    log.warning("taking office in term %d: %s; retrying", term, error)
                    await asyncio.sleep(self.config.retry_office_s)
            self.ready = True
            self.notify(True)
            await asyncio.gather(self.tick_loop(), self.allocation_loop(), self.ping_loop())
        except (NotLeaderError, LogClosed):
            log.info("lost leadership of term %d", term)

    async def propose(self, *commands: commands_pb2.Command) -> int:
        return await self.log.propose(decide.entry(*commands))

    async def take_office(self, term: int) -> None:
        barrier = await self.log.barrier()
        await self.applied(barrier)
        if not self.service.state.cluster_id:
            init = commands_pb2.InitCluster(cluster_id=str(uuid.uuid4()))
            await self.propose(decide.command(init_cluster=init))
        info = mesos_pb2.MasterInfo()
        info.CopyFrom(self.config.master_info)
        info.id = self.service.state.cluster_id
        elect = commands_pb2.ElectLeader(
            term=term, master_info=info, config=self.config.master_config
        )
        index = await self.propose(decide.command(elect_leader=elect))
        await self.applied(index)
        self.considered_index = 0
        now = time.monotonic()
        self.last_contact = dict.fromkeys(self.service.state.agents, now)
        self.allocation_wanted.set()
        log.info("leading in term %d", term)

    async def applied(self, index: int) -> None:
        if not await self.service.wait_applied(index, timeout_s=self.config.apply_timeout_s):
            raise ProposalTimeout(f"the fold did not reach index {index} in time")

    async def tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick_interval_s)
            with self.tolerating_timeouts("tick"):
                await self.propose(decide.command(tick=commands_pb2.Tick()))

    @contextlib.contextmanager
    def tolerating_timeouts(self, duty: str) -> Iterator[None]:
        """A duty's proposal that timed out is retried by the duty's next round."""
        try:
            yield
        except ProposalTimeout as error:
            log.warning("%s proposal timed out: %s", duty, error)

    async def allocation_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.allocation_wanted.wait(), self.config.allocation_interval_s
                )
            self.allocation_wanted.clear()
            triggered = time.perf_counter()  # an event, or the interval
            await asyncio.sleep(self.config.allocation_batch_s)
            with self.tolerating_timeouts("create_offers"):
                await self.allocate_once(triggered)

    async def allocate_once(self, triggered: float) -> None:
        state = self.service.state
        base = state.applied_index
        changed = [a for a, mark in state.dirty_agents.items() if mark > self.considered_index]
        if not changed:
            return
        started = time.perf_counter()
        # With quota, a change anywhere moves the consumption and headroom that held
        # resources back elsewhere: every agent is looked at, as Mesos's allocator does.
        agent_ids = None if state.quotas else changed
        decisions = allocate(state, state.now_ns, self.config.allocator, agent_ids, seed=base)
        self.allocation_runs += 1
        self.allocation_run_ms.append((time.perf_counter() - started) * 1000)
        self.allocation_run_latency_ms.append((started - triggered) * 1000)
        considered, self.considered_index = self.considered_index, base
        if not decisions:
            return
        offers = [
            commands_pb2.OfferDecision(
                framework_id=d.framework_id,
                agent_id=d.agent_id,
                role=d.role,
                resources=to_protos(d.resources),
            )
            for d in decisions
        ]
        create = commands_pb2.CreateOffers(offers=offers, base_index=base)
        try:
            await self.propose(decide.command(create_offers=create))
        except ProposalTimeout:
            # Look at these agents again next round; if the entry commits after all,
            # the fold drops the decisions that no longer fit.
            self.considered_index = min(self.considered_index, considered)
            raise

    async def ping_loop(self) -> None:
        budget_s = self.config.agent_ping_timeout_s * self.config.max_agent_ping_timeouts
        while True:
            await asyncio.sleep(self.config.agent_ping_timeout_s)
            now = time.monotonic()
            for agent in list(self.service.state.agents.values()):
                if agent.status is not AgentStatus.ACTIVE:
                    continue
                seen = self.last_contact.setdefault(agent.id, now)
                if now - seen > budget_s:
                    mark = commands_pb2.MarkAgentUnreachable(
                        agent_id=agent.id, message="health check timed out"
                    )
                    with self.tolerating_timeouts("mark_agent_unreachable"):
                        await self.propose(decide.command(mark_agent_unreachable=mark))
