"""The replicated log as real processes on loopback: crashes, lag, snapshots, security.

Every test starts its own cluster under tmp_path and kills it in a finally
block; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import os
import pickle
import signal
import socket
import struct
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import lmdb
import pytest

from meseta.log.codec import MAX_ENTRY_BYTES
from meseta.log.testing import (
    LocalCluster,
    NodeProcess,
    get_status,
    wait_for_leader,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

_ids = itertools.count(1)


def new_id() -> str:
    return f"{os.getpid():08x}{next(_ids):024x}"


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator[Any]:
    clusters: list[LocalCluster] = []

    def make(voters: int = 3, *extra: str) -> LocalCluster:
        cluster = LocalCluster(tmp_path / f"cluster{len(clusters)}", voters, list(extra))
        clusters.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in clusters:
            cluster.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def started(
    cluster_factory: Any, session: aiohttp.ClientSession, *extra: str
) -> tuple[LocalCluster, NodeProcess]:
    """A running 3-voter cluster and its leader."""
    cluster = cluster_factory(3, *extra)
    cluster.start_all()
    return cluster, await wait_for_leader(session, cluster)


async def append(
    session: aiohttp.ClientSession,
    node: NodeProcess,
    proposal_id: str,
    size: int = 200,
    *,
    random: bool = False,
) -> tuple[int, dict[str, Any]]:
    try:
        async with session.post(
            f"{node.url}/append",
            json={"id": proposal_id, "size": size, "timeout_s": 2.0, "random": random},
            timeout=aiohttp.ClientTimeout(total=3),
        ) as response:
            return response.status, dict(await response.json())
    except (aiohttp.ClientError, TimeoutError) as error:
        return 0, {"error": repr(error)}


async def entries(session: aiohttp.ClientSession, node: NodeProcess) -> list[list[Any]]:
    async with session.get(f"{node.url}/entries", timeout=aiohttp.ClientTimeout(total=10)) as r:
        return list(await r.json())


async def write_n(session: aiohttp.ClientSession, cluster: LocalCluster, count: int) -> list[str]:
    """Append `count` entries at the leader, following it if it moves (bounded)."""
    ids = [new_id() for _ in range(count)]
    deadline = time.monotonic() + 30
    leader = await wait_for_leader(session, cluster)
    for chunk in range(0, count, 50):
        pending = ids[chunk : chunk + 50]
        while pending:
            results = await asyncio.gather(*(append(session, leader, i) for i in pending))
            pending = [i for i, (status, _) in zip(pending, results, strict=True) if status != 200]
            if pending:  # the leader moved: a retry with the same id is safe
                assert time.monotonic() < deadline, results
                leader = await wait_for_leader(session, cluster)
    return ids


async def change_members(
    session: aiohttp.ClientSession, cluster: LocalCluster, change: dict[str, str]
) -> None:
    """POST /members at the leader, following it if it moves (bounded), as an operator would.
    A change sent as the leader moved may commit all the same; pysyncobj then refuses the
    repeat (a member added twice), so a refusal after a move counts as done."""
    deadline = time.monotonic() + 30
    moved = False
    while True:
        leader = await wait_for_leader(session, cluster)
        async with session.post(f"{leader.url}/members", json=change) as response:
            text = await response.text()
            if response.status == 200 or (moved and response.status != 503):
                return
            assert response.status == 503 and "NotLeaderError" in text, text
        moved = True
        assert time.monotonic() < deadline, text
        await asyncio.sleep(0.2)


async def converge(session: aiohttp.ClientSession, nodes: list[NodeProcess], index: int) -> None:
    for node in nodes:
        await wait_until(session, node, lambda s: s["applied_index"] >= index, timeout_s=30)


async def same_log(session: aiohttp.ClientSession, nodes: list[NodeProcess]) -> list[list[Any]]:
    """Wait until every node has applied as far as the furthest, then compare logs."""
    statuses = [await wait_until(session, node, lambda s: True) for node in nodes]
    await converge(session, nodes, max(s["applied_index"] for s in statuses))
    logs = [await entries(session, node) for node in nodes]
    for node, log in zip(nodes[1:], logs[1:], strict=True):
        assert log == logs[0], f"{node.name} diverges from {nodes[0].name}"
    return logs[0]


class Writer:
    """Proposes continuously, following the leader, retrying with the same id."""

    def __init__(self, session: aiohttp.ClientSession, cluster: LocalCluster) -> None:
        self.session, self.cluster = session, cluster
        self.acknowledged: dict[str, int] = {}
        self.attempts = 0
        self.stop = asyncio.Event()

    def _by_address(self, address: str | None) -> NodeProcess | None:
        return next((n for n in self.cluster.nodes if n.address == address and n.running), None)

    async def run(self, leader: NodeProcess) -> None:
        target: NodeProcess | None = leader
        while not self.stop.is_set():
            proposal_id = new_id()
            while not self.stop.is_set():  # retry this id until it is acknowledged
                self.attempts += 1
                if target is None or not target.running:
                    target = next((n for n in self.cluster.nodes if n.running), None)
                assert target is not None
                status, body = await append(self.session, target, proposal_id)
                if status == 200:
                    self.acknowledged[proposal_id] = body["index"]
                    break
                if status == 503:
                    target = self._by_address(body.get("leader")) or target
                    if not body.get("leader"):
                        await asyncio.sleep(0.02)
                else:
                    target = None
                    await asyncio.sleep(0.02)


async def test_leader_killed_under_load_loses_and_duplicates_nothing(
    cluster_factory: Any, session: aiohttp.ClientSession
) -> None:
    cluster, leader = await started(cluster_factory, session)
    writers = [Writer(session, cluster) for _ in range(4)]
    tasks = [asyncio.create_task(w.run(leader)) for w in writers]
    try:
        await asyncio.sleep(1.0)
        before = sum(len(w.acknowledged) for w in writers)
        killed_at = time.monotonic()
        cluster.kill(leader)
        new_leader = await wait_for_leader(session, cluster, timeout_s=10)
        assert new_leader is not leader
        # The survivors keep committing after the kill.
        deadline = time.monotonic() + 10
        while sum(len(w.acknowledged) for w in writers) < before + 50:
            assert time.monotonic() < deadline, "no commits after the leader was killed"
            await asyncio.sleep(0.05)
        failover_s = time.monotonic() - killed_at
    finally:
        for writer in writers:
            writer.stop.set()
        await asyncio.gather(*tasks)
    survivors = [n for n in cluster.nodes if n.running]
    acknowledged = {k: v for w in writers for k, v in w.acknowledged.items()}
    await converge(session, survivors, max(acknowledged.values()))
    log = await same_log(session, survivors)
    stored = [row[1] for row in log]
    assert len(stored) == len(set(stored)), "a proposal id was stored twice"
    index_of = {row[1]: row[0] for row in log}
    lost = [k for k in acknowledged if k not in index_of]
    assert not lost, f"{len(lost)} acknowledged proposals lost"
    assert all(index_of[k] == v for k, v in acknowledged.items()), "an ack named a wrong index"
    assert [row[0] for row in log] == list(range(1, len(log) + 1))
    timestamps = [row[2] for row in log]
    assert all(a < b for a, b in itertools.pairwise(timestamps)), "time went back"
    assert failover_s < 10

    # The killed replica comes back and catches up with everything.
    cluster.start(leader)
    await converge(session, [leader], len(log))
    assert (await entries(session, leader))[: len(log)] == log


@contextlib.contextmanager
def stopped(node: NodeProcess) -> Iterator[None]:
    """SIGSTOP the replica (a starved or paused process) until the block ends."""
    assert node.process is not None
    os.kill(node.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(node.process.pid, signal.SIGCONT)


async def test_a_follower_that_stalls_does_not_depose_its_leader(
    cluster_factory: Any, session: aiohttp.ClientSession
) -> None:
    """Pre-vote (log/prevote.py): a follower that stopped hearing its leader only because it
    was not running asks before it campaigns, and the others, who hear the leader, refuse."""
    cluster, leader = await started(cluster_factory, session)
    await write_n(session, cluster, 20)
    term = (await get_status(session, leader) or {})["term"]
    follower = next(n for n in cluster.nodes if n is not leader)
    for pause_s in (0.8, 2.0):  # past the longest election timeout, then past the connections'
        with stopped(follower):
            await asyncio.sleep(pause_s)
        await write_n(session, cluster, 20)  # the resumed follower has run its timers by then
        await asyncio.sleep(1.0)
        statuses = [await get_status(session, n) for n in cluster.nodes]
        assert [(s or {}).get("term") for s in statuses] == [term] * 3, statuses
        assert (await get_status(session, leader) or {}).get("is_leader"), statuses
    await converge(session, cluster.nodes, 60)
    await same_log(session, cluster.nodes)


async def test_a_stalled_leader_is_replaced_and_follows_on_return(
    cluster_factory: Any, session: aiohttp.ClientSession
) -> None:
    """The followers of a leader that stops grant each other's pre-votes and elect anew."""
    cluster, leader = await started(cluster_factory, session)
    await write_n(session, cluster, 20)
    with stopped(leader):
        started_at = time.monotonic()
        new_leader = await wait_for_leader(session, cluster_without(cluster, leader), timeout_s=10)
        elected_s = time.monotonic() - started_at
        await write_n(session, cluster_without(cluster, leader), 20)
    assert new_leader is not leader and elected_s < 5
    await converge(session, cluster.nodes, 40)  # the old leader stepped down and caught up
    await same_log(session, cluster.nodes)
    status = await get_status(session, leader)
    assert status is not None and not status["is_leader"]


def cluster_without(cluster: LocalCluster, node: NodeProcess) -> LocalCluster:
    """A view of `cluster` whose waits ignore `node` (stopped, so it cannot answer)."""
    view = copy.copy(cluster)
    view.nodes = [n for n in cluster.nodes if n is not node]
    return view


async def test_restarted_follower_catches_up(
    cluster_factory: Any, session: aiohttp.ClientSession
) -> None:
    cluster, leader = await started(cluster_factory, session)
    await write_n(session, cluster, 100)
    follower = next(n for n in cluster.nodes if n is not leader)
    cluster.kill(follower)
    await write_n(session, cluster, 200)
    cluster.start(follower)
    await converge(session, cluster.nodes, 300)
    await same_log(session, cluster.nodes)
    status = await get_status(session, follower)
    assert status is not None and status["snapshots_installed"] == 0  # journal was enough


async def test_lagging_follower_installs_a_snapshot(
    cluster_factory: Any, session: aiohttp.ClientSession
) -> None:
    # A small compaction threshold makes the leader drop the journal the
    # follower would need, so only a snapshot can bring it back.
    cluster, leader = await started(cluster_factory, session, "--snapshot-min-entries", "20")
    await write_n(session, cluster, 50)
    follower = next(n for n in cluster.nodes if n is not leader)
    cluster.kill(follower)
    written = 50
    deadline = time.monotonic() + 60
    while True:  # small groups: each becomes its own Raft entry and counts toward compaction
        await write_n(session, cluster, 10)
        written += 10
        status = await get_status(session, leader)
        if status and status["snapshots_made"] >= 2 and written >= 350:
            break
        assert time.monotonic() < deadline, f"the leader made no snapshot: {status}"
    cluster.start(follower)
    await converge(session, cluster.nodes, written)
    status = await wait_until(session, follower, lambda s: s["snapshots_installed"] >= 1)
    assert status["applied_index"] >= written
    await same_log(session, cluster.nodes)
    # It keeps up with new writes after the install.
    await write_n(session, cluster, 20)
    await converge(session, cluster.nodes, written + 20)
    await same_log(session, cluster.nodes)


async def test_kill_during_snapshot_then_recover(
    cluster_factory: Any, session: aiohttp.ClientSession
) -> None:
    cluster, leader = await started(
        cluster_factory, session, "--snapshot-min-entries", "100000", "--snapshot-delay-s", "3"
    )
    await write_n(session, cluster, 150)
    victim = next(n for n in cluster.nodes if n is not leader)
    await converge(session, [victim], 150)
    async with session.post(f"{victim.url}/snapshot") as response:
        assert response.status == 200
    await wait_until(session, victim, lambda s: s["snapshot_building"])
    cluster.kill(victim)
    assert not (victim.data / "snapshot").exists(), "a half-built snapshot was published"
    await write_n(session, cluster, 50)
    cluster.start(victim)
    await converge(session, cluster.nodes, 200)
    await same_log(session, cluster.nodes)
    leftovers = [p.name for p in victim.data.iterdir() if p.name.startswith(".snapshot-")]
    assert not leftovers
    # A snapshot made after the restart is complete and survives another restart.
    async with session.post(f"{victim.url}/snapshot") as response:
        assert response.status == 200
    await wait_until(session, victim, lambda s: s["snapshots_made"] >= 1, timeout_s=30)
    cluster.kill(victim)
    cluster.start(victim)
    await converge(session, [victim], 200)
    await same_log(session, cluster.nodes)


async def test_read_replica_follows_and_never_votes(
    cluster_factory: Any, session: aiohttp.ClientSession
) -> None:
    cluster = cluster_factory()
    reader = cluster.add_read_replica()
    cluster.start_all()
    leader = await wait_for_leader(session, cluster)
    await write_n(session, cluster, 100)
    await converge(session, [reader], 100)
    status = await get_status(session, reader)
    assert status is not None
    assert not status["voting"] and not status["is_leader"]
    assert status["leader"] == leader.address
    # Writes to the reader are refused with the leader's address.
    code, body = await append(session, reader, new_id())
    assert code == 503 and body["leader"] == leader.address
    # With two voters gone there is no quorum: the reader must not make one.
    others = [n for n in cluster.nodes if n.address and n is not leader]
    cluster.kill(others[0])
    cluster.kill(others[1])
    await asyncio.sleep(2.0)  # longer than the leader's step-down time
    for node in (reader, leader):
        status = await get_status(session, node)
        assert status is not None and not status["is_leader"], f"{node.name} leads without quorum"
    cluster.start(others[0])
    cluster.start(others[1])
    leader = await wait_for_leader(session, cluster)
    assert leader.address is not None
    await write_n(session, cluster, 10)
    await converge(session, [reader], 110)
    await same_log(session, cluster.nodes)


async def test_oversize_entry_is_refused_clearly(
    cluster_factory: Any, session: aiohttp.ClientSession
) -> None:
    cluster, leader = await started(cluster_factory, session)
    before = (await get_status(session, leader) or {})["applied_index"]
    code, body = await append(session, leader, new_id(), size=MAX_ENTRY_BYTES + 1024)
    assert code == 413
    assert body["error"] == "EntryTooLarge"
    assert f"{MAX_ENTRY_BYTES}-byte limit" in body["message"]
    # Entries at the cap, incompressible, replicate everywhere.
    for _ in range(8):
        proposal_id = new_id()
        for _attempt in range(100):  # bounded; the leader may move under load
            code, body = await append(
                session, leader, proposal_id, size=MAX_ENTRY_BYTES - 200, random=True
            )
            if code == 200:
                break
            leader = await wait_for_leader(session, cluster)
        assert code == 200, body
    await converge(session, cluster.nodes, before + 8)
    await same_log(session, cluster.nodes)


def _corrupt_last_entry(store: Path) -> None:
    env = lmdb.open(str(store), max_dbs=8, lib_version=0)
    try:
        entries_db = env.open_db(b"entries")
        with env.begin(write=True) as txn:
            cursor = txn.cursor(db=entries_db)
            assert cursor.last()
            key, value = bytes(cursor.key()), bytearray(cursor.value())
            value[-1] ^= 0xFF
            txn.put(key, bytes(value), db=entries_db)
    finally:
        env.close()


@pytest.mark.parametrize("damage", ["flipped-byte", "truncated-file"])
async def test_corrupted_store_stops_the_replica(
    cluster_factory: Any, session: aiohttp.ClientSession, damage: str
) -> None:
    cluster, leader = await started(cluster_factory, session)
    await write_n(session, cluster, 100)
    victim = next(n for n in cluster.nodes if n is not leader)
    await converge(session, [victim], 100)
    cluster.kill(victim)
    store = victim.data / "store"
    if damage == "flipped-byte":
        _corrupt_last_entry(store)
    else:
        data_file = store / "data.mdb"
        os.truncate(data_file, data_file.stat().st_size // 2)
    cluster.start(victim)
    assert victim.process is not None
    code = victim.process.wait(timeout=30)
    assert code == 70, victim.output()
    output = victim.output()
    assert "fail-stop" in output and "corrupt" in output
    assert "truncated" in output if damage == "truncated-file" else "CRC" in output


def _raw_peer_message(message: Any) -> bytes:
    data = zlib.compress(pickle.dumps(message, 2), 3)
    return struct.pack("i", len(data)) + data


async def test_peer_without_the_secret_is_refused(
    cluster_factory: Any, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    cluster, leader = await started(cluster_factory, session)
    await write_n(session, cluster, 20)
    # An unauthenticated peer speaking pysyncobj's wire format is dropped.
    assert leader.address is not None
    host, port = leader.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(_raw_peer_message("readonly"))
        raw.sendall(_raw_peer_message(["status"]))
        raw.settimeout(5)
        assert raw.recv(4096) == b"", "the leader answered a peer without the secret"
    # The replication port listens on the address peers are told only (127.0.0.1 here),
    # not on every interface: another loopback address finds nothing there.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.2", int(port)), timeout=2).close()
    # A read replica with the wrong secret never receives the log.
    intruder = cluster.add_read_replica()
    wrong = tmp_path / "wrong-secret"
    wrong.write_text("not-the-secret")
    secret_file = cluster.secret_file
    cluster.secret_file = wrong
    try:
        cluster.start(intruder)
    finally:
        cluster.secret_file = secret_file
    # Once it answers (a busy machine starts a Python process slowly), and a while after.
    await wait_until(session, intruder, lambda _status: True)
    await asyncio.sleep(2.0)
    status = await get_status(session, intruder)
    assert status is not None and status["applied_index"] == 0 and status["leader"] is None
    # The cluster itself is unaffected.
    leader = await wait_for_leader(session, cluster)
    await write_n(session, cluster, 5)


async def test_add_and_remove_a_voter_at_run_time(
    cluster_factory: Any, session: aiohttp.ClientSession
) -> None:
    cluster, _ = await started(cluster_factory, session)
    await write_n(session, cluster, 50)
    newcomer = cluster.add_voter()
    cluster.start(newcomer, peers=cluster.peers)
    await change_members(session, cluster, {"add": newcomer.address})
    await write_n(session, cluster, 50)
    await converge(session, cluster.nodes, 100)
    await same_log(session, cluster.nodes)
    # Four voters now: losing two of the original three leaves no quorum
    # unless the newcomer really votes; losing one must be survivable.
    leader = await wait_for_leader(session, cluster)
    victim = next(n for n in cluster.nodes if n is not leader and n is not newcomer)
    cluster.kill(victim)
    await write_n(session, cluster, 10)
    await change_members(session, cluster, {"remove": victim.address})
    await write_n(session, cluster, 10)
    running = [n for n in cluster.nodes if n.running]
    await converge(session, running, 120)
    await same_log(session, running)
