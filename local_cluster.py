"""`meseta up`: a local cluster of three master replicas and one agent under one data folder.

The first start chooses the ports (Mesos's defaults when free: masters 5050, agent 5051) and a
peer secret and writes them to `<data>/cluster.json` and `<data>/secret`; later starts reuse
them, because the Raft peers and the agent's registration must stay where they were for the
cluster to resume from its data. Every process logs to `<data>/logs/`; one that exits is started
again (after 1 s, doubling up to a minute while it keeps failing). SIGINT/SIGTERM stop the
agent first, then the masters (SIGTERM, then SIGKILL after a grace period), then any executor
still running from this cluster's work dir, so nothing is left behind.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import http.client
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

import orjson

HOST = "127.0.0.1"
REPLICAS = 3
DEFAULT_MASTER_PORTS = (5050, 5052, 5053)
DEFAULT_AGENT_PORT = 5051
DEFAULT_RAFT_PORTS = (7050, 7051, 7052)
STOP_GRACE_S = 10.0
LEADER_WAIT_S = 60.0
LEADER_LOOK_S = 1.0  # how often `meseta up` asks for the leader, to say when it changes
LEADER_ASK_S = 0.5  # a master's /redirect answer (a hung master delays supervision this long)
# A child that exits is started again, as a service manager would (Mesos runs under systemd's
# Restart=): after 1 s, doubling up to a minute while it keeps failing; once it has run a
# minute, a failure is a first one again.
RESTART_MIN_S = 1.0
RESTART_MAX_S = 60.0
STEADY_S = 60.0


class ClusterError(Exception):
    """A problem `meseta up` reports in one line and exits 1 for."""


@dataclass(frozen=True, slots=True)
class Layout:
    """Ports of one local cluster, chosen once and kept in cluster.json."""

    host: str
    master_ports: tuple[int, ...]
    raft_ports: tuple[int, ...]
    agent_port: int

    @property
    def master_addresses(self) -> list[str]:
        return [f"{self.host}:{port}" for port in self.master_ports]

    @property
    def raft_peers(self) -> str:
        return ",".join(f"{self.host}:{port}" for port in self.raft_ports)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "host": self.host,
                "master_ports": list(self.master_ports),
                "raft_ports": list(self.raft_ports),
                "agent_port": self.agent_port,
            },
            option=orjson.OPT_INDENT_2,
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Layout:
        data = orjson.loads(raw)
        return cls(
            host=str(data["host"]),
            master_ports=tuple(int(p) for p in data["master_ports"]),
            raft_ports=tuple(int(p) for p in data["raft_ports"]),
            agent_port=int(data["agent_port"]),
        )


def port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str, taken: set[int]) -> int:
    while True:
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
        if port not in taken:
            return port


def choose_ports(host: str, preferred: tuple[int, ...], taken: set[int]) -> tuple[int, ...]:
    """The preferred ports when all are free, else free ones (never two alike)."""
    if all(port_free(host, port) and port not in taken for port in preferred):
        chosen = preferred
    else:
        chosen = ()
        for _ in preferred:
            chosen += (free_port(host, taken | set(chosen)),)
    taken.update(chosen)
    return chosen


def load_layout(data: Path, host: str) -> Layout:
    path = data / "cluster.json"
    if path.exists():
        try:
            return Layout.from_json(path.read_bytes())
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise ClusterError(f"cannot read {path}: {error}") from None
    taken: set[int] = set()
    masters = choose_ports(host, DEFAULT_MASTER_PORTS, taken)
    (agent,) = choose_ports(host, (DEFAULT_AGENT_PORT,), taken)
    rafts = choose_ports(host, DEFAULT_RAFT_PORTS, taken)
    layout = Layout(host, masters, rafts, agent)
    path.write_bytes(layout.to_json())
    return layout


def ensure_secret(data: Path) -> Path:
    path = data / "secret"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_hex(32) + "\n")
    return path


def meseta_command(*args: str) -> list[str]:
    # -P: never put the working directory on sys.path (the checkout root is the package itself).
    return [sys.executable, "-P", "-m", "meseta.cli", *args]


def log_path(data: Path, name: str) -> Path:
    """Where a process's output goes; the process serves it as its log (`/master/log`,
    `/slave/log`) through `--external_log_file`, for the web UI."""
    return data / "logs" / f"{name}.log"


def master_commands(
    data: Path, layout: Layout, secret: Path, extra: Sequence[str] = ()
) -> list[list[str]]:
    return [
        meseta_command(
            "master",
            f"--external_log_file={log_path(data, f'master{number}')}",
            f"--hostname={layout.host}",
            f"--ip={layout.host}",
            f"--port={port}",
            f"--work_dir={data / 'masters' / str(number)}",
            f"--raft_address={layout.host}:{raft}",
            f"--peers={layout.raft_peers}",
            f"--secret_file={secret}",
            *extra,
        )
        for number, (port, raft) in enumerate(
            zip(layout.master_ports, layout.raft_ports, strict=True), 1
        )
    ]


def agent_command(data: Path, layout: Layout, extra: Sequence[str]) -> list[str]:
    return meseta_command(
        "agent",
        f"--external_log_file={log_path(data, 'agent')}",
        f"--master={','.join(layout.master_addresses)}",
        f"--work_dir={data / 'agent'}",
        f"--ip={layout.host}",
        f"--hostname={layout.host}",
        f"--port={layout.agent_port}",
        *extra,
    )


@dataclass(slots=True)
class Child:
    name: str
    url: str
    command: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    reported: bool = False
    started_at: float = 0.0
    restart_at: float | None = None  # when an exited child starts again
    backoff_s: float = RESTART_MIN_S

    def start(self) -> None:
        self.started_at, self.restart_at, self.reported = time.monotonic(), None, False
        if self.log is not None:
            self.log.close()  # a restart: the previous run's handle
        self.log = self.log_path.open("ab")
        self.log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {self.command}\n".encode())
        self.log.flush()
        # Own process group: a Ctrl-C in the terminal reaches only `meseta up`, which then stops
        # the children in order (agent first) instead of all at once.
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=self.log_path.parent,
            process_group=0,
        )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self) -> None:
        if self.running():
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)

    def wait_or_kill(self, deadline: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self.log is not None:
            self.log.close()
            self.log = None


@dataclass(slots=True)
class LocalCluster:
    data: Path
    layout: Layout
    masters: list[Child]
    agent: Child
    stopping: bool = field(default=False)

    @property
    def children(self) -> list[Child]:
        return [*self.masters, self.agent]

    def start(self) -> None:
        for child in self.children:
            child.start()

    def stop(self) -> None:
        """Agent first (it may still report to a master), then masters, then stray executors."""
        self.agent.terminate()
        self.agent.wait_or_kill(time.monotonic() + STOP_GRACE_S)
        for master in self.masters:
            master.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for master in self.masters:
            master.wait_or_kill(deadline)
        sweep_executors(self.data / "agent")

    def exited(self) -> Iterator[Child]:
        """Children that ended on their own since the last call."""
        for child in self.children:
            if not child.running() and not child.reported:
                child.reported = True
                yield child

    def supervise(self) -> None:
        """Start again, with back-off, the children that exited (an agent shut down by its
        master, say because its machine went DOWN, registers again once it may)."""
        now = time.monotonic()
        for child in self.exited():
            assert child.process is not None
            if now - child.started_at >= STEADY_S:
                child.backoff_s = RESTART_MIN_S
            child.restart_at = now + child.backoff_s
            say(
                f"meseta up: {child.name} exited with code {child.process.returncode}; "
                f"restarting it in {child.backoff_s:.0f}s (see {child.log_path})"
            )
            child.backoff_s = min(child.backoff_s * 2, RESTART_MAX_S)
        for child in self.children:
            if child.restart_at is not None and now >= child.restart_at:
                child.start()


def leader_of(address: str, timeout_s: float = 1.0) -> str | None:
    """The leader's host:port as `address` knows it (its /redirect answer), or None."""
    host, _, port = address.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout_s)
    try:
        connection.request("GET", "/redirect")
        response = connection.getresponse()
        location = response.getheader("Location") or ""
        response.read()
    except OSError:
        return None
    finally:
        connection.close()
    if response.status != 307 or not location.startswith("//"):
        return None
    return location[2:].split("/", 1)[0]


def current_leader(cluster: LocalCluster) -> str | None:
    """The leader as the first master that knows one says."""
    for address in cluster.layout.master_addresses:
        leader = leader_of(address, LEADER_ASK_S)
        if leader is not None:
            return leader
    return None


def wait_for_leader(cluster: LocalCluster, timeout_s: float) -> str | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not cluster.stopping:
        leader = current_leader(cluster)
        if leader is not None:
            return leader
        if not any(master.running() for master in cluster.masters):
            return None
        time.sleep(0.2)
    return None


# An executor and its tasks have MESOS_DIRECTORY; a nested container's command (which
# outlives a stopped agent, as in Mesos) has its MESOS_SANDBOX.
SANDBOX_VARIABLES = (b"MESOS_DIRECTORY=", b"MESOS_SANDBOX=")


def _environ_directories(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return []
    return [
        item.split(b"=", 1)[1].decode(errors="replace")
        for item in raw.split(b"\0")
        if item.startswith(SANDBOX_VARIABLES)
    ]


def cluster_processes(work_dir: Path) -> list[int]:
    """Our processes whose sandbox lies under `work_dir`: executors, their tasks and the
    commands of nested containers."""
    prefix = str(work_dir.resolve()) + "/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        directories = _environ_directories(int(entry.name))
        if any((directory + "/").startswith(prefix) for directory in directories):
            found.append(int(entry.name))
    return found


def sweep_executors(work_dir: Path, grace_s: float = 3.0) -> int:
    """SIGTERM, then SIGKILL, whatever still runs from this agent's sandboxes; returns the count."""
    pids = cluster_processes(work_dir)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and cluster_processes(work_dir):
        time.sleep(0.1)
    for pid in cluster_processes(work_dir):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def build(
    data: Path, host: str, agent_args: Sequence[str] = (), master_args: Sequence[str] = ()
) -> LocalCluster:
    data.mkdir(parents=True, exist_ok=True)
    for folder in ("logs", "masters", "agent"):
        (data / folder).mkdir(exist_ok=True)
    layout = load_layout(data, host)
    secret = ensure_secret(data)
    busy = [
        port
        for port in (*layout.master_ports, *layout.raft_ports, layout.agent_port)
        if not port_free(layout.host, port)
    ]
    if busy:
        raise ClusterError(
            f"ports {', '.join(map(str, busy))} of the cluster in {data} are in use "
            f"(another `meseta up`?); the ports are kept in {data / 'cluster.json'}"
        )
    masters = [
        Child(
            f"master {number}",
            f"http://{layout.host}:{port}",
            command,
            log_path(data, f"master{number}"),
        )
        for number, (port, command) in enumerate(
            zip(
                layout.master_ports, master_commands(data, layout, secret, master_args), strict=True
            ),
            1,
        )
    ]
    agent = Child(
        "agent",
        f"http://{layout.host}:{layout.agent_port}",
        agent_command(data, layout, agent_args),
        log_path(data, "agent"),
    )
    return LocalCluster(data, layout, masters, agent)


@contextlib.contextmanager
def data_lock(data: Path) -> Iterator[None]:
    data.mkdir(parents=True, exist_ok=True)
    with (data / "up.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ClusterError(f"another `meseta up` is running on {data}") from None
        yield


def say(text: str) -> None:
    print(text, flush=True)


def serve(cluster: LocalCluster) -> int:
    def request_stop(signum: int, frame: FrameType | None) -> None:
        cluster.stopping = True

    previous = {
        signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    failed = False
    try:
        cluster.start()
        say(f"meseta up: data in {cluster.data} (logs in {cluster.data / 'logs'})")
        for child in cluster.children:
            say(f"  {child.name:<9} {child.url}")
        leader = wait_for_leader(cluster, LEADER_WAIT_S)
        if leader is not None:
            say(f"  leader    http://{leader}")
            say(f"Try: meseta execute --master={leader} --name=hello --command='echo hello'")
            say(f"     then meseta tasks --all, or the web UI at http://{leader}/")
            say("Ctrl-C stops the cluster.")
        elif not cluster.stopping:
            say(f"meseta up: no leader after {LEADER_WAIT_S:.0f}s; see {cluster.data / 'logs'}")
            failed = True
            cluster.stopping = True
        next_look = time.monotonic() + LEADER_LOOK_S
        while not cluster.stopping:
            cluster.supervise()
            time.sleep(0.2)
            if time.monotonic() >= next_look:  # say where a new leader is, after a failover
                next_look = time.monotonic() + LEADER_LOOK_S
                found = current_leader(cluster)
                if found is not None and found != leader:
                    say(f"meseta up: the leader is now http://{found}")
                    leader = found
    finally:
        say("meseta up: stopping")
        # A second Ctrl-C while stopping must not leave children behind.
        for signum in previous:
            signal.signal(signum, signal.SIG_IGN)
        cluster.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        say("meseta up: stopped")
    return 1 if failed else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, default=Path(".meseta"), help="folder for all data (./.meseta)"
    )
    parser.add_argument("--host", default=HOST, help="address every process listens on")
    parser.add_argument(
        "agent_args",
        nargs="*",
        metavar="AGENT_FLAG",
        help="extra `meseta agent` flags after `--`, e.g. -- --resources='cpus:4;mem:4096'",
    )


def run(options: argparse.Namespace) -> int:
    data = options.data.resolve()
    try:
        with data_lock(data):
            return serve(build(data, options.host, list(options.agent_args)))
    except ClusterError as error:
        print(f"meseta up: {error}", file=sys.stderr)
        return 1
