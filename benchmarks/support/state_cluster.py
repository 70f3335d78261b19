"""Real `meseta master` clusters, filled with synthetic agents and tasks through the real APIs.

Built for benchmarks/state_bench.py, after Mesos's master_benchmarks.cpp: every agent
re-registers with `frameworks_per_agent` x `tasks_per_framework` running tasks (each with
`cpus:0.1;mem:5` and 10 labels) and `completed_frameworks_per_agent` x
`tasks_per_completed_framework` finished ones; framework ids `framework0`, `framework1`, ...
are shared by all agents, as in Mesos. Frameworks subscribe through the scheduler API
(suppressed, checkpointing, a week of failover timeout, so nothing but the benchmark moves);
agents re-register through the agent link in protobuf, many at once, each over a plain asyncio
connection (`AgentStream`: a cheap client, so the storm measures the masters, not the fleet).
The frameworks whose tasks are "completed" are torn down once their agents have reported, so
their tasks end up as completed tasks of completed frameworks.

Re-registration bodies are made from one serialized template per shape by replacing a
fixed-width placeholder with each agent's id (same length, so the protobuf stays valid):
20,000 bodies cost milliseconds, not the seconds that building 400,000 Task messages would.

Every process is started by pid and killed in `close()` (callers use `finally`); every wait is
bounded; only 127.0.0.1 is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from meseta.agent.master_client import update_calls
from meseta.agent.status_updates import Delivery
from meseta.api import recordio
from meseta.log.testing import ChildProcess, free_port, stop_all
from meseta.master.resources import parse, to_protos
from meseta.proto.agent_link.v1 import agent_link_pb2
from meseta.proto.mesos.v1 import mesos_pb2

HOST = "127.0.0.1"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
AGENT_PATH = "/api/v1/agent"
SCHEDULER_PATH = "/api/v1/scheduler"
# Agent ids are `agent` + 6 digits; the template holds this placeholder of the same length.
AGENT_ID_WIDTH = 6
PLACEHOLDER = b"@" * (len("agent") + AGENT_ID_WIDTH)
AGENT_RESOURCES = "cpus:20;mem:10240"
TASK_RESOURCES = "cpus:0.1;mem:5"
LABELS_PER_TASK = 10
WEEK_S = 7 * 24 * 3600.0


def agent_id(number: int) -> str:
    return f"agent{number:0{AGENT_ID_WIDTH}d}"


def framework_id(number: int) -> str:
    return f"framework{number}"


@dataclass(frozen=True)
class Shape:
    """Mesos's benchmark tuple: (agents, frameworks/agent, tasks/framework, completed
    frameworks/agent, tasks/completed framework)."""

    agents: int
    frameworks_per_agent: int
    tasks_per_framework: int
    completed_frameworks_per_agent: int = 0
    tasks_per_completed_framework: int = 0
    first_framework: int = 0  # framework ids start at framework<first_framework>

    @property
    def running_tasks(self) -> int:
        return self.agents * self.frameworks_per_agent * self.tasks_per_framework

    @property
    def completed_tasks(self) -> int:
        per_agent = self.completed_frameworks_per_agent * self.tasks_per_completed_framework
        return self.agents * per_agent

    @property
    def running_frameworks(self) -> range:
        return range(self.first_framework, self.first_framework + self.frameworks_per_agent)

    @property
    def completed_frameworks(self) -> range:
        first = self.running_frameworks.stop
        return range(first, first + self.completed_frameworks_per_agent)

    @property
    def frameworks(self) -> range:
        return range(self.first_framework, self.completed_frameworks.stop)

    @property
    def completed_framework_ids(self) -> list[str]:
        return [framework_id(n) for n in self.completed_frameworks]

    @property
    def max_completed_tasks_per_framework(self) -> int:
        """Enough that no completed task is evicted (the flag defaults to 1,000)."""
        return max(1000, self.agents * self.tasks_per_completed_framework)

    def label(self) -> str:
        text = f"{self.agents:,} agents / {self.running_tasks:,} running tasks"
        if self.completed_tasks:
            text += f" / {self.completed_tasks:,} completed"
        return text


def task_id(agent: str, framework: int, number: int) -> str:
    return f"{agent}-{framework}-{number}"


def framework_info(number: int) -> mesos_pb2.FrameworkInfo:
    info = mesos_pb2.FrameworkInfo(
        user="bench", name=f"bench-{framework_id(number)}", failover_timeout=WEEK_S
    )
    info.id.value = framework_id(number)
    info.checkpoint = True  # tasks survive an agent's disconnection (its stream closing)
    info.roles.append("*")
    info.capabilities.add(type=mesos_pb2.FrameworkInfo.Capability.MULTI_ROLE)
    info.capabilities.add(type=mesos_pb2.FrameworkInfo.Capability.PARTITION_AWARE)
    return info


def reported_task(agent: str, framework: int, number: int, state: int) -> mesos_pb2.Task:
    task = mesos_pb2.Task(name=f"task-{number}", state=state)  # type: ignore[arg-type]
    task.task_id.value = task_id(agent, framework, number)
    task.framework_id.value = framework_id(framework)
    task.agent_id.value = agent
    task.resources.extend(to_protos(parse(TASK_RESOURCES)))
    for label in range(LABELS_PER_TASK):
        task.labels.labels.add(key=f"key{label}", value=f"value{label}")
    return task


def reregister_template(shape: Shape, task_state: int = mesos_pb2.TASK_RUNNING) -> bytes:
    """The agent link SUBSCRIBE of one agent, its id replaced by PLACEHOLDER everywhere."""
    placeholder = PLACEHOLDER.decode()
    call = agent_link_pb2.Call(type=agent_link_pb2.Call.SUBSCRIBE)
    subscribe = call.subscribe
    subscribe.agent_info.id.value = placeholder
    subscribe.agent_info.hostname = placeholder  # as Mesos's benchmark: hostname = agent id
    subscribe.agent_info.port = 5051
    subscribe.agent_info.resources.extend(to_protos(parse(AGENT_RESOURCES)))
    subscribe.version = "1.11.0"
    running, completed = shape.running_frameworks, shape.completed_frameworks
    for number in shape.frameworks:
        subscribe.frameworks.append(framework_info(number))
    for number in running:
        for task in range(shape.tasks_per_framework):
            subscribe.tasks.append(reported_task(placeholder, number, task, task_state))
    for number in completed:
        for task in range(shape.tasks_per_completed_framework):
            finished = reported_task(placeholder, number, task, mesos_pb2.TASK_FINISHED)
            subscribe.tasks.append(finished)
    return call.SerializeToString()


def reregister_bodies(
    shape: Shape, numbers: Iterable[int], task_state: int = mesos_pb2.TASK_RUNNING
) -> dict[int, bytes]:
    template = reregister_template(shape, task_state)
    return {n: template.replace(PLACEHOLDER, agent_id(n).encode()) for n in numbers}


# -- processes -----------------------------------------------------------------------


@dataclass
class Replica(ChildProcess):
    """One `meseta master` process (spawned, crashed and stopped as log/testing.py's)."""

    name: str
    port: int
    raft: int
    work_dir: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


@dataclass
class MasterCluster:
    """Voting `meseta master` replicas (real processes) under one directory."""

    root: Path
    flags: list[str] = field(default_factory=list)
    voters: int = 3
    replicas: list[Replica] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.secret_file = self.root / "secret"
        self.secret_file.write_text(secrets.token_hex(16))
        for number in range(self.voters):
            name = f"master{number}"
            self.replicas.append(
                Replica(
                    name,
                    free_port(),
                    free_port(),
                    self.root / name,
                    log_path=self.root / f"{name}.out",
                )
            )

    def command(self, replica: Replica) -> list[str]:
        peers = ",".join(f"{HOST}:{r.raft}" for r in self.replicas)
        return [
            sys.executable, "-P", "-m", "meseta.cli", "master",
            f"--hostname={HOST}", f"--ip={HOST}", f"--port={replica.port}",
            f"--work_dir={replica.work_dir}", f"--raft_address={HOST}:{replica.raft}",
            f"--peers={peers}", f"--secret_file={self.secret_file}", *self.flags,
        ]  # fmt: skip

    def start(self) -> None:
        for replica in self.replicas:
            assert replica.log_path is not None
            replica.spawn(self.command(replica), replica.log_path)

    def by_port(self, port: int) -> Replica | None:
        return next((r for r in self.replicas if r.port == port), None)

    async def leader(self, session: aiohttp.ClientSession, timeout_s: float = 30.0) -> Replica:
        """The replica every running replica names in its /redirect answer, once it serves
        the agent link as leader (no longer 503 while taking office)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            named = {await redirect_target(session, r) for r in self.replicas if r.running}
            if len(named) == 1:
                port = named.pop()
                leader = self.by_port(port) if port is not None else None
                if leader is not None and leader.running and await serves_leader(session, leader):
                    return leader
            self.check_alive()
            await asyncio.sleep(0.02)
        raise TimeoutError(f"no leader within {timeout_s}s")

    def check_alive(self) -> None:
        for replica in self.replicas:
            if replica.process is not None and replica.process.poll() not in (None, -9):
                tail = replica.output()[-2000:]
                raise RuntimeError(f"{replica.name} exited ({replica.process.returncode}): {tail}")

    def kill(self, replica: Replica) -> None:
        """SIGKILL, as a crash would (this pid only)."""
        replica.crash()

    def pids(self) -> list[int]:
        return [r.pid for r in self.replicas if r.running]

    def close(self) -> None:
        stop_all(self.replicas)

    def log_counts(self) -> dict[str, int]:
        counts = {"tracebacks": 0, "fail_stops": 0, "leader_terms": 0}
        for replica in self.replicas:
            text = replica.output()
            counts["leader_terms"] += text.count("-> leader")
            counts["tracebacks"] += text.count("Traceback")
            counts["fail_stops"] += text.count("fail-stop") + text.count("FAIL-STOP")
        return counts


async def redirect_target(session: aiohttp.ClientSession, replica: Replica) -> int | None:
    """The leader's port as this replica knows it (its /redirect answer), or None."""
    try:
        async with session.get(
            f"{replica.url}/redirect",
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=1),
        ) as response:
            location = response.headers.get("Location", "")
    except (aiohttp.ClientError, TimeoutError):
        return None
    if response.status != 307 or not location.startswith("//"):
        return None
    return int(location[2:].split("/", 1)[0].rsplit(":", 1)[1])


async def serves_leader(session: aiohttp.ClientSession, replica: Replica) -> bool:
    """The agent link answers calls as leader: an empty call gets 400, not 503/307."""
    try:
        async with session.post(
            f"{replica.url}{AGENT_PATH}",
            data=b"{}",
            headers={"Content-Type": JSON},
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=2),
        ) as response:
            return response.status == 400
    except (aiohttp.ClientError, TimeoutError):
        return False


# -- frameworks ----------------------------------------------------------------------


class Schedulers:
    """Subscribed frameworks over one session; their streams are drained and discarded."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.streams: dict[str, tuple[aiohttp.ClientResponse, str, asyncio.Task[None]]] = {}
        self.removed: dict[str, None] = {}  # torn down: never subscribed again
        self.leader_url = ""

    async def subscribe(self, leader_url: str, numbers: Iterable[int]) -> None:
        self.leader_url = leader_url
        wanted = [n for n in numbers if framework_id(n) not in self.removed]
        await asyncio.gather(*(self._subscribe(n) for n in wanted))

    async def _subscribe(self, number: int) -> None:
        from meseta.api import mesos_json

        info = mesos_json.to_dict(framework_info(number))
        body = {
            "type": "SUBSCRIBE",
            "framework_id": {"value": framework_id(number)},
            "subscribe": {"framework_info": info, "suppressed_roles": ["*"]},
        }
        response = await self.session.post(
            self.leader_url + SCHEDULER_PATH,
            data=orjson.dumps(body),
            headers={"Content-Type": JSON, "Accept": JSON},
        )
        if response.status != 200:
            text = await response.text()
            response.release()
            raise RuntimeError(f"SUBSCRIBE {framework_id(number)}: HTTP {response.status} {text}")
        first = await first_record(response, 10.0)
        if orjson.loads(first).get("type") != "SUBSCRIBED":
            raise RuntimeError(f"SUBSCRIBE {framework_id(number)}: {first[:200]!r}")
        stream_id = response.headers["Mesos-Stream-Id"]
        drain = asyncio.get_running_loop().create_task(discard(response))
        self.streams[framework_id(number)] = (response, stream_id, drain)

    async def teardown(self, name: str, timeout_s: float = 60.0) -> None:
        """TEARDOWN, retried while the master answers 503 (a busy leader may take longer to
        commit and apply it than it waits); a retry that finds it gone means it went."""
        _, stream_id, _ = self.streams[name]
        body = orjson.dumps({"type": "TEARDOWN", "framework_id": {"value": name}})
        headers = {"Content-Type": JSON, "Mesos-Stream-Id": stream_id}
        deadline = time.monotonic() + timeout_s
        retried = False
        while True:
            try:
                async with self.session.post(
                    self.leader_url + SCHEDULER_PATH, data=body, headers=headers
                ) as response:
                    text = await response.text()
            except (aiohttp.ClientError, TimeoutError) as error:
                raise RuntimeError(f"TEARDOWN {name}: {error!r}") from None
            if response.status == 202 or (retried and "cannot be found" in text):
                self.removed[name] = None
                return
            if response.status != 503 or time.monotonic() > deadline:
                raise RuntimeError(f"TEARDOWN {name}: HTTP {response.status} {text[:200]}")
            retried = True
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        for response, _, drain in self.streams.values():
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain
            response.close()
        self.streams.clear()


async def discard(response: aiohttp.ClientResponse) -> None:
    with contextlib.suppress(aiohttp.ClientError, TimeoutError, asyncio.CancelledError):
        async for _ in response.content.iter_any():
            pass


async def first_record(response: aiohttp.ClientResponse, timeout_s: float) -> bytes:
    decoder = recordio.Decoder()

    async def read() -> bytes:
        async for chunk in response.content.iter_any():
            for record in decoder.feed(chunk):
                return bytes(record)
        raise RuntimeError("the stream ended before its first record")

    return await asyncio.wait_for(read(), timeout_s)


# -- agents --------------------------------------------------------------------------


# What a connection to a master that goes away (killed, deposed, closing the stream) raises
# at an agent: a malformed chunk is a ValueError, a short read an EOFError.
STREAM_ERRORS = (OSError, EOFError, ValueError, TimeoutError, RuntimeError)


class AgentStream:
    """One agent's SUBSCRIBE connection, spoken as plain HTTP/1.1 over an asyncio stream.

    The fleet shares the masters' 2 cores: through aiohttp an agent's SUBSCRIBE cost the
    fleet about 0.5 ms of CPU, half of what all the replicas together spent on it, so the
    storm measured the client as much as the master. This sends the same bytes (a POST
    with the same protobuf body) and reads the chunked RecordIO answer itself.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.status = 0
        self.headers: dict[str, str] = {}

    @classmethod
    async def post(cls, url: str, path: str, body: bytes) -> AgentStream:
        """Connect, send the call, read the response head (OSError when unreachable)."""
        host, port = url.split("://", 1)[1].rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: {PROTOBUF}\r\nAccept: {PROTOBUF}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        stream = cls(reader, writer)
        try:
            lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            stream.status = int(lines[0].split(" ", 2)[1])
        except BaseException:
            writer.close()
            raise
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                stream.headers[name.strip().lower()] = value.strip()
        return stream

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body, piece by piece (chunked, or Content-Length long)."""
        if self.headers.get("transfer-encoding", "").lower() != "chunked":
            length = int(self.headers.get("content-length", "0"))
            if length:
                yield await self.reader.readexactly(length)
            return
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionResetError("the master closed the stream")
            size = int(line.split(b";", 1)[0], 16)
            data = await self.reader.readexactly(size + 2)  # the chunk and its CRLF
            if size == 0:
                return
            yield data[:-2]

    async def text(self) -> str:
        return b"".join([chunk async for chunk in self.chunks()]).decode(errors="replace")

    async def first_record(self, timeout_s: float) -> bytes:
        decoder = recordio.Decoder()
        async with asyncio.timeout(timeout_s):  # no task per call, unlike wait_for
            async for chunk in self.chunks():
                for record in decoder.feed(chunk):
                    return bytes(record)
        raise RuntimeError("the stream ended before its first record")

    async def drain(self) -> None:
        with contextlib.suppress(*STREAM_ERRORS):
            async for _ in self.chunks():
                pass

    def close(self) -> None:
        self.writer.close()


@dataclass
class StormResult:
    agents: int
    seconds: float
    failures: int
    retries: int
    first_errors: list[str]

    @property
    def per_s(self) -> float:
        return self.agents / self.seconds if self.seconds > 0 else 0.0


class AgentFleet:
    """Synthetic agents: re-register many at once, keep (some) streams; `task_state` is the
    state their tasks are reported in (writers report TASK_STAGING, to move them on)."""

    def __init__(
        self,
        shape: Shape,
        session: aiohttp.ClientSession,
        first: int = 0,
        task_state: int = mesos_pb2.TASK_RUNNING,
    ) -> None:
        self.shape = shape
        self.session = session
        self.numbers = range(first, first + shape.agents)
        self.bodies = reregister_bodies(shape, self.numbers, task_state)
        self.streams: dict[int, AgentStream] = {}
        self.drains: dict[int, asyncio.Task[None]] = {}

    async def reregister_all(
        self,
        leader_url: str,
        *,
        replicas: Sequence[str] = (),
        keep_open: int,
        concurrency: int = 128,
        deadline_s: float = 300.0,
        numbers: Sequence[int] | None = None,
    ) -> StormResult:
        """Every agent sends its SUBSCRIBE; timed until the last one holds SUBSCRIBED.

        The first `keep_open` agents of the fleet keep their stream (a socket each); the
        others close it at once, as agents that lost their connection (their tasks survive: the
        frameworks checkpoint). 503s, in-stream ERRORs and dropped connections are retried
        (as an agent would); a 307 moves the fleet to the leader it names, and a replica that
        cannot be reached sends it on to the next of `replicas` (which redirects).
        """
        numbers = list(numbers if numbers is not None else self.numbers)
        keep = dict.fromkeys(self.numbers[:keep_open])
        gate = asyncio.Semaphore(concurrency)
        errors: list[str] = []
        retries = 0
        leader = [leader_url]  # follows 307s: leadership may move during a storm
        ring = list(dict.fromkeys([*replicas, leader_url]))
        started = time.perf_counter()
        stop_at = time.monotonic() + deadline_s

        async def one(number: int) -> bool:
            nonlocal retries
            async with gate:
                while time.monotonic() < stop_at:
                    tried = leader[0]
                    outcome = await self._subscribe(tried, number, number in keep)
                    if outcome is None:
                        return True
                    retries += 1
                    if len(errors) < 5:
                        errors.append(outcome)
                    if outcome.startswith("fatal"):
                        return False
                    if outcome.startswith("leader "):
                        leader[0] = outcome.split(" ", 1)[1]
                        continue
                    # A replica that cannot be reached, or that knows no leader (it may be
                    # the deposed one), sends the fleet on to the next replica: once, however
                    # many agents fail there at the same time (each moving the fleet on
                    # used to spin it back onto a dead replica for good).
                    if outcome.startswith(("unreachable", "no leader")) and leader[0] == tried:
                        at = ring.index(tried) if tried in ring else -1
                        leader[0] = ring[(at + 1) % len(ring)]
                    await asyncio.sleep(0.05)
                return False

        done = await asyncio.gather(*(one(n) for n in numbers))
        elapsed = time.perf_counter() - started
        failures = sum(1 for ok in done if not ok)
        return StormResult(len(numbers), elapsed, failures, retries, errors)

    async def _subscribe(self, url: str, number: int, keep: bool) -> str | None:
        """None when subscribed; otherwise why not ("fatal ..." is not worth a retry,
        "leader URL" names the leader a 307 pointed to)."""
        old = self.streams.pop(number, None)
        if old is not None:
            old.close()
        try:
            async with asyncio.timeout(60.0):
                stream = await AgentStream.post(url, AGENT_PATH, self.bodies[number])
        except STREAM_ERRORS as error:
            return f"unreachable {agent_id(number)}: {error!r}"
        if stream.status == 307:
            location = stream.headers.get("location", "")
            stream.close()
            return f"leader http:{location.split('/master', 1)[0].split('/api', 1)[0]}"
        if stream.status != 200:
            try:
                text = await asyncio.wait_for(stream.text(), 60.0)
            except STREAM_ERRORS as error:
                text = repr(error)
            stream.close()
            if "No leader elected" in text:
                return f"no leader at {url} for {agent_id(number)}"
            fatal = "" if stream.status == 503 else "fatal "
            return f"{fatal}{agent_id(number)}: HTTP {stream.status} {text[:200]}"
        try:
            record = await stream.first_record(60.0)
        except STREAM_ERRORS as error:
            stream.close()
            return f"{agent_id(number)}: {error!r}"
        event = agent_link_pb2.Event()
        event.ParseFromString(record)
        if event.type != agent_link_pb2.Event.SUBSCRIBED:
            stream.close()  # an ERROR (e.g. not committed in time): an agent tries again
            return f"{agent_id(number)}: event {event.type} {event.error.message}"
        if keep:
            self.streams[number] = stream
        else:
            stream.close()
        return None

    async def resubscribe(self, url: str, number: int) -> None:
        """Subscribe one agent again (its stream was closed) and drain its new stream."""
        drain = self.drains.pop(number, None)
        if drain is not None:
            drain.cancel()
        if await self._subscribe(url, number, True) is None:
            self.drain([number])

    def drain(self, numbers: Iterable[int]) -> None:
        """Read and discard these agents' streams (writers: their queues must not fill)."""
        loop = asyncio.get_running_loop()
        for number in numbers:
            if number in self.streams and number not in self.drains:
                self.drains[number] = loop.create_task(self.streams[number].drain())

    def update_calls(
        self, number: int, framework: int, updates: Sequence[tuple[int, int, float, bytes]]
    ) -> list[bytes]:
        """Status updates (task, state, sent_at, uuid) from one agent's executors, packed into
        calls the way the agent packs what is due at once (one UPDATE for a lone update,
        UPDATES otherwise); `timestamp` is when the executor sent each."""
        agent = agent_id(number)
        deliveries = []
        for task, state, sent_at, uuid in updates:
            status = mesos_pb2.TaskStatus(
                state=state,  # type: ignore[arg-type]
                source=mesos_pb2.TaskStatus.SOURCE_EXECUTOR,
                uuid=uuid,
                timestamp=sent_at,
            )
            status.task_id.value = task_id(agent, framework, task)
            status.agent_id.value = agent
            deliveries.append(Delivery(framework_id(framework), status, state))
        bodies = []
        for call in update_calls(deliveries):
            call.agent_id.value = agent
            bodies.append(call.SerializeToString())
        return bodies

    async def close(self) -> None:
        for drain in self.drains.values():
            drain.cancel()
        for drain in self.drains.values():
            with contextlib.suppress(asyncio.CancelledError):
                await drain
        self.drains.clear()
        for response in self.streams.values():
            response.close()
        self.streams.clear()


def master_flags(shape: Shape) -> list[str]:
    """Flags that keep a benchmark cluster still: nothing expires while it is measured."""
    return [
        "--agent_ping_timeout=1hrs",
        "--agent_reregister_timeout=1hrs",
        f"--max_completed_tasks_per_framework={shape.max_completed_tasks_per_framework}",
    ]


def new_session(limit: int = 0) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit, force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None)
    return aiohttp.ClientSession(connector=connector, timeout=timeout)


def describe(value: Any) -> str:
    return orjson.dumps(value).decode()
