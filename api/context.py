"""What the HTTP edge of a master replica shares: the fold, leadership, live streams."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from starlette.requests import Request

from meseta.api.http import HttpError, delegate_path
from meseta.api.read_cache import ReadCache
from meseta.api.streams import Stream
from meseta.master.events import DomainEvent
from meseta.master.leader import Leadership
from meseta.master.service import MasterService
from meseta.master.state import State
from meseta.projections.cluster import ClusterView
from meseta.projections.operator_stream import OperatorEventBroker

VERSION = "1.11.0"
STORE_SAMPLES = 1000  # write latencies kept for the registrar/state_store_ms percentiles


@dataclass(slots=True)
class WriteStats:
    """The API's writes to the log: Mesos's registrar figures, for the log that is ours."""

    in_flight: int = 0  # registrar/queued_operations
    stored: int = 0  # registrar/state_store_ms/count
    store_ms: deque[float] = field(default_factory=lambda: deque(maxlen=STORE_SAMPLES))


@dataclass(slots=True)
class FrameworkTraffic:
    """Scheduler calls this process took from one framework and the events it sent it, by
    type: Mesos's per-framework calls/* and events/*, which belong to the serving master
    and start from zero in a newly elected one."""

    calls: dict[int, int] = field(default_factory=dict)
    events: dict[int, int] = field(default_factory=dict)

    def call(self, kind: int) -> None:
        self.calls[kind] = self.calls.get(kind, 0) + 1


@dataclass(slots=True)
class MasterContext:
    service: MasterService
    leadership: Leadership
    # Streams waiting for the fold to accept their subscription, by stream id.
    pending: dict[str, Stream] = field(default_factory=dict)
    # Live subscriptions by framework id and by agent id.
    frameworks: dict[str, Stream] = field(default_factory=dict)
    agents: dict[str, Stream] = field(default_factory=dict)
    # Read models, folded on every replica (see `MasterReplica.build`).
    cluster: ClusterView = field(default_factory=ClusterView)
    operator_events: OperatorEventBroker = field(default_factory=OperatorEventBroker)
    read_cache: ReadCache = field(default_factory=ReadCache)  # coalesced reads
    # Monotonic time this replica last applied an entry (see api/consistency.py).
    applied_at_s: float = field(default_factory=time.monotonic)
    # The command-line flags this replica was started with, as given (for /flags).
    flags: dict[str, str] = field(default_factory=dict)
    writes: WriteStats = field(default_factory=WriteStats)
    traffic: dict[str, FrameworkTraffic] = field(default_factory=dict)  # by framework id

    def fold_read_models(self, index: int, events: list[DomainEvent]) -> None:
        """Fold listener: the entry into the cluster view, its operator events to the broker."""
        self.applied_at_s = time.monotonic()
        if index <= self.cluster.applied_index:  # restored past it: its events went out before
            self.operator_events.skip_to(self.cluster.applied_index)
            return
        operator_events = self.cluster.apply(index, events, self.service.state.now_ns)
        self.operator_events.publish(index, operator_events)

    @property
    def state(self) -> State:
        return self.service.state

    def traffic_of(self, framework_id: str) -> FrameworkTraffic:
        traffic = self.traffic.get(framework_id)
        if traffic is None:
            traffic = self.traffic[framework_id] = FrameworkTraffic()
        return traffic

    def check_leader(self, request: Request) -> None:
        """307 to the leader, or 503 while none is known or it is still taking office."""
        if self.leadership.leading:
            return
        if self.service.log.is_leader():
            raise HttpError(503, "Master has not finished recovery")
        leader = self.leader_location()
        if leader is None:
            raise HttpError(503, "No leader elected")
        query = f"?{request.url.query}" if request.url.query else ""
        location = f"//{leader}{delegate_path(request.url.path)}{query}"
        raise HttpError(307, "", {"Location": location})

    def leader_location(self) -> str | None:
        """`host:port` of the leader's HTTP API once it has taken office in the log's current
        term (its `ElectLeader` is applied here); None while no leader is known."""
        log = self.service.log
        info = self.state.master_info
        if info is None or self.state.leader_term != log.term() or not log.leader_address():
            return None
        own = self.leadership.config.master_info
        if info.port == own.port and info.address.ip == own.address.ip and not log.is_leader():
            # Just stepped down: the log still names this replica for a moment, and a 307
            # to itself would send clients round in circles.
            return None
        return f"{info.hostname or info.address.ip}:{info.port}"

    def close_all(self) -> None:
        """Leadership ended: every subscriber must find the new leader."""
        for stream in [*self.pending.values(), *self.frameworks.values(), *self.agents.values()]:
            stream.close()
        self.pending.clear()
        self.frameworks.clear()
        self.agents.clear()
