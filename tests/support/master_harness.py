"""A master replica on loopback over a `MemoryLog`, for API tests.

`running_master()` starts a leading replica (fast allocation and ticks, a real
clock so `failover_timeout` means seconds) and waits until it serves as leader;
`follower_master()` starts one that follows a leader elsewhere (or none), fed
through `replicate()` the way Raft would feed it. Both stop everything on exit,
even when the test failed.

Leadership is simulated with `MemoryLog.set_leader`: `Leadership` polls
`log.is_leader()` and `log.term()`, so `lose_leadership()` ends the duties
(and closes every stream) within a poll interval, and `regain_leadership(term)`
with a higher term makes the replica take office again (`ElectLeader`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meseta.api.context import MasterContext
from meseta.api.master import MasterReplica, master_info
from meseta.log.codec import encode_batch, encode_entry
from meseta.log.memory import MemoryLog
from meseta.log.testing import free_port
from meseta.master import decide, fold
from meseta.master.digest import digest
from meseta.master.leader import LeaderConfig
from meseta.master.state import State
from meseta.master.v1 import commands_pb2
from meseta.projections.operator_stream import OperatorEventBroker
from meseta.proto.mesos.v1 import mesos_pb2

HOST = "127.0.0.1"
SCHEDULER_PATH = "/api/v1/scheduler"
AGENT_PATH = "/api/v1/agent"


@dataclass
class MasterHandle:
    replica: MasterReplica
    log: MemoryLog
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def context(self) -> MasterContext:
        return self.replica.context

    @property
    def state(self) -> State:
        return self.replica.context.state

    @property
    def leading(self) -> bool:
        return self.replica.context.leadership.leading

    async def wait_until(
        self, predicate: Callable[[], object], what: str, timeout_s: float = 5.0
    ) -> None:
        """Poll `predicate` until it is true; fail the test after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
            await asyncio.sleep(0.02)

    async def wait_unsubscribed(self) -> None:
        """Until no operator event stream (RecordIO or SSE) is subscribed any more."""
        broker = self.context.operator_events
        await self.wait_until(lambda: not broker.subscriptions, "the subscriptions to end")

    async def wait_leading(self, timeout_s: float = 10.0) -> None:
        await self.wait_until(lambda: self.leading, "leadership", timeout_s)

    def lose_leadership(self, leader: str | None = None) -> None:
        """Stop leading; `leader` is the address the log then names (None: no leader)."""
        self.log.set_leader(False, leader=leader)

    async def wait_stepped_down(self, timeout_s: float = 5.0) -> None:
        leadership = self.context.leadership
        await self.wait_until(lambda: leadership.term == 0, "stepping down", timeout_s)

    async def regain_leadership(self, term: int, timeout_s: float = 10.0) -> None:
        self.log.set_leader(True, term=term)
        await self.wait_until(
            lambda: self.leading and self.state.leader_term == term,
            f"leading term {term}",
            timeout_s,
        )

    def quiet_digest(self) -> str:
        """The fold state's digest, ignoring what the passage of time alone changes."""
        state = dataclasses.replace(self.state, now_ns=0, applied_index=0, recent_proposals={})
        return digest(state)

    def commands_since(self, index: int) -> list[str]:
        """The command kinds committed after `index`, Ticks left out."""
        kinds = []
        for record in self.log.read(index + 1, self.log.applied_index() + 1):
            for command in fold.decode(record.entry).commands:
                kind = command.WhichOneof("body") or ""
                if kind != "tick":
                    kinds.append(kind)
        return kinds

    @contextlib.contextmanager
    def unchanged(self, *rejected: str) -> Iterator[None]:
        """Assert that the block leaves the fold state as it was and commits no command
        but those of the kinds in `rejected` (semantic failures the fold refuses)."""
        before_digest, before_index = self.quiet_digest(), self.state.applied_index
        yield
        committed = [kind for kind in self.commands_since(before_index) if kind not in rejected]
        assert committed == [], f"a rejected call committed {committed}"
        assert self.quiet_digest() == before_digest, "a rejected call changed the fold state"


def leader_config(
    port: int,
    *,
    allocation_interval_s: float = 0.1,
    tick_interval_s: float = 0.2,
    master_config: commands_pb2.MasterConfig | None = None,
) -> LeaderConfig:
    return LeaderConfig(
        master_info=master_info(HOST, HOST, port),
        master_config=master_config or commands_pb2.MasterConfig(),
        allocation_interval_s=allocation_interval_s,
        tick_interval_s=tick_interval_s,
        poll_interval_s=0.02,
    )


@contextlib.asynccontextmanager
async def running_master(
    *,
    allocation_interval_s: float = 0.1,
    tick_interval_s: float = 0.2,
    master_config: commands_pb2.MasterConfig | None = None,
    log: MemoryLog | None = None,
    wait_ready: bool = True,
) -> AsyncIterator[MasterHandle]:
    """A leading replica on 127.0.0.1:<free port>; stopped (with its log) on exit."""
    log = log if log is not None else MemoryLog(clock_ns=time.time_ns)
    port = free_port()
    config = leader_config(
        port,
        allocation_interval_s=allocation_interval_s,
        tick_interval_s=tick_interval_s,
        master_config=master_config,
    )
    handle = MasterHandle(MasterReplica.build(log, config, HOST, port), log, HOST, port)
    try:
        await handle.replica.start()
        if wait_ready:
            await handle.wait_leading()
        yield handle
    finally:
        await stop(handle)


def use_broker(master: MasterHandle, **options: Any) -> OperatorEventBroker:
    """Swap in an operator event broker with test settings; it starts where the view is."""
    broker = OperatorEventBroker(master.context.cluster.applied_index, **options)
    master.context.operator_events = broker
    return broker


def replica_over(log: MemoryLog, view_dir: Path) -> MasterHandle:
    """A leading replica (not started) over a shared `log`, keeping its view in `view_dir`:
    restart tests build one after another over the same log and directory."""
    port = free_port()
    built = MasterReplica.build(log, leader_config(port), HOST, port, view_dir=view_dir)
    return MasterHandle(built, log, HOST, port)


@contextlib.asynccontextmanager
async def serving(handle: MasterHandle) -> AsyncIterator[MasterHandle]:
    """Start the replica and wait until it leads; stop it on exit (the shared log stays open)."""
    await handle.replica.start()
    try:
        await handle.wait_leading()
        yield handle
    finally:
        await asyncio.wait_for(handle.replica.stop(), 10.0)


async def stop(handle: MasterHandle) -> None:
    try:
        await asyncio.wait_for(handle.replica.stop(), 10.0)
    finally:
        await handle.log.close()


# -- followers ---------------------------------------------------------------------

_proposals = itertools.count(1)


def replicate(log: MemoryLog, *commands: commands_pb2.Command, term: int) -> None:
    """Commit one entry as if another replica, leading in `term`, had proposed it."""
    entry = decide.entry(*commands)
    entry.header.proposal_id = b"remote-%d" % next(_proposals)
    entry.header.timestamp_ns = time.time_ns()
    entry.header.proposer_term = term
    log.apply_batch(encode_batch([encode_entry(entry)]))


def remote_master_info(hostname: str, port: int, ip: str = "10.0.0.9") -> mesos_pb2.MasterInfo:
    info = mesos_pb2.MasterInfo(id="", port=port, hostname=hostname, version="1.11.0")
    info.ip = int.from_bytes(socket.inet_aton(ip), "little")
    info.address.hostname = hostname
    info.address.ip = ip
    info.address.port = port
    return info


@contextlib.asynccontextmanager
async def follower_master(
    *,
    leader_hostname: str = "leader.example",
    leader_port: int = 5999,
    leader_known: bool = True,
    term: int = 1,
    stepped_down: bool = False,
) -> AsyncIterator[MasterHandle]:
    """A replica that follows: the cluster's leader (elected in `term`) is elsewhere.

    With `leader_known=False` the log names no leader, as during an election; with
    `stepped_down` the leader the log still names is this replica, which no longer leads
    (the moment after a step-down).
    """
    port = free_port()
    log = MemoryLog(clock_ns=time.time_ns, address=f"{HOST}:{port}")
    log.set_leader(False, leader=None, term=term)
    cluster_id = "follower-test-cluster"
    if stepped_down:
        leader_hostname, leader_port = HOST, port
    info = remote_master_info(leader_hostname, leader_port, HOST if stepped_down else "10.0.0.9")
    info.id = cluster_id
    replicate(
        log,
        decide.command(init_cluster=commands_pb2.InitCluster(cluster_id=cluster_id)),
        term=term,
    )
    config = commands_pb2.MasterConfig()
    elect = commands_pb2.ElectLeader(term=term, master_info=info, config=config)
    replicate(log, decide.command(elect_leader=elect), term=term)
    if leader_known:
        log.set_leader(False, leader=f"{leader_hostname}:{leader_port}")
    handle = MasterHandle(
        MasterReplica.build(log, leader_config(port), HOST, port), log, HOST, port
    )
    try:
        await handle.replica.start()
        await handle.wait_until(
            lambda: handle.state.applied_index >= 2 and handle.state.leader_term == term,
            "the follower's fold to catch up",
        )
        yield handle
    finally:
        await stop(handle)
