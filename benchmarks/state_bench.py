"""Read-side benchmark: /state, GET_STATE, pollers, failover, operator stream, re-registration.

    python benchmarks/state_bench.py [--quick | --tiny] [--workdir DIR] [--keep]

Ports Mesos's MasterStateQuery_BENCHMARK and MasterFailover_BENCHMARK (performance-anchors.md
section 2) to real `meseta master` processes (3 voting replicas on loopback), filled through
the real APIs by benchmarks/support/state_cluster.py: frameworks subscribe through the
scheduler API, agents re-register through the agent link with their tasks, as Mesos's
synthetic agents do. Everything below runs in one invocation:

Cluster P (MESOS-9122's poller setup: 100 agents x 10 frameworks x 10 tasks, plus as many
completed tasks):
  1. operator stream fan-out: S subscribers on the leader's operator SUBSCRIBE (JSON) while
     agents send status updates at a fixed rate; lag = arrival of TASK_UPDATED at a
     subscriber - the status timestamp the agent stamped when it sent the update. The
     writer agents' registration (a TASK_ADDED per task to every subscriber) is taken in
     first, and timed apart (`stream_registration_taken_in_s`);
  2. one /state read on each replica (warming the caches), writes alone (status updates at
     a fixed rate, sent the way agents send them: one call in flight per agent, whatever is
     due meanwhile in the next; latency from the update's timestamp to the 202), then the
     same writes while 20 pollers (20 curl loops, or one Python process without curl) read
     /state back to back, first on the two standbys (`pollers_*`), then on the leader
     (`pollers_leader_*`): mean latency, the pollers' and the replicas' CPU (loaded phase
     minus the writes-alone phase) and write p99 with pollers / without.
Cluster M (10k agents / 100k running tasks, growing to 20k / 200k running / 200k completed):
  3. build: every agent re-registers with its tasks (cold, timed);
  4. GET /state, v1 GET_STATE in JSON and in protobuf: p50 over sequential requests, next to
     the in-run baseline: the whole GetState rebuilt as JSON from protobufs for every
     request (mesos_json.to_json), in this process, without HTTP;
  5. failover: the last acknowledged write's index (X-Meseta-Index of its 202), SIGKILL the
     leader, time until a survivor that names itself leader serves /state at an index at
     or after it;
  6. re-registration storm: every agent re-registers with the new leader (Mesos's
     AgentReregistrationDelay), agents/s;
  7. growth to the big shape: more agents re-register with running and finished tasks, the
     frameworks owning the finished ones are torn down (their tasks become completed tasks
     of completed frameworks), then 4. again.

Published Mesos figures appear next to ours as ratios (ours / theirs; below 1 is faster).
Figures are wall-clock on a shared 2-core VM: read them with the CPU seconds and the load
average printed beside them. A table goes to stdout, then the last line is one JSON object
with `state_p50_s`, `getstate_p50_s`, `pollers_mean_s`, `failover_state_s`,
`stream_p99_lag_ms`, `reregister_agents_per_s` (and more). Progress goes to stderr. The exit
status is 1 when a stage could not complete (agents refused, a replica died, a subscriber
cut off or missing events), otherwise 0.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import gc
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from support.procstat import cpu_seconds
from support.state_cluster import (
    HOST,
    JSON,
    PROTOBUF,
    AgentFleet,
    MasterCluster,
    Replica,
    Schedulers,
    Shape,
    StormResult,
    framework_id,
    master_flags,
    new_session,
)
from support.stats import percentile

from meseta.agent.master_client import UPDATES_PER_CALL
from meseta.api import mesos_json
from meseta.master import fold
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.master import master_pb2

INDEX_HEADER = "X-Meseta-Index"
LEADER_HEADER = "X-Meseta-Leader"
WRITER_BASE = 900_000  # agent numbers of the writer agents (apart from the shaped fleets)

# Published Mesos figures (performance-anchors.md section 2) the results are compared with.
MESOS = {
    # MESOS-9092 box plot, 20k agents / 200k running / 200k completed, 1.7.0 + RapidJSON.
    "state_big_s": 3.1,
    # MESOS-10026, v1 GetState JSON after serializing straight from memory (1.10).
    "getstate_big_s": 9.62,
    # MESOS-9122, 20 clients polling /state, 100 agents / 10k + 10k tasks, 1.7.0 mean.
    "pollers_mean_s": 0.95,
    # AgentReregistrationDelay, 10k agents / 100k tasks, 1.5.0 (whole failover ~4.3 s).
    "failover_mid_s": 4.3,
    # Same run as throughput: ~2,100 agents re-registered per second.
    "reregister_agents_per_s": 2100.0,
}

# Targets of issue 5: (comparison, bound).
TARGETS: dict[str, tuple[str, float]] = {
    "state_p50_s": ("<=", 0.3),
    "getstate_p50_s": ("<=", 0.3),
    "state_big_p50_s": ("<=", 1.5),
    "getstate_big_p50_s": ("<=", 1.5),
    "pollers_mean_s": ("<=", 0.1),
    "pollers_write_p99_ratio": ("<=", 1.1),
    "failover_state_s": ("<=", 1.5),
    "stream_p99_lag_ms": ("<=", 100.0),
    "reregister_agents_per_s": (">=", 3000.0),
}

REQUIRED_KEYS = (
    "state_p50_s", "getstate_p50_s", "pollers_mean_s", "failover_state_s",
    "stream_p99_lag_ms", "reregister_agents_per_s",
)  # fmt: skip


@dataclass(frozen=True)
class Profile:
    name: str
    mid: Shape  # Mesos row (10000, 5, 2, 0, 0): 10k agents / 100k running tasks
    grow: Shape  # agents added to reach the big shape (20k / 200k running / 200k completed)
    poll: Shape  # MESOS-9122: (100, 10, 10, 10, 10)
    requests: int  # sequential samples per endpoint and scale
    pollers: int
    poll_s: float  # length of each writes-alone / writes-with-pollers phase
    write_rate: float  # status updates per second during the poller phases
    subscribers: int
    stream_rate: float  # status updates per second offered during the fan-out
    stream_s: float
    writers: int = 20  # agents sending those updates (one stream each)
    keep_open: int = 10_000  # agent streams kept open (a socket each; the fd limit is 20k)

    @property
    def big(self) -> Shape:
        """The shape after growth (as one Mesos row; per-agent mixes differ)."""
        mid, grow = self.mid, self.grow
        agents = mid.agents + grow.agents
        return Shape(
            agents,
            mid.frameworks_per_agent,
            mid.tasks_per_framework,
            grow.completed_frameworks_per_agent,
            grow.completed_tasks // max(1, agents * grow.completed_frameworks_per_agent),
        )


def grow_shape(agents: int) -> Shape:
    """`agents` more agents with 10 running tasks each and 20 finished ones, so that the
    cluster doubles to 2x agents / 2x running tasks / as many completed tasks."""
    return Shape(agents, 5, 2, 5, 4)


FULL = Profile(
    "full", Shape(10_000, 5, 2), grow_shape(10_000), Shape(100, 10, 10, 10, 10),
    requests=7, pollers=20, poll_s=10.0, write_rate=100.0,
    subscribers=100, stream_rate=10_000.0, stream_s=5.0,
)  # fmt: skip
QUICK = Profile(
    "quick", Shape(300, 5, 2), grow_shape(300), Shape(40, 10, 10, 10, 10),
    requests=3, pollers=20, poll_s=2.0, write_rate=100.0,
    subscribers=100, stream_rate=300.0, stream_s=2.0,
)  # fmt: skip
# For the smoke test: every stage at toy size.
TINY = Profile(
    "tiny", Shape(30, 5, 2), grow_shape(30), Shape(10, 2, 2, 2, 2),
    requests=2, pollers=3, poll_s=0.5, write_rate=40.0,
    subscribers=5, stream_rate=100.0, stream_s=0.5, writers=4,
)  # fmt: skip


def log(message: str) -> None:
    print(f"[state_bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def rounded(value: float, digits: int = 3) -> float:
    return round(value, digits)


class BenchError(Exception):
    """A stage could not run as specified; the figures would mean nothing."""


# -- reads ---------------------------------------------------------------------------


@dataclass
class Read:
    seconds: float
    size: int
    index: int
    leader: str


async def get_state(session: aiohttp.ClientSession, url: str, encoding: str = "identity") -> Read:
    """GET /state, as Mesos's benchmark reads it (no compression), or with `encoding`
    "gzip" as Go's and Python requests' clients do (timed with the client's decompression;
    the size is the compressed one)."""
    started = time.perf_counter()
    headers = {"Accept-Encoding": encoding}
    async with session.get(f"{url}/state", headers=headers) as response:
        body = await response.read()
        if response.status != 200:
            raise BenchError(f"/state: HTTP {response.status} {body[:200]!r}")
        return read_of(response, body, started)


def read_of(response: aiohttp.ClientResponse, body: bytes, started: float) -> Read:
    return Read(
        time.perf_counter() - started,
        int(response.headers.get("Content-Length", len(body))),
        int(response.headers.get(INDEX_HEADER, "0")),
        response.headers.get(LEADER_HEADER, ""),
    )


async def v1_get_state(session: aiohttp.ClientSession, url: str, media_type: str) -> Read:
    started = time.perf_counter()
    call = master_pb2.Call(type=master_pb2.Call.GET_STATE)
    data = mesos_json.to_json(call) if media_type == JSON else call.SerializeToString()
    headers = {"Content-Type": media_type, "Accept": media_type, "Accept-Encoding": "identity"}
    async with session.post(f"{url}/api/v1", data=data, headers=headers) as response:
        body = await response.read()
        if response.status != 200:
            raise BenchError(f"GET_STATE: HTTP {response.status} {body[:200]!r}")
        return read_of(response, body, started)


@dataclass
class ReadFigures:
    state: list[Read]
    getstate_json: list[Read]
    getstate_protobuf: list[Read]
    # /state gzipped: the first read of an index compresses it, later ones share that.
    state_gzip_first: Read
    state_gzip: list[Read]
    naive_s: list[float]
    leader_cpu_s_per_read: float
    tasks: int  # active tasks in GET_STATE (any state)
    completed_tasks: int

    def summary(self, prefix: str) -> dict[str, Any]:
        def p50(reads: list[Read]) -> float:
            return rounded(statistics.median(r.seconds for r in reads))

        naive = statistics.median(self.naive_s)
        out = {
            f"{prefix}_p50_s": p50(self.state),
            f"getstate{prefix[5:]}_p50_s": p50(self.getstate_json),
            f"getstate_protobuf{prefix[5:]}_p50_s": p50(self.getstate_protobuf),
            f"{prefix}_gzip_first_s": rounded(self.state_gzip_first.seconds),
            f"{prefix}_gzip_p50_s": p50(self.state_gzip),
            f"{prefix}_gzip_mb": rounded(self.state_gzip[-1].size / 1e6, 1),
            f"naive{prefix[5:]}_p50_s": rounded(naive),
            f"{prefix}_mb": rounded(self.state[-1].size / 1e6, 1),
            f"getstate{prefix[5:]}_mb": rounded(self.getstate_json[-1].size / 1e6, 1),
            f"{prefix}_leader_cpu_s_per_read": rounded(self.leader_cpu_s_per_read),
            f"{prefix}_tasks": self.tasks,
            f"{prefix}_completed_tasks": self.completed_tasks,
        }
        out[f"{prefix}_vs_naive"] = rounded(out[f"{prefix}_p50_s"] / naive, 2)
        out[f"getstate{prefix[5:]}_vs_naive"] = rounded(
            out[f"getstate{prefix[5:]}_p50_s"] / naive, 2
        )
        return out


async def measure_reads(
    session: aiohttp.ClientSession, leader: Replica, requests: int
) -> ReadFigures:
    """Sequential reads on the leader (one warm-up each first), and the naive baseline."""
    await get_state(session, leader.url)
    await v1_get_state(session, leader.url, JSON)
    cpu_before = cpu_seconds([leader.pid])
    state = [await get_state(session, leader.url) for _ in range(requests)]
    cpu_per_read = (cpu_seconds([leader.pid]) - cpu_before) / requests
    as_json = [await v1_get_state(session, leader.url, JSON) for _ in range(requests)]
    as_protobuf = [await v1_get_state(session, leader.url, PROTOBUF) for _ in range(requests)]
    gzip_first = await get_state(session, leader.url, "gzip")
    gzipped = [await get_state(session, leader.url, "gzip") for _ in range(requests)]
    naive, tasks, completed = await naive_baseline(session, leader.url, requests)
    return ReadFigures(
        state, as_json, as_protobuf, gzip_first, gzipped, naive, cpu_per_read, tasks, completed
    )


async def naive_baseline(
    session: aiohttp.ClientSession, url: str, requests: int
) -> tuple[list[float], int, int]:
    """The whole GetState rebuilt as Mesos JSON from protobufs, as a server without cached
    per-entity fragments would do for every request (in this process, no HTTP); and the
    task counts the state holds."""
    call = master_pb2.Call(type=master_pb2.Call.GET_STATE)
    headers = {"Content-Type": PROTOBUF, "Accept": PROTOBUF, "Accept-Encoding": "identity"}
    async with session.post(f"{url}/api/v1", data=call.SerializeToString(),
                            headers=headers) as response:  # fmt: skip
        raw = await response.read()
    state = master_pb2.Response()
    state.ParseFromString(raw)
    timings = []
    for _ in range(min(requests, 3)):  # seconds each at the big shape; the median of 3
        started = time.perf_counter()
        mesos_json.to_json(state)
        timings.append(time.perf_counter() - started)
    tasks = state.get_state.get_tasks
    return timings, len(tasks.tasks), len(tasks.completed_tasks)


# -- writes --------------------------------------------------------------------------


LIFECYCLE = (mesos_pb2.TASK_STARTING, mesos_pb2.TASK_RUNNING, mesos_pb2.TASK_FINISHED)


class TaskPool:
    """The writer agents' tasks (reported TASK_STAGING) and how far each has come."""

    def __init__(self, fleet: AgentFleet) -> None:
        self.fleet = fleet
        shape = fleet.shape
        self.ready: deque[tuple[int, int, int]] = deque(
            (number, task, 0)
            for number in fleet.numbers
            for task in range(shape.tasks_per_framework)
        )

    @staticmethod
    def size_for(updates: float, writers: int) -> int:
        """Tasks per writer agent for `updates` updates (3 per task), with room to spare."""
        return int(updates / len(LIFECYCLE) / writers * 1.5) + 10


class Writer:
    """Status updates at a fixed rate (open loop) that move writer tasks through their lives:
    STARTING, RUNNING, FINISHED, each task's next update only after its previous one was
    acknowledged. So every update changes its task's state, which is what makes the master
    publish one TASK_UPDATED (Mesos publishes none for a repeated state).

    Each writer agent behaves like meseta's agent (agent/daemon.py): one call in flight, and
    whatever became due meanwhile goes in the next call, as one UPDATES. A latency runs from
    the executor sending the update (its `timestamp`) to the master's 202."""

    def __init__(self, pool: TaskPool, url: str) -> None:
        self.pool = pool
        self.url = url
        self.latencies: list[float] = []
        self.acked_at: dict[str, float] = {}  # base64 status uuid -> wall time of the 202
        self.acked_index = 0
        self.errors: list[str] = []
        self.starved = 0
        self.calls = 0
        # agent number -> updates due: (task, step, perf_counter when sent, uuid)
        self.outboxes: dict[int, list[tuple[int, int, float, bytes]]] = {}
        self.senders: dict[int, asyncio.Task[None]] = {}

    def enqueue(self, number: int, task: int, step: int) -> None:
        self.outboxes.setdefault(number, []).append(
            (task, step, time.perf_counter(), os.urandom(16))
        )
        if number not in self.senders:
            sender = asyncio.get_running_loop().create_task(self.send(number))
            self.senders[number] = sender
            sender.add_done_callback(lambda _: self.senders.pop(number, None))

    async def send(self, number: int) -> None:
        outbox = self.outboxes[number]
        while outbox:
            due = outbox[:UPDATES_PER_CALL]
            del outbox[:UPDATES_PER_CALL]
            await self.post(number, due)

    async def post(self, number: int, due: list[tuple[int, int, float, bytes]]) -> None:
        fleet = self.pool.fleet
        offset = time.time() - time.perf_counter()
        updates = [(task, LIFECYCLE[step], at + offset, uuid) for task, step, at, uuid in due]
        (body,) = fleet.update_calls(number, fleet.shape.first_framework, updates)
        self.calls += 1
        try:
            async with fleet.session.post(
                self.url + "/api/v1/agent",
                data=body,
                headers={"Content-Type": PROTOBUF},
                allow_redirects=False,
            ) as response:
                text = await response.text()
                status = response.status
                index = int(response.headers.get(INDEX_HEADER, "0"))
                location = response.headers.get("Location", "")
        except (aiohttp.ClientError, TimeoutError) as error:
            status, text, index, location = 0, repr(error), 0, ""
        if status != 202:
            # Leadership moved (a busy VM misses heartbeats): follow it, and subscribe the
            # agent again where its stream was closed; the tasks' updates are sent again.
            self.errors.append(f"HTTP {status} {text[:80]}")
            if status == 307 and location:
                self.url = "http:" + location.split("/master", 1)[0]
            elif status == 403:
                await fleet.resubscribe(self.url, number)
            self.pool.ready.extend((number, task, step) for task, step, _, _ in due)
            return
        now = time.perf_counter()
        wall = time.time()
        self.acked_index = max(self.acked_index, index)
        for task, step, at, uuid in due:
            self.latencies.append(now - at)
            self.acked_at[base64.b64encode(uuid).decode()] = wall
            if step + 1 < len(LIFECYCLE):
                self.pool.ready.appendleft((number, task, step + 1))

    async def run(self, rate: float, seconds: float) -> float:
        """Send at `rate`/s for `seconds`; wait for the answers; the achieved send rate."""
        started = time.perf_counter()
        interval = 1.0 / rate
        total = int(rate * seconds)
        sent = 0
        for n in range(total):
            delay = started + n * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if not self.pool.ready:
                self.starved += 1
                continue
            self.enqueue(*self.pool.ready.popleft())
            sent += 1
        sent_for = time.perf_counter() - started
        if self.senders:
            await asyncio.wait(list(self.senders.values()), timeout=30)
        if self.starved:
            self.errors.append(f"{self.starved} updates not sent (no task ready)")
        return sent / sent_for if sent_for > 0 else 0.0


# -- pollers -------------------------------------------------------------------------


@dataclass
class Polled:
    latencies: list[float]
    errors: list[str]
    size: int
    cpu_s: float  # the pollers' processes
    client: str  # curl or aiohttp


CURL = shutil.which("curl")
CURL_POLLS = 10  # /state reads per curl run (one kept-alive connection)


async def pollers(urls: list[str], clients: int, seconds: float) -> Polled:
    """`clients` loops reading /state back to back for `seconds`, spread over `urls`; every
    latency and every failed read. Each loop is a curl when there is one (pollers are other
    programs, and a C client takes in 5 MB for about the kernel's copy), else they all
    share one Python process (support/pollers.py), which a few hundred MB/s saturate."""
    if CURL is None:
        return await python_pollers(urls, clients, seconds)
    polled = Polled([], [], 0, 0.0, "curl")
    stop_at = time.perf_counter() + seconds
    before = resource.getrusage(resource.RUSAGE_CHILDREN)

    async def client(url: str) -> None:
        args = [a for _ in range(CURL_POLLS) for a in (f"{url}/state", "-o", "/dev/null")]
        write_out = "%{http_code} %{time_total} %{size_download}\\n"
        while time.perf_counter() < stop_at:
            assert CURL is not None
            process = await asyncio.create_subprocess_exec(
                CURL, "-s", "--max-time", "60", "-w", write_out, *args,
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, _ = await process.communicate()
            for line in out.decode().splitlines():
                code, seconds_taken, size = line.split()
                if code == "200":
                    polled.latencies.append(float(seconds_taken))
                    polled.size = int(size)
                else:
                    polled.errors.append(f"HTTP {code}")
            if process.returncode:
                polled.errors.append(f"curl exited with {process.returncode}")
                await asyncio.sleep(0.05)

    await asyncio.gather(*(client(urls[n % len(urls)]) for n in range(clients)))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    polled.cpu_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return polled


async def python_pollers(urls: list[str], clients: int, seconds: float) -> Polled:
    """The pollers as aiohttp clients sharing one process (support/pollers.py)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).parent / "support" / "pollers.py"), *urls,
        "--clients", str(clients), "--seconds", str(seconds),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(process.communicate(), seconds + 120)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        raise BenchError(f"the pollers exited with {process.returncode}")
    result = orjson.loads(out)
    return Polled(result["latencies"], result["errors"], result["size"], result["cpu_s"], "aiohttp")


# -- operator stream -----------------------------------------------------------------


class Subscribers:
    """The operator SUBSCRIBE streams, read in a process of their own
    (support/subscribers.py), so that taking in 100 copies of every event does not sit on
    the event loop of the writer whose latencies are measured."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def open(cls, url: str, count: int) -> Subscribers:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "support.subscribers", url, "--count", str(count),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            cwd=Path(__file__).parent,
        )  # fmt: skip
        subscribers = cls(process)
        ready = await subscribers.answer(60.0)
        log(f"{count} operator subscribers in {ready['ready']:.1f}s")
        return subscribers

    async def answer(self, timeout_s: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout_s)
        except TimeoutError:
            raise BenchError("the subscribers did not answer in time") from None
        if not line:
            raise BenchError(f"the subscribers exited ({await self.process.wait()})")
        answer: dict[str, Any] = orjson.loads(line)
        return answer

    async def tell(self, command: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(orjson.dumps(command) + b"\n")
        await self.process.stdin.drain()
        return await self.answer(timeout_s)

    async def close(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


async def stream_fanout(
    cluster: MasterCluster,
    leader: Replica,
    subscribers: Subscribers,
    pool: TaskPool,
    profile: Profile,
) -> dict[str, Any]:
    """Status updates at the profile's rate while the subscribers read; lag and losses."""
    # The writers' registration sent every subscriber a TASK_ADDED per task (tens of
    # thousands at full size): timed apart, so the lag below is the offered rate's.
    cleared = await subscribers.tell({"clear": True, "quiet_s": 0.3, "wait_s": 60.0}, 90.0)
    writer = Writer(pool, leader.url)
    replicas = [r.pid for r in cluster.replicas if r.running]
    cpu_before = cpu_seconds([leader.pid])
    replicas_before, own_before = cpu_seconds(replicas), time.process_time()
    started = time.perf_counter()
    offered = await writer.run(profile.stream_rate, profile.stream_s)
    writing = time.perf_counter() - started
    replicas_cpu = cpu_seconds(replicas) - replicas_before
    acked = writer.acked_at
    log(f"{len(acked)} updates acknowledged in {writing:.1f}s")
    # The last events are on their way: the subscribers give them a moment (bounded).
    seen = await subscribers.tell({"acked": acked, "wait_s": 10.0}, 120.0)
    elapsed = time.perf_counter() - started
    leader_cpu = cpu_seconds([leader.pid]) - cpu_before
    own_cpu = time.process_time() - own_before  # the writer agents
    return {
        "stream_subscribers": profile.subscribers,
        "stream_registration_taken_in_s": rounded(cleared["settled_s"], 2),
        "stream_target_events_per_s": profile.stream_rate,
        "stream_offered_events_per_s": rounded(offered, 0),
        "stream_events_per_s": rounded(len(acked) / profile.stream_s, 0),
        "stream_deliveries_per_s": rounded(seen["deliveries"] / seen["elapsed_s"], 0),
        "stream_p50_lag_ms": rounded(seen["p50_lag_ms"], 1),
        "stream_p99_lag_ms": rounded(seen["p99_lag_ms"], 1),
        "stream_max_lag_ms": rounded(seen["max_lag_ms"], 1),
        "stream_p99_lag_after_ack_ms": rounded(seen["p99_lag_after_ack_ms"], 1),
        "stream_write_p50_ms": rounded(percentile(writer.latencies, 0.5) * 1000, 1),
        "stream_write_p99_ms": rounded(percentile(writer.latencies, 0.99) * 1000, 1),
        "stream_updates_per_call": rounded(len(acked) / max(1, writer.calls), 1),
        "stream_cut_off": seen["cut_off"],
        "stream_missing_deliveries": seen["missing_deliveries"],
        "stream_duplicate_deliveries": seen["duplicate_deliveries"],
        "stream_write_errors": writer.errors[:3],
        "stream_leader_cpu_s": rounded(leader_cpu, 2),
        # The leader's CPU per acknowledged update (HTTP, Raft, fold, view, fan-out): a
        # steadier figure than the lags on a shared VM.
        "stream_leader_cpu_ms_per_update": rounded(leader_cpu / max(1, len(acked)) * 1000, 2),
        "stream_replicas_cpu_ms_per_update": rounded(replicas_cpu / max(1, len(acked)) * 1000, 2),
        # Where the two cores went: the replicas while the writer ran, the subscribers'
        # process until the last event came (or its wait ended), the writer agents.
        "stream_replicas_cores": rounded(replicas_cpu / writing, 2),
        "stream_subscribers_cores": rounded(seen["cpu_s"] / seen["elapsed_s"], 2),
        "stream_subscribers_us_per_delivery": rounded(
            seen["cpu_s"] / max(1, seen["deliveries"]) * 1e6, 1
        ),
        "stream_writer_cores": rounded(own_cpu / elapsed, 2),
    }


# -- failover ------------------------------------------------------------------------


async def failover(
    session: aiohttp.ClientSession,
    cluster: MasterCluster,
    leader: Replica,
    pool: TaskPool,
    timeout_s: float = 30.0,
) -> dict[str, Any]:
    """SIGKILL the leader after acknowledged writes; time until a survivor that names itself
    leader serves /state at an index at or after the last acknowledged one."""
    writer = Writer(pool, leader.url)
    await writer.run(50.0, 0.4)
    if not writer.acked_index:
        raise BenchError(f"no write was acknowledged before the kill: {writer.errors[:3]}")
    acked = writer.acked_index
    killed_at = time.perf_counter()
    cluster.kill(leader)
    survivors = [r for r in cluster.replicas if r.running]
    attempts = 0
    winner: asyncio.Future[tuple[Replica, Read]] = asyncio.get_running_loop().create_future()

    async def watch(replica: Replica) -> None:
        nonlocal attempts
        own = f"{HOST}:{replica.port}"
        while not winner.done() and time.perf_counter() - killed_at < timeout_s:
            attempts += 1
            try:
                read = await get_state(session, replica.url)
            except (BenchError, aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.01)
                continue
            if read.leader == own and read.index >= acked and not winner.done():
                winner.set_result((replica, read))
            await asyncio.sleep(0.005)

    watchers = [asyncio.ensure_future(watch(r)) for r in survivors]
    try:
        replica, read = await asyncio.wait_for(asyncio.shield(winner), timeout_s)
    except TimeoutError:
        raise BenchError(f"no new leader served /state within {timeout_s}s") from None
    finally:
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
    elapsed = read_done_at(killed_at, read)
    return {
        "failover_state_s": rounded(elapsed),
        "failover_acked_index": acked,
        "failover_served_index": read.index,
        "failover_state_read_s": rounded(read.seconds),
        "failover_reads_tried": attempts,
        "new_leader": replica.name,
    }


def read_done_at(killed_at: float, read: Read) -> float:
    """Seconds from the kill to the end of the qualifying read (now: it just finished)."""
    return time.perf_counter() - killed_at


# -- the run -------------------------------------------------------------------------


@dataclass
class Run:
    profile: Profile
    workdir: Path
    results: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def storm(self, key: str, result: StormResult, cpu_s: float, leader_cpu_s: float) -> None:
        self.results[f"{key}_agents_per_s"] = rounded(result.per_s, 0)
        self.results[f"{key}_s"] = rounded(result.seconds, 2)
        self.results[f"{key}_cpu_s"] = rounded(cpu_s, 2)
        # CPU per agent, all replicas and the leader alone: steadier than agents/s.
        self.results[f"{key}_cpu_ms_per_agent"] = rounded(cpu_s / result.agents * 1000, 3)
        self.results[f"{key}_leader_cpu_ms_per_agent"] = rounded(
            leader_cpu_s / result.agents * 1000, 3
        )
        if result.failures:
            self.problems.append(
                f"{key}: {result.failures} agents not registered: {result.first_errors}"
            )

    async def timed_storm(
        self,
        key: str,
        cluster: MasterCluster,
        fleet: AgentFleet,
        url: str,
        keep_open: int = 1 << 30,
    ) -> None:
        pids = cluster.pids()
        leader = next((r.pid for r in cluster.replicas if r.url == url and r.running), 0)
        before = {pid: cpu_seconds([pid]) for pid in pids}
        replicas = [r.url for r in cluster.replicas]
        result = await fleet.reregister_all(url, keep_open=keep_open, replicas=replicas)
        spent = {pid: cpu_seconds([pid]) - before[pid] for pid in pids}
        self.storm(key, result, sum(spent.values()), spent.get(leader, 0.0))
        log(f"{key}: {result.agents:,} agents in {result.seconds:.2f}s "
            f"({result.per_s:,.0f}/s, {result.retries} retries)")  # fmt: skip

    async def leader(
        self,
        session: aiohttp.ClientSession,
        cluster: MasterCluster,
        schedulers: Schedulers,
        frameworks: range,
    ) -> Replica:
        """The current leader; the frameworks follow it when it changed (a busy 2-core VM
        can miss heartbeats and elect another one mid-run: counted in *_leader_terms)."""
        deadline = time.monotonic() + 60
        while True:
            leader = await cluster.leader(session)
            if schedulers.leader_url == leader.url:
                return leader
            await schedulers.close()
            try:
                await schedulers.subscribe(leader.url, frameworks)
                return leader
            except RuntimeError as error:
                # Leadership moved again while the frameworks subscribed (503): find it anew.
                schedulers.leader_url = ""
                if "HTTP 503" not in str(error) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    async def teardown(
        self,
        session: aiohttp.ClientSession,
        cluster: MasterCluster,
        schedulers: Schedulers,
        frameworks: range,
        names: list[str],
    ) -> None:
        for name in names:
            await self.leader(session, cluster, schedulers, frameworks)
            try:
                await schedulers.teardown(name)
            except RuntimeError:
                # Leadership went and came back: the streams were closed; subscribe again.
                schedulers.leader_url = ""
                await self.leader(session, cluster, schedulers, frameworks)
                await schedulers.teardown(name)

    async def poll_cluster(self, session: aiohttp.ClientSession) -> None:
        profile = self.profile
        shape = profile.poll
        cluster = MasterCluster(self.workdir / "poll", master_flags(shape))
        schedulers = Schedulers(session)
        # The stream's writers run tasks of a framework of their own, torn down afterwards,
        # so the poller stage reads Mesos's shape; they register after the subscribers, so
        # that each SUBSCRIBED stays small. The pollers' writers come with the poller shape.
        stream_framework = shape.frameworks.stop
        frameworks = range(stream_framework + 1)
        # A pool for what the master can take on this VM (a few thousand updates/s at most);
        # at a higher offered rate the writer reports the updates it had no task ready for.
        stream_updates = min(profile.stream_rate, 5000.0) * profile.stream_s
        stream_tasks = TaskPool.size_for(stream_updates, profile.writers)
        poll_tasks = TaskPool.size_for(3 * profile.write_rate * profile.poll_s, profile.writers)
        staging = mesos_pb2.TASK_STAGING
        stream_shape = Shape(profile.writers, 1, stream_tasks, first_framework=stream_framework)
        stream_writers = AgentFleet(stream_shape, session, WRITER_BASE, staging)
        poll_shape = Shape(profile.writers, 1, poll_tasks)
        poll_writers = AgentFleet(poll_shape, session, WRITER_BASE + 1000, staging)
        fleet = AgentFleet(shape, session)
        subscribers: Subscribers | None = None
        try:
            cluster.start()
            leader = await self.leader(session, cluster, schedulers, frameworks)
            log(f"operator stream: {profile.subscribers} subscribers, "
                f"{profile.stream_rate:,.0f} updates/s for {profile.stream_s}s")  # fmt: skip
            subscribers = await Subscribers.open(leader.url, profile.subscribers)
            await self.timed_storm("stream_writers_register", cluster, stream_writers, leader.url)
            stream_writers.drain(stream_writers.numbers)
            pool = TaskPool(stream_writers)
            leader = await self.leader(session, cluster, schedulers, frameworks)
            stream = await stream_fanout(cluster, leader, subscribers, pool, profile)
            self.results.update(stream)
            lost = {k: stream[f"stream_{k}"] for k in ("cut_off", "missing_deliveries",
                                                       "duplicate_deliveries")}  # fmt: skip
            if any(lost.values()):
                self.problems.append(f"operator stream: {lost}")
            await subscribers.close()
            await stream_writers.close()
            names = [framework_id(stream_framework)]
            await self.teardown(session, cluster, schedulers, frameworks, names)

            log(f"poller cluster: {shape.label()}")
            leader = await self.leader(session, cluster, schedulers, frameworks)
            await self.timed_storm("poll_register", cluster, fleet, leader.url)
            await self.timed_storm("poll_writers_register", cluster, poll_writers, leader.url)
            poll_writers.drain(poll_writers.numbers)
            names = shape.completed_framework_ids
            await self.teardown(session, cluster, schedulers, frameworks, names)
            leader = await self.leader(session, cluster, schedulers, frameworks)
            await self.pollers(session, cluster, leader, TaskPool(poll_writers))
        finally:
            if subscribers is not None:
                await subscribers.close()
            await fleet.close()
            await stream_writers.close()
            await poll_writers.close()
            await schedulers.close()
            self.note_logs("poll", cluster)
            cluster.close()

    async def pollers(
        self,
        session: aiohttp.ClientSession,
        cluster: MasterCluster,
        leader: Replica,
        pool: TaskPool,
    ) -> None:
        """Writes alone, then with 20 pollers on the standbys (the design: every replica
        keeps one body per index warm), then with them on the leader. The pollers are a
        process of their own, as operators' pollers are."""
        profile = self.profile
        standbys = [r for r in cluster.replicas if r.running and r is not leader]
        pids = [r.pid for r in cluster.replicas if r.running]
        # One read first: the stage measures polling masters whose /state someone already
        # reads (an operator UI), not the one-off encoding of every task after the build.
        for replica in (leader, *standbys):
            await get_state(session, replica.url)
        log(f"writes alone: {profile.write_rate:.0f}/s for {profile.poll_s}s")
        alone = Writer(pool, leader.url)
        cpu_before = cpu_seconds(pids)
        await alone.run(profile.write_rate, profile.poll_s)
        alone_cpu = cpu_seconds(pids) - cpu_before
        alone_p99 = percentile(alone.latencies, 0.99)
        self.results.update(
            {
                "pollers": profile.pollers,
                "write_p50_ms_alone": rounded(percentile(alone.latencies, 0.5) * 1000, 1),
                "write_p99_ms_alone": rounded(alone_p99 * 1000, 1),
            }
        )
        errors = list(alone.errors)
        for prefix, targets in (("pollers", standbys), ("pollers_leader", [leader])):
            whose = "the standbys'" if prefix == "pollers" else "the leader's"
            log(f"writes with {profile.pollers} pollers on {whose} /state")
            loaded = Writer(pool, leader.url)
            cpu_before = cpu_seconds(pids)
            polled, _ = await asyncio.gather(
                pollers([r.url for r in targets], profile.pollers, profile.poll_s),
                loaded.run(profile.write_rate, profile.poll_s),
            )
            # The replicas' CPU for reads: the loaded phase minus what the writes alone took.
            read_cpu = max(0.0, cpu_seconds(pids) - cpu_before - alone_cpu)
            reads = polled.latencies
            mean = statistics.fmean(reads) if reads else 0.0
            trimmed = sorted(reads)[len(reads) // 50 : len(reads) - len(reads) // 50] or reads
            loaded_p99 = percentile(loaded.latencies, 0.99)
            self.results.update(
                {
                    f"{prefix}_reads": len(reads),
                    f"{prefix}_cpu_ms_per_read": rounded(read_cpu / max(1, len(reads)) * 1000, 2),
                    # The pollers' own CPU: with one Python process near 1 core, that
                    # process is what limits the reads.
                    f"{prefix}_client": polled.client,
                    f"{prefix}_client_cores": rounded(polled.cpu_s / profile.poll_s, 2),
                    f"{prefix}_state_mb": rounded(polled.size / 1e6, 1),
                    f"{prefix}_mean_s": rounded(mean),
                    f"{prefix}_trimmed_mean_s": rounded(
                        statistics.fmean(trimmed) if trimmed else 0.0
                    ),
                    f"{prefix}_p99_s": rounded(percentile(reads, 0.99)),
                    f"{prefix}_vs_mesos": rounded(mean / MESOS["pollers_mean_s"], 3),
                    f"{prefix}_write_p50_ms": rounded(percentile(loaded.latencies, 0.5) * 1000, 1),
                    f"{prefix}_write_p99_ms": rounded(loaded_p99 * 1000, 1),
                    f"{prefix}_write_p99_ratio": rounded(loaded_p99 / alone_p99, 2)
                    if alone_p99
                    else 0,
                    f"{prefix}_failed_reads": len(polled.errors),
                }
            )
            errors += loaded.errors
            if polled.errors:
                self.problems.append(
                    f"{prefix}: {len(polled.errors)} reads failed: {polled.errors[:3]}"
                )
        self.results["pollers_write_errors"] = errors[:3]

    async def big_cluster(self, session: aiohttp.ClientSession) -> None:
        profile = self.profile
        mid, grow = profile.mid, profile.grow
        cluster = MasterCluster(self.workdir / "big", master_flags(profile.big))
        schedulers = Schedulers(session)
        frameworks = range(grow.frameworks.stop)
        fleet = AgentFleet(mid, session)
        writers = AgentFleet(Shape(2, 1, 20), session, WRITER_BASE, mesos_pb2.TASK_STAGING)
        grown = AgentFleet(grow, session, mid.agents)
        try:
            cluster.start()
            leader = await self.leader(session, cluster, schedulers, frameworks)
            log(f"building {mid.label()}")
            await self.timed_storm("build", cluster, fleet, leader.url, profile.keep_open)
            leader = await self.leader(session, cluster, schedulers, frameworks)
            await self.timed_storm("writers_register_big", cluster, writers, leader.url)
            writers.drain(writers.numbers)
            log("reads at the mid shape")
            reads = await measure_reads(session, leader, profile.requests)
            self.results.update(reads.summary("state"))
            self.results["mid_shape"] = mid.label()
            self.check_counts("mid", reads, mid.running_tasks, 0)

            log("failover: SIGKILL the leader")
            leader = await self.leader(session, cluster, schedulers, frameworks)
            self.results.update(await failover(session, cluster, leader, TaskPool(writers)))
            await writers.close()
            leader = await self.leader(session, cluster, schedulers, frameworks)
            log("re-registration storm on the new leader")
            await self.timed_storm("reregister", cluster, fleet, leader.url, profile.keep_open)
            self.results["reregister_tasks_per_s"] = rounded(
                self.results["reregister_agents_per_s"] * mid.running_tasks / mid.agents, 0
            )

            log(f"growing by {grow.label()}")
            await fleet.close()  # sockets: the grown fleet needs its own
            leader = await self.leader(session, cluster, schedulers, frameworks)
            await self.timed_storm("grow", cluster, grown, leader.url, 0)
            names = grow.completed_framework_ids
            await self.teardown(session, cluster, schedulers, frameworks, names)
            log(f"reads at the big shape: {profile.big.label()}")
            leader = await self.leader(session, cluster, schedulers, frameworks)
            reads = await measure_reads(session, leader, profile.requests)
            self.results.update(reads.summary("state_big"))
            self.results["big_shape"] = profile.big.label()
            big = profile.big
            self.check_counts("big", reads, big.running_tasks, big.completed_tasks)
        finally:
            await grown.close()
            await fleet.close()
            await writers.close()
            await schedulers.close()
            self.note_logs("big", cluster)
            cluster.close()

    def check_counts(self, name: str, reads: ReadFigures, running: int, completed: int) -> None:
        """The state must hold what the agents reported, or its size means nothing."""
        if reads.tasks < running or reads.completed_tasks < completed:
            self.problems.append(
                f"{name}: GET_STATE holds {reads.tasks:,} tasks and {reads.completed_tasks:,}"
                f" completed; the agents reported {running:,} running and {completed:,} finished"
            )

    def note_logs(self, name: str, cluster: MasterCluster) -> None:
        counts = cluster.log_counts()
        self.results[f"{name}_cluster_tracebacks"] = counts["tracebacks"]
        self.results[f"{name}_cluster_leader_terms"] = counts["leader_terms"]
        if counts["tracebacks"] or counts["fail_stops"]:
            self.problems.append(f"{name} cluster logged {counts}; see {cluster.root}")


def compare(results: dict[str, Any]) -> None:
    """Ratios against Mesos's published figures (ours / theirs) and the issue's targets."""
    pairs = {
        "state_big_vs_mesos": ("state_big_p50_s", "state_big_s"),
        "getstate_big_vs_mesos": ("getstate_big_p50_s", "getstate_big_s"),
        "failover_vs_mesos": ("failover_state_s", "failover_mid_s"),
        "reregister_vs_mesos": ("reregister_agents_per_s", "reregister_agents_per_s"),
    }
    for key, (ours, theirs) in pairs.items():
        if ours in results:
            results[key] = rounded(results[ours] / MESOS[theirs], 3)
    met = {}
    for key, (op, bound) in TARGETS.items():
        value = results.get(key)
        if value is not None:
            met[key] = value <= bound if op == "<=" else value >= bound
    results["targets_met"] = met


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_1m_start": rounded(os.getloadavg()[0], 2),
        "fold_compiled": fold.compiled(),
    }


def table(results: dict[str, Any]) -> str:
    def row(label: str, key: str, unit: str = "", mesos: str = "") -> tuple[str, str]:
        value = results.get(key, "-")
        target = TARGETS.get(key)
        goal = f"  (target {target[0]} {target[1]:g})" if target else ""
        extra = f"  [{mesos}]" if mesos else ""
        return label, f"{value}{unit}{goal}{extra}"

    rows = [
        row("/state p50, mid", "state_p50_s", " s"),
        row("GET_STATE JSON p50, mid", "getstate_p50_s", " s"),
        row("GET_STATE protobuf p50, mid", "getstate_protobuf_p50_s", " s"),
        row("/state gzip first read, mid", "state_gzip_first_s", " s"),
        row("/state gzip p50, mid", "state_gzip_p50_s", " s"),
        row("naive rebuild per request, mid", "naive_p50_s", " s"),
        row("/state / naive, mid", "state_vs_naive", "x"),
        row("/state p50, big", "state_big_p50_s", " s", "Mesos 1.7 ~3.1 s"),
        row("GET_STATE JSON p50, big", "getstate_big_p50_s", " s", "Mesos 1.10 9.62 s"),
        row("naive rebuild per request, big", "naive_big_p50_s", " s"),
        row("/state / naive, big", "state_big_vs_naive", "x"),
        row("20 pollers on the standbys, mean", "pollers_mean_s", " s", "Mesos 1.7 ~0.95 s"),
        row("write p99 with them / alone", "pollers_write_p99_ratio", "x"),
        row("replica CPU per read (standbys)", "pollers_cpu_ms_per_read", " ms"),
        row("20 pollers on the leader, mean", "pollers_leader_mean_s", " s"),
        row("write p99 with them / alone", "pollers_leader_write_p99_ratio", "x"),
        row("replica CPU per read (leader)", "pollers_leader_cpu_ms_per_read", " ms"),
        row("failover to /state", "failover_state_s", " s", "Mesos 1.5 ~4.3 s at 10k"),
        row("operator stream p99 lag", "stream_p99_lag_ms", " ms"),
        row("operator stream events/s", "stream_events_per_s"),
        row("leader CPU per update (stream)", "stream_leader_cpu_ms_per_update", " ms"),
        row("re-registration storm", "reregister_agents_per_s", " agents/s", "Mesos ~2,100/s"),
        row("storm CPU per agent, all replicas", "reregister_cpu_ms_per_agent", " ms"),
        row("build (first registration)", "build_agents_per_s", " agents/s"),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


async def run(
    profile: Profile, workdir: Path, big: bool = True
) -> tuple[dict[str, Any], list[str]]:
    # SIGTERM cancels the run, so every stage's `finally` stops the replicas it started.
    current = asyncio.current_task()
    assert current is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, current.cancel)
    bench = Run(profile, workdir)
    bench.results.update(profile=profile.name, **machine())
    started = time.perf_counter()
    async with new_session() as session:
        await bench.poll_cluster(session)
        if big:
            await bench.big_cluster(session)
    bench.results["wall_s"] = rounded(time.perf_counter() - started, 1)
    bench.results["loadavg_1m_end"] = rounded(os.getloadavg()[0], 2)
    compare(bench.results)
    return bench.results, bench.problems


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="scaled down, under 60 s")
    size.add_argument("--tiny", action="store_true", help="toy sizes (the smoke test)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the replicas live")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--stream-rate", type=float, default=None, help="status updates/s offered to the stream"
    )
    parser.add_argument(
        "--poll-only", action="store_true", help="cluster P only (stream and pollers)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    profile = TINY if options.tiny else QUICK if options.quick else FULL
    if options.stream_rate:
        profile = dataclasses.replace(profile, stream_rate=options.stream_rate)
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="state_bench-"))
    gc.collect()
    problems: list[str] = []
    try:
        results, problems = asyncio.run(run(profile, workdir, big=not options.poll_only))
    except (BenchError, asyncio.CancelledError) as error:
        problems.append(str(error) or "cancelled (SIGTERM)")
        results = {}
    finally:
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    for problem in problems:
        log(f"PROBLEM: {problem}")
    results["problems"] = problems
    for key in REQUIRED_KEYS:
        results.setdefault(key, None)
    print(table(results))
    print(json.dumps(results, sort_keys=True))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
