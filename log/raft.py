"""The pysyncobj adapter: a ReplicatedLog over Raft. The only module importing pysyncobj.

Threads:
  * the tick thread (ours, not pysyncobj's autoTick) runs Raft, applies
    committed batches into the event store and owns every LMDB write;
  * the snapshot thread copies the store at a snapshot point;
  * the asyncio loop that created the log proposes, waits and reads.

How a proposal becomes durable (see docs/architecture.md):
  1. `propose` (loop) stamps the header, encodes the entry and hands it to the
     batcher, which packs proposals that arrive together into one Raft entry
     and keeps a few batches in flight.
  2. pysyncobj appends the batch to the journal (staged in LMDB); our transport
     commits the staged writes with fsync before any message leaves, so a
     follower acknowledges only entries on its disk, and the leader's own copy
     is on disk before anyone can acknowledge it.
  3. When Raft commits the entry, `_on_committed` (tick thread) assigns entry
     indexes, drops duplicate proposal ids and stages the entries in the event
     store; the next commit makes them durable and readable, and then the
     loop resolves the waiting proposals.

pysyncobj's pitfalls defused here: one replicated method only (method ids are
positional); our own tick thread with fail-stop on any exception (pysyncobj's
would retry forever); explicit timeouts (its 30 s leader fallback becomes
about a second); a mandatory secret (peer traffic is pickle); an entry-size cap
below its append batch size (its chunked transfer of big entries is broken);
and our own snapshot serializer (its loader swallows errors).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle as stdlib_pickle
import sys
import threading
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pysyncobj.journal
import pysyncobj.pickle
import pysyncobj.syncobj
import pysyncobj.tcp_connection
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated
from pysyncobj.config import SERIALIZER_STATE
from pysyncobj.node import TCPNode
from pysyncobj.transport import TCPTransport

from meseta.log import snapshot as snapshot_module
from meseta.log.codec import (
    MAX_ENTRY_BYTES,
    SCHEMA_VERSION,
    decode_batch,
    decode_entry,
    encode_entry,
)
from meseta.log.disk import DEFAULT_MAP_SIZE, LogDisk
from meseta.log.errors import LogClosed, LogCorrupted, NotLeaderError, ProposalTimeout
from meseta.log.interface import DEFAULT_TIMEOUT_S, LogRecord, LogStatus
from meseta.log.journal import LmdbJournal
from meseta.log.peer_cipher import PeerCipher
from meseta.log.prevote import PRE_VOTE, PRE_VOTE_REPLY, PreVote
from meseta.log.proposals import BatchOutcome, ProposalPipeline
from meseta.log.sequencer import sequence_batch
from meseta.log.snapshot import SnapshotSerializer
from meseta.log.store import EventStore
from meseta.log.v1.entries_pb2 import Entry

logger = logging.getLogger(__name__)

EXIT_FAIL_STOP = 70
SWITCH_INTERVAL_S = 0.0005
# A message pysyncobj ignores; it only keeps an idle peer connection alive.
_KEEPALIVE = {"type": "meseta_keepalive"}
_ROLE_NAMES = {0: "follower", 1: "candidate", 2: "leader"}
_LEADING = 2

if (
    SERIALIZER_STATE.NOT_SERIALIZING,
    SERIALIZER_STATE.SERIALIZING,
    SERIALIZER_STATE.SUCCESS,
    SERIALIZER_STATE.FAILED,
) != (
    snapshot_module.NOT_SERIALIZING,
    snapshot_module.SERIALIZING,
    snapshot_module.SUCCESS,
    snapshot_module.FAILED,
):
    raise ImportError("pysyncobj's SERIALIZER_STATE changed; meseta.log.snapshot must follow")


def _journal_factory(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """pysyncobj builds its journal from `conf.journalFile`; let that be our journal."""

    def create(journal_file: Any) -> Any:
        if isinstance(journal_file, LmdbJournal):
            return journal_file
        return original(journal_file)

    return create


if not getattr(pysyncobj.syncobj.createJournal, "_meseta", False):
    pysyncobj.syncobj.createJournal = _journal_factory(pysyncobj.journal.createJournal)
    pysyncobj.syncobj.createJournal._meseta = True


class _FastZlib:
    """pysyncobj compresses every message at level 3; level 1 halves that CPU."""

    decompress = staticmethod(zlib.decompress)

    @staticmethod
    def compress(data: bytes, level: int = 1) -> bytes:
        return zlib.compress(data, 1)


pysyncobj.tcp_connection.zlib = _FastZlib

# pysyncobj pickles commands and messages with protocol 2, which stores bytes as
# latin-1 text: every byte >= 0x80 costs two, twice over (the journal command,
# then the message carrying it), and pickling is slow. Every replica runs this
# module, so all speak protocol 5; older journals still load (pickle detects
# the protocol when loading).
PICKLE_PROTOCOL = 5


def _pickle_dumps(obj: Any, protocol: int | None = None) -> bytes:
    return stdlib_pickle.dumps(obj, PICKLE_PROTOCOL)


def _pickle_dump(obj: Any, file: Any, protocol: int | None = None) -> None:
    stdlib_pickle.dump(obj, file, PICKLE_PROTOCOL)


pysyncobj.pickle.dumps = _pickle_dumps
pysyncobj.pickle.dump = _pickle_dump


class _BenignTruncation(logging.Filter):
    """pysyncobj logs every overlapping append as a CRITICAL truncation of applied
    entries; LmdbJournal keeps entries that do not conflict and stops the
    replica on a real conflict, so the message is noise here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("truncating already-applied log entries")


logging.getLogger("pysyncobj.syncobj").addFilter(_BenignTruncation())


def fail_stop(message: str) -> NoReturn:
    """Stop the process at once: a replica must never run on state it cannot trust."""
    logger.critical("FAIL-STOP: %s", message)
    with contextlib.suppress(Exception):
        sys.stderr.write(f"meseta: fail-stop: {message}\n")
        sys.stderr.flush()
    os._exit(EXIT_FAIL_STOP)


@dataclass(frozen=True, slots=True)
class RaftConfig:
    """Everything a replica needs; timeouts are explicit (pysyncobj's defaults are traps)."""

    data_dir: Path
    secret: str
    # host:port this replica listens on; None makes a non-voting read replica.
    address: str | None
    # The voting replicas (this one may be listed; it is skipped).
    peers: tuple[str, ...]
    # Short enough to fail over in about half a second, long enough that a
    # replica stalled by its disk or a busy host (2-core VMs) keeps its leader.
    election_timeout_s: tuple[float, float] = (0.25, 0.50)
    heartbeat_s: float = 0.04
    # A leader that hears from no majority for this long steps down.
    leader_step_down_s: float = 1.2
    connection_timeout_s: float = 1.0
    # A (re)started replica waits this long before its first election, so it
    # hears from a running leader first instead of bumping the term and
    # deposing it (pysyncobj has no pre-vote).
    startup_election_delay_s: float = 1.0
    reconnect_s: float = 0.1
    tick_s: float = 0.05
    # Longest time applied entries may wait for the next commit (see _commit_if_due).
    max_unflushed_s: float = 0.005
    max_in_flight_batches: int = 4
    # Snapshot after this many Raft entries or seconds, whichever comes first.
    snapshot_min_entries: int = 5000
    snapshot_min_interval_s: float = 300.0
    snapshot_chunk_bytes: int = 1024 * 1024
    # Pause before publishing a built snapshot; fault-injection tests use it
    # to crash a replica in the middle of a snapshot.
    snapshot_publish_delay_s: float = 0.0
    map_size: int = DEFAULT_MAP_SIZE
    # False skips every fsync: acknowledged entries can then be lost on a power
    # failure. Only for measuring what durability costs (benchmarks).
    fsync: bool = True

    def __post_init__(self) -> None:
        low, high = self.election_timeout_s
        checks = [
            (bool(self.secret), "a shared secret is required: peer traffic is pickle"),
            (high > low > 3 * self.heartbeat_s, "election timeout must exceed 3 heartbeats"),
            (self.leader_step_down_s > self.heartbeat_s, "step-down must exceed a heartbeat"),
            (self.connection_timeout_s >= high, "connection timeout must cover an election"),
            (self.max_in_flight_batches >= 1, "at least one batch must be allowed in flight"),
            (self.snapshot_min_entries >= 2, "snapshot_min_entries must be at least 2"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"invalid raft configuration: {message}")


def _pysyncobj_conf(config: RaftConfig, journal: LmdbJournal, **callbacks: Any) -> SyncObjConf:
    low, high = config.election_timeout_s
    return SyncObjConf(
        # No `password`: _Replica.encryptor supplies our own cipher instead.
        autoTick=False,
        appendEntriesUseBatch=False,
        appendEntriesPeriod=config.heartbeat_s,
        # Far above the entry cap, so no entry ever takes pysyncobj's broken
        # chunked-transfer path.
        appendEntriesBatchSizeBytes=4 * MAX_ENTRY_BYTES,
        raftMinTimeout=low,
        raftMaxTimeout=high,
        leaderFallbackTimeout=config.leader_step_down_s,
        connectionTimeout=config.connection_timeout_s,
        connectionRetryTime=config.reconnect_s,
        commandsWaitLeader=False,
        dynamicMembershipChange=True,
        journalFile=journal,
        # Listen on the address peers are told, not pysyncobj's default of every interface.
        bindAddress=config.address,
        fullDumpFile=str(config.data_dir / "snapshot"),
        useFork=False,
        logCompactionMinEntries=config.snapshot_min_entries,
        logCompactionMinTime=config.snapshot_min_interval_s,
        logCompactionBatchSize=config.snapshot_chunk_bytes,
        sendBufferSize=2**20,
        recvBufferSize=2**20,
        **callbacks,
    )


class _FlushingTransport(TCPTransport):  # type: ignore[misc]
    """Commits staged LMDB writes before any message leaves the replica, and shows every
    message to the adapter before pysyncobj sees it (pre-votes are ours alone)."""

    def send(self, node: Any, message: Any) -> bool:
        self._syncObj.meseta_before_send(message)
        return bool(super().send(node, message))

    def setOnMessageReceivedCallback(self, callback: Callable[[Any, Any], None] | None) -> None:
        if callback is None:
            super().setOnMessageReceivedCallback(None)
            return
        intercept = self._syncObj.meseta_on_message

        def receive(node: Any, message: Any) -> None:
            if not intercept(node, message):
                callback(node, message)

        super().setOnMessageReceivedCallback(receive)


class _Replica(SyncObj):  # type: ignore[misc]
    """The SyncObj with our single replicated method. Never add another one."""

    def __init__(self, log: RaftLog, config: RaftConfig, conf: SyncObjConf) -> None:
        # Assigned before SyncObj.__init__ so they are not replicated state.
        self.meseta_log = log
        self.meseta_before_send = log.before_send
        self.meseta_on_message = log.on_peer_message
        self.meseta_cipher = PeerCipher(config.secret)
        super().__init__(
            config.address, list(config.peers), conf, transportClass=_FlushingTransport
        )

    @property
    def encryptor(self) -> PeerCipher:
        """Every peer connection authenticates and encrypts with the cluster secret."""
        return self.meseta_cipher

    @replicated  # type: ignore[untyped-decorator]
    def commit_batch(self, data: bytes) -> None:
        self.meseta_log.on_committed(data, self.raftLastApplied + 1)


@dataclass(slots=True)
class _Counters:
    batches: int = 0
    entries: int = 0
    duplicates: int = 0
    commits: int = 0


class RaftLog:
    """A ReplicatedLog replica backed by pysyncobj and LMDB."""

    def __init__(
        self, config: RaftConfig, *, fail_stop: Callable[[str], NoReturn] = fail_stop
    ) -> None:
        self.config = config
        self._fail_stop = fail_stop
        self._loop = asyncio.get_running_loop()
        # The tick thread does many short blocking calls (poll, fsync, send),
        # each of which gives up the GIL; with the default 5 ms switch interval
        # a busy event loop delays every reacquire, and heartbeats start to
        # miss election deadlines (the convoy effect).
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.disk = LogDisk(config.data_dir / "store", map_size=config.map_size, fsync=config.fsync)
        self.store = EventStore(self.disk)
        self.journal = LmdbJournal(self.disk)
        self.journal.on_conflict = self._on_journal_conflict
        self.counters = _Counters()
        self._proposals = ProposalPipeline(self._submit, max_in_flight=config.max_in_flight_batches)
        self._applied_changed = asyncio.Event()
        self._closed = False
        self._last_timestamp_ns = 0
        # Latest timestamp applied here (tick thread writes, loop reads).
        self._applied_timestamp_ns = self._stored_timestamp_ns()
        # Written by the tick thread, read by the loop (single attribute reads).
        self._applied = self.store.last_index
        self._resolved_pending: dict[bytes, int] = {}
        self._barriers_pending: list[bytes] = []
        self._publish_due = False
        # Applied entries not yet committed to LMDB: (first index, payloads).
        self._unflushed: tuple[int, tuple[bytes, ...]] = (self.store.last_index + 1, ())
        self._forget_registered = False
        # (leading, the leader's address if known, term), as the tick thread last saw them.
        self._role: tuple[bool, str | None, int] = (False, None, 0)
        self._raft_numbers: tuple[int, int, int | None] = (0, 0, None)
        self._ready = False
        self._opened_at = time.monotonic()
        self._recovered_in_s: float | None = None  # set by the tick thread, read by the loop
        self._stop = threading.Event()
        self._next_ping_at = 0.0
        self._last_loop_at = time.monotonic()  # the tick loop's last turn (`_notice_pause`)
        low_s = config.election_timeout_s[0]
        self._prevote = PreVote(lease_s=low_s - 2 * config.heartbeat_s)
        self._asked_for_term = 0
        # Pre-votes received during a tick, answered at its end (`_answer_pre_votes`).
        self._pre_votes: list[tuple[Any, dict[str, Any]]] = []
        conf = _pysyncobj_conf(config, self.journal, onStateChanged=self._on_state_changed_tick)
        self._node = _Replica(self, config, conf)
        if set(config.peers) - {config.address}:  # alone, there is nobody to wait for
            self._node._SyncObj__raftElectionDeadline = (
                time.monotonic() + config.startup_election_delay_s
            )
        # pysyncobj may have staged a first no-op journal entry on this thread;
        # LMDB write transactions belong to the thread that began them.
        self.disk.commit()
        self.snapshots = SnapshotSerializer(
            config.data_dir / "snapshot",
            self.disk,
            self.store,
            self.journal,
            chunk_bytes=config.snapshot_chunk_bytes,
            publish_delay_s=config.snapshot_publish_delay_s,
            make_node=TCPNode,
            fail_stop=self._fail_stop,
            after_load=self._after_snapshot_load,
        )
        self._node._SyncObj__serializer = self.snapshots  # our serializer replaces pysyncobj's
        self._node.addOnTickCallback(self._commit_if_due)
        self._thread = threading.Thread(target=self._tick_loop, name="meseta-raft", daemon=True)
        self._thread.start()

    def _stored_timestamp_ns(self) -> int:
        last = self.store.read(self.store.last_index, self.store.last_index + 1)
        return decode_entry(last[0][1]).header.timestamp_ns if last else 0

    # -- tick thread -----------------------------------------------------------

    def _tick_loop(self) -> None:
        self._last_loop_at = time.monotonic()
        try:
            while not self._stop.is_set():
                wait_s = min(self.config.tick_s, self._until_election_s())
                if self.disk.dirty:
                    flush_at = self.disk.dirty_since + self.config.max_unflushed_s
                    wait_s = min(wait_s, max(0.0, flush_at - time.monotonic()))
                self._ask_before_campaigning()
                self._node.doTick(wait_s)
                self._answer_pre_votes()
                self._commit_if_due()
                self._refresh_status()
                self._keep_peers_connected()
            # Write transactions belong to this thread: leave none behind.
            self.journal.settle()
            self.disk.commit()
        except Exception as error:
            logger.exception("the raft tick failed")
            self._fail_stop(f"raft tick failed: {error!r}")

    def _ask_before_campaigning(self) -> None:
        """Run before pysyncobj's tick, which campaigns once the election deadline has passed.

        First read what is waiting: the tick checks the deadline before it polls the
        sockets, so a replica that was not scheduled for a while (a busy or starved host)
        would answer its leader's waiting heartbeat with an election. If the deadline has
        still passed, hold the election back and ask for pre-votes (log/prevote.py); the
        tick campaigns once a majority granted them (`on_peer_message` clears the deadline).
        """
        node = self._node
        if node.selfNode is None:
            return
        self._notice_pause()
        if node._SyncObj__raftState == _LEADING:
            self._prevote.take_win()  # elected: grants still arriving mean nothing now
            return
        if node._SyncObj__raftElectionDeadline >= time.monotonic():
            return
        node._poller.poll(0)
        if node._SyncObj__raftElectionDeadline >= time.monotonic():
            return  # a leader's message was waiting
        others = node.otherNodes
        if self._prevote.take_win() or not others or node._SyncObj__transferInProgress:
            return  # campaign now: granted, alone, or asked to by the leader (transfer)
        node._SyncObj__raftElectionDeadline = (
            time.monotonic() + node._SyncObj__generateRaftTimeout()
        )
        message = self._prevote.start(node.selfNode.id, node.raftCurrentTerm + 1, self._last_log())
        if message["term"] != self._asked_for_term:  # once per term: a partition repeats it
            self._asked_for_term = message["term"]
            logger.info(
                "no leader heard: asking for pre-votes to campaign at term %d", message["term"]
            )
        transport = node._SyncObj__transport
        for other in others:
            transport.send(other, message)

    def _notice_pause(self) -> None:
        """The loop runs at least every tick (50 ms); a gap longer than an election timeout
        means this process was not running (SIGSTOP, a starved host). Its timer ran out while
        it could hear nobody, and its peers may miss a heartbeat or two just then (a busy
        leader): pre-votes alone would then let it, or a peer it grants, depose a healthy
        leader. So it counts from now, as after a snapshot install: a fresh election timeout,
        and no pre-vote granted for the longest one (`PreVote.resumed`)."""
        now = time.monotonic()
        paused_s = now - self._last_loop_at
        self._last_loop_at = now
        longest = self.config.election_timeout_s[1]
        if paused_s <= longest:
            return
        node = self._node
        node._SyncObj__raftElectionDeadline = now + node._SyncObj__generateRaftTimeout()
        self._prevote.resumed(now, longest)
        logger.info("this replica did not run for %.2f s: waiting for a leader again", paused_s)

    def _last_log(self) -> tuple[int, int]:
        node = self._node
        return node._SyncObj__getCurrentLogTerm(), node._SyncObj__getCurrentLogIndex()

    def on_peer_message(self, sender: Any, message: Any) -> bool:
        """Every message from a peer, before pysyncobj (tick thread); True if it was ours."""
        if not isinstance(message, dict):
            return False
        kind = message.get("type")
        node = self._node
        if kind == "append_entries":
            if message.get("term", 0) >= node.raftCurrentTerm:
                self._prevote.heard_leader(time.monotonic())
            return False
        if kind == PRE_VOTE:
            if node.selfNode is not None:
                self._pre_votes.append((sender, message))
            return True
        if kind == PRE_VOTE_REPLY:
            voters = len(node.otherNodes) + 1
            if self._prevote.count(sender.id, message, voters):
                node._SyncObj__raftElectionDeadline = 0.0  # the next tick campaigns
            return True
        return False

    def _answer_pre_votes(self) -> None:
        """Answer the pre-votes that came during the tick, knowing all that has arrived.

        A voter that was itself held up (an fsync, a starved process) finds its leader's
        heartbeats and the pre-vote waiting together, in an order the poller picks:
        answering at once could grant on a stale idea of when it last heard the leader.
        So the answers wait until what else is waiting has been read.
        """
        if not self._pre_votes:
            return
        node = self._node
        node._poller.poll(0)
        asked, self._pre_votes = self._pre_votes, []
        for sender, message in asked:
            reply = self._prevote.answer(
                message,
                current_term=node.raftCurrentTerm,
                last_log=self._last_log(),
                leading=node._SyncObj__raftState == _LEADING,
                now=time.monotonic(),
            )
            node._SyncObj__transport.send(sender, reply)

    def _keep_peers_connected(self) -> None:
        """Ping peers that would otherwise hear nothing from this replica.

        pysyncobj drops a connection that stays silent for the connection
        timeout, and only the leader talks to followers: the links between
        followers kept timing out and reconnecting, so when the leader died a
        candidate's vote request often found no connection and the election
        took another timeout or two.
        """
        now = time.monotonic()
        if self._role[0] or now < self._next_ping_at:
            return
        self._next_ping_at = now + self.config.connection_timeout_s / 4
        transport = self._node._SyncObj__transport
        for node in [*self._node.otherNodes, *self._node.readonlyNodes]:
            transport.send(node, _KEEPALIVE)

    def _after_snapshot_load(self) -> None:
        """After a snapshot was loaded (tick thread): publish what it brought.

        The election timer restarts too: a long install on the tick thread is
        no sign of a dead leader (the snapshot just came from it), and the
        replica would otherwise campaign right after it and depose the leader.
        """
        self._publish_due = True
        self._applied_timestamp_ns = max(self._applied_timestamp_ns, self._stored_timestamp_ns())
        longest = self.config.election_timeout_s[1]
        self._node._SyncObj__raftElectionDeadline = time.monotonic() + longest

    def _until_election_s(self) -> float:
        """Wake up when a follower's election deadline passes, not a tick later.

        Followers that heard the same heartbeat would otherwise notice the
        timeout on the same tick boundary and split the vote.
        """
        if self._role[0]:
            return self.config.tick_s
        deadline = self._node._SyncObj__raftElectionDeadline
        return max(0.0, float(deadline) - time.monotonic()) + 0.0005

    def before_send(self, message: Any) -> None:
        """Everything a message may reflect must be on disk before it leaves.

        Except a leader's append: the leader may write its own copy while the
        followers write theirs (Raft thesis 10.2.1), because it counts itself
        toward a majority only when it computes the commit index, at the start
        of a tick, and its staged journal writes are committed at the end of
        every tick (onTick callback) and again between ticks, always before the
        poll in which followers' acknowledgements are read.
        """
        self.journal.settle()
        self._publish()
        if not self.disk.critical:
            return
        if self._role[0] and isinstance(message, dict) and message.get("type") == "append_entries":
            return
        self.disk.commit()

    def _on_journal_conflict(self, raft_index: int) -> None:
        if raft_index <= self.store.last_raft_index:
            self._fail_stop(
                f"the leader replaced raft entry {raft_index}, which this replica had "
                "already applied: the replicas have diverged"
            )

    def _commit_if_due(self) -> None:
        """Commit staged writes that no message has flushed for a while.

        Writes that must be durable are committed before the message that
        depends on them leaves (see _FlushingTransport); applied entries ride
        along with that commit, or are committed here after at most
        `max_unflushed_s`, so a follower usually pays one fsync per round.
        """
        self.journal.settle()
        self._publish()
        if self.disk.critical or (
            self.disk.dirty
            and time.monotonic() - self.disk.dirty_since >= self.config.max_unflushed_s
        ):
            self.disk.commit()

    def _refresh_status(self) -> None:
        node = self._node
        leader = node._getLeader()
        self._role = (
            bool(node._isLeader()),
            leader.address if leader else None,
            node.raftCurrentTerm,
        )
        self._raft_numbers = (
            node.raftCommitIndex,
            node.raftLastApplied,
            node._SyncObj__leaderCommitIndex,
        )
        self._ready = bool(node.isReady())
        if self._ready and self._recovered_in_s is None:
            self._recovered_in_s = time.monotonic() - self._opened_at

    def on_committed(self, data: bytes, raft_index: int) -> None:
        """Apply one committed batch (tick thread). Any error is fatal."""
        try:
            if raft_index <= self.store.last_raft_index:
                return  # replayed from the journal after a restart; already stored
            sequenced = sequence_batch(
                decode_batch(data), self.store.last_index, self.store.index_of
            )
            self.store.stage(sequenced, raft_index)
            if sequenced.appended:
                first, payloads = self._unflushed
                if not payloads:
                    first = sequenced.appended[0][0]
                if first + len(payloads) != sequenced.appended[0][0]:
                    raise LogCorrupted(f"unflushed entries from {first} are not contiguous")
                added = tuple(payload for _, _, payload in sequenced.appended)
                self._unflushed = (first, payloads + added)
                if not self._forget_registered:
                    self._forget_registered = True
                    self.disk.after_commit(self._forget_unflushed)
            self._resolved_pending.update(sequenced.resolved)
            self._barriers_pending.extend(sequenced.barriers)
            self._publish_due = True
            if sequenced.max_timestamp_ns > self._applied_timestamp_ns:
                self._applied_timestamp_ns = sequenced.max_timestamp_ns
            self.counters.batches += 1
            self.counters.entries += len(sequenced.appended)
            self.counters.duplicates += sequenced.duplicates
        except LogCorrupted as error:
            self._fail_stop(f"cannot apply raft entry {raft_index}: {error}")
        except Exception as error:
            logger.exception("applying raft entry %d failed", raft_index)
            self._fail_stop(f"applying raft entry {raft_index} failed: {error!r}")

    def _forget_unflushed(self) -> None:
        """The staged entries are in LMDB now; readers find them there."""
        self._forget_registered = False
        self._unflushed = (self.store.last_index + 1, ())

    def _publish(self) -> None:
        """Hand applied results to the loop (tick thread, once per tick at most).

        Entries are committed (durable on a majority) when they are applied,
        so callers are answered without waiting for the local store's fsync;
        reads find not-yet-flushed entries in `_unflushed`.
        """
        if not self._publish_due:
            return
        self._publish_due = False
        resolved, self._resolved_pending = self._resolved_pending, {}
        barriers, self._barriers_pending = self._barriers_pending, []
        applied = self.store.last_index
        self._applied = applied
        self.counters.commits += 1
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            self._loop.call_soon_threadsafe(self._deliver, resolved, barriers, applied)

    def _on_state_changed_tick(self, old_state: int, new_state: int) -> None:
        self._refresh_status()
        logger.warning(
            "raft role %s -> %s (term %d, leader %s)",
            _ROLE_NAMES.get(old_state, old_state),
            _ROLE_NAMES.get(new_state, new_state),
            self._role[2],
            self._role[1],
        )
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._on_role_changed)

    # -- loop side ---------------------------------------------------------------

    def _deliver(self, resolved: dict[bytes, int], barriers: list[bytes], applied: int) -> None:
        self._proposals.deliver(resolved, barriers, applied)
        event, self._applied_changed = self._applied_changed, asyncio.Event()
        event.set()

    def _on_role_changed(self) -> None:
        # Once close() has begun, it answers every caller with LogClosed (as propose
        # does): a deposition its last tick saw must not answer them first.
        if not self._closed and not self.is_leader():
            self._proposals.fail_all(NotLeaderError(self.leader_address()))

    def _submit(self, data: bytes, done: Callable[[BatchOutcome], None]) -> None:
        """Hand a batch to Raft; its outcome comes back on the loop."""

        def callback(result: Any, error: int) -> None:  # tick thread
            if error == FAIL_REASON.SUCCESS:
                outcome = BatchOutcome.COMMITTED
            elif error == FAIL_REASON.QUEUE_FULL:
                outcome = BatchOutcome.BACK_OFF
            else:
                outcome = BatchOutcome.RETRY
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                self._loop.call_soon_threadsafe(self._batch_done, done, outcome)

        self._node.commit_batch(data, callback=callback)

    def _batch_done(self, done: Callable[[BatchOutcome], None], outcome: BatchOutcome) -> None:
        if outcome is not BatchOutcome.COMMITTED and not self.is_leader():
            self._on_role_changed()
            return
        done(outcome)

    async def propose(self, entry: Entry, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> int:
        self._check_can_propose()
        header = entry.header
        if not header.proposal_id:
            header.proposal_id = uuid.uuid4().bytes
        if not header.schema_version:
            header.schema_version = SCHEMA_VERSION
        self._last_timestamp_ns = max(
            time.time_ns(), self._last_timestamp_ns + 1, self._applied_timestamp_ns + 1
        )
        header.timestamp_ns = self._last_timestamp_ns
        header.proposer_term = self.term()
        future = self._proposals.propose(header.proposal_id, encode_entry(entry), timeout_s)
        return await asyncio.shield(future)

    async def barrier(self, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> int:
        self._check_can_propose()
        return await self._proposals.barrier(uuid.uuid4().bytes, timeout_s)

    def _check_can_propose(self) -> None:
        if self._closed:
            raise LogClosed("the log is closed")
        if not self.is_leader():
            raise NotLeaderError(self.leader_address())

    # -- reads ---------------------------------------------------------------

    def applied_index(self) -> int:
        return self._applied

    def committed_index(self) -> int:
        return self._applied

    def is_leader(self) -> bool:
        return self._role[0]

    def leader_address(self) -> str | None:
        return self._role[1]

    def term(self) -> int:
        return self._role[2]

    def status(self) -> LogStatus:
        is_leader, leader, term = self._role
        raft_commit, raft_applied, leader_commit = self._raft_numbers
        return LogStatus(
            address=self.config.address,
            is_leader=is_leader,
            leader=leader,
            term=term,
            voting=self.config.address is not None,
            ready=self._ready,
            applied_index=self._applied,
            raft_commit_index=raft_commit,
            raft_applied_index=raft_applied,
            leader_commit_index=leader_commit,
            recovered_in_s=self._recovered_in_s,
            cluster=tuple(
                sorted(
                    {*self.config.peers, *([self.config.address] if self.config.address else [])}
                )
            ),
        )

    def stored_bytes(self) -> int:
        return self.disk.used_bytes()

    def raft_debug(self) -> dict[str, str]:
        """pysyncobj's own view (match/next indexes per peer...), for debugging."""
        return {key: str(value) for key, value in self._node.getStatus().items()}

    def read(self, start: int, stop: int) -> list[LogRecord]:
        return [LogRecord(i, decode_entry(p)) for i, p in self.read_raw(start, stop)]

    def read_raw(self, start: int, stop: int) -> list[tuple[int, bytes]]:
        """Like `read`, but (index, encoded entry) pairs."""
        # Order matters: an entry joins the unflushed tail before `_applied`
        # counts it, and leaves the tail only once it is committed to LMDB, so
        # reading `_applied`, then the tail, then LMDB misses nothing.
        stop = min(stop, self._applied + 1)
        first, tail = self._unflushed
        rows: list[tuple[int, bytes]] = []
        index = max(start, 1)
        while index < stop:  # the store reads in bounded chunks
            chunk = self.store.read(index, stop)
            if not chunk:
                break
            rows.extend(chunk)
            index = chunk[-1][0] + 1
        while index < stop and first <= index < first + len(tail):
            rows.append((index, tail[index - first]))
            index += 1
        return rows

    async def follow(self, start: int) -> AsyncIterator[LogRecord]:
        index = max(start, 1)
        while True:
            if self._closed:
                raise LogClosed("the log is closed")
            records = self.read(index, index + 1000) if index <= self._applied else []
            for record in records:
                yield record
                index = record.index + 1
            if not records:
                await self._applied_changed.wait()

    async def wait_applied(self, index: int, *, timeout_s: float) -> bool:
        deadline = self._loop.time() + timeout_s
        while self._applied < index:
            remaining = deadline - self._loop.time()
            if remaining <= 0 or self._closed:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._applied_changed.wait(), remaining)
        return True

    # -- membership --------------------------------------------------------------

    async def add_replica(self, address: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Add a voting replica (start it first with the current members as peers)."""
        await self._change_membership(self._node.addNodeToCluster, address, timeout_s)

    async def remove_replica(self, address: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        await self._change_membership(self._node.removeNodeFromCluster, address, timeout_s)

    async def _change_membership(
        self, change: Callable[..., None], address: str, timeout_s: float
    ) -> None:
        self._check_can_propose()
        future: asyncio.Future[int] = self._loop.create_future()

        def done(result: Any, error: int) -> None:  # tick thread
            def settle() -> None:
                if not future.done():
                    future.set_result(error)

            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(settle)

        change(address, callback=done)
        try:
            error = await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise ProposalTimeout(f"membership change for {address} not committed") from None
        if error in (
            FAIL_REASON.NOT_LEADER,
            FAIL_REASON.MISSING_LEADER,
            FAIL_REASON.LEADER_CHANGED,
        ):
            raise NotLeaderError(self.leader_address())
        if error != FAIL_REASON.SUCCESS:
            raise RuntimeError(f"membership change for {address} refused (reason {error})")

    def force_snapshot(self) -> None:
        """Ask for a snapshot at the next tick (tests and operators)."""
        self._node.forceLogCompaction()

    # -- lifecycle ---------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        await asyncio.to_thread(self._thread.join)
        self._node._doDestroy()
        if self.snapshots._job is not None:
            await asyncio.to_thread(self.snapshots._job.join)
        self.disk.close()
        self._proposals.fail_all(LogClosed("the log is closed"))
        self._applied_changed.set()
