"""Run a cluster of log replicas as real processes on loopback (tests, benchmarks).

Every process is tracked by pid and killed in `close()`, which callers put in a
`finally`; every wait is bounded by a deadline.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp


def ephemeral_low() -> int:
    """Where the kernel's range of ports for outgoing connections starts (32768 by default)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A loopback port free now, for a server a test starts next.

    Taken below the ephemeral range: a port the kernel hands out (bind to port 0) is one it
    may give next to any outgoing connection, which then holds it when the server binds it
    (seen in CI: a replica died with "address already in use"). Ports are drawn at random, so
    that two picks, in one process or two, rarely meet; each is checked free by a bind.
    """
    high = ephemeral_low()
    low = max(1024, high - 12_000)
    for _ in range(200 if high - low >= 1000 else 0):
        port = secrets.randbelow(high - low) + low
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as probe:  # no room below the ephemeral range: any free port
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ChildProcess:
    """A process a test cluster spawns, its output in a log file."""

    process: subprocess.Popen[bytes] | None = field(default=None, kw_only=True)
    log_path: Path | None = field(default=None, kw_only=True)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def spawn(self, command: list[str], log_path: Path) -> None:
        """Start `command` with stdout and stderr appended to `log_path`."""
        self.log_path = log_path
        with open(log_path, "ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)

    def crash(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def stop_all(children: Sequence[ChildProcess]) -> None:
    """SIGTERM every running child, then SIGKILL those still there after 5 s in all."""
    for child in children:
        if child.process is not None and child.process.poll() is None:
            child.process.terminate()
    deadline = time.monotonic() + 5
    for child in children:
        if child.process is None:
            continue
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait(timeout=5)


@dataclass
class NodeProcess(ChildProcess):
    name: str
    data: Path
    address: str | None
    control: str

    @property
    def url(self) -> str:
        return f"http://{self.control}"

    def diagnose(self) -> str:
        """What a test that gave up on the node should say: its exit code or, while it runs,
        every thread's stack (meseta.log.node dumps them on SIGUSR1), and its last output."""
        if self.process is None:
            return "never started"
        code = self.process.poll()
        if code is None:
            os.kill(self.process.pid, signal.SIGUSR1)
            time.sleep(0.5)
        state = "running" if code is None else f"exited with {code}"
        return f"{state}; its output ends with:\n{self.output()[-6000:]}"


@dataclass
class LocalCluster:
    """N voting replicas (plus optional read replicas) under one directory."""

    root: Path
    voters: int = 3
    extra_args: list[str] = field(default_factory=list)
    secret: str = field(default_factory=lambda: secrets.token_hex(16))
    nodes: list[NodeProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.secret_file = self.root / "secret"
        self.secret_file.write_text(self.secret)
        for number in range(self.voters):
            self.nodes.append(self._node(f"voter{number}", voting=True))

    def _node(self, name: str, *, voting: bool) -> NodeProcess:
        address = f"127.0.0.1:{free_port()}" if voting else None
        return NodeProcess(name, self.root / name, address, f"127.0.0.1:{free_port()}")

    @property
    def peers(self) -> list[str]:
        return [n.address for n in self.nodes if n.address]

    def add_read_replica(self) -> NodeProcess:
        node = self._node(f"reader{len(self.nodes)}", voting=False)
        self.nodes.append(node)
        return node

    def add_voter(self) -> NodeProcess:
        node = self._node(f"voter{len(self.nodes)}", voting=True)
        self.nodes.append(node)
        return node

    def start(self, node: NodeProcess, *, peers: list[str] | None = None) -> None:
        command = [
            sys.executable, "-m", "meseta.log.node",
            "--data", str(node.data),
            "--peers", ",".join(peers if peers is not None else self.peers),
            "--control", node.control,
            "--secret-file", str(self.secret_file),
            *self.extra_args,
        ]  # fmt: skip
        if node.address:
            command += ["--address", node.address]
        node.spawn(command, self.root / f"{node.name}.out")

    def start_all(self) -> None:
        for node in self.nodes:
            if not node.running:
                self.start(node)

    def kill(self, node: NodeProcess) -> None:
        """SIGKILL, as a crash would."""
        node.crash()

    def close(self) -> None:
        stop_all(self.nodes)


async def get_status(session: aiohttp.ClientSession, node: NodeProcess) -> dict[str, Any] | None:
    try:
        async with session.get(f"{node.url}/status", timeout=aiohttp.ClientTimeout(total=1)) as r:
            return dict(await r.json())
    except (aiohttp.ClientError, TimeoutError):
        return None


async def wait_for_leader(
    session: aiohttp.ClientSession, cluster: LocalCluster, *, timeout_s: float = 20.0
) -> NodeProcess:
    """The one running node that says it leads (exactly one must claim it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        running = [n for n in cluster.nodes if n.running]
        statuses = {n.name: await get_status(session, n) for n in running}
        leaders = [n for n in running if (statuses[n.name] or {}).get("is_leader")]
        if len(leaders) == 1:
            return leaders[0]
        await asyncio.sleep(0.02)
    raise TimeoutError(f"no leader within {timeout_s}s")


async def wait_until(
    session: aiohttp.ClientSession,
    node: NodeProcess,
    predicate: Any,
    *,
    timeout_s: float = 20.0,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        last = await get_status(session, node)
        if last is not None and predicate(last):
            return last
        await asyncio.sleep(0.02)
    raise TimeoutError(
        f"{node.name} did not reach the expected state; last status {last}; {node.diagnose()}"
    )
