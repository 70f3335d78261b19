"""`meseta master` replicas as real processes on loopback: voters and read replicas.

Every process is tracked and stopped in `close()` (SIGTERM, then SIGKILL), which
callers put in a `finally`; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from meseta.log.testing import ChildProcess, free_port, stop_all

HOST = "127.0.0.1"
# Offers come quickly. Elections wait 1-2 s, not the default 0.5-1 s: the CI machine's CPU
# steal otherwise starts elections between a test finding the leader and using it.
MASTER_FLAGS = ("--allocation_interval", "100ms", "--raft_election_timeout", "1secs")


@dataclass
class MasterProcess(ChildProcess):
    name: str
    port: int
    raft_address: str | None  # None: a read replica
    work_dir: Path

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"


@dataclass
class MasterCluster:
    root: Path
    voters: int = 3
    read_replicas: int = 0
    nodes: list[MasterProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.secret_file = self.root / "secret"
        self.secret_file.write_text(secrets.token_hex(16))
        for number in range(self.voters):
            self.nodes.append(self._node(f"voter{number}", f"{HOST}:{free_port()}"))
        for number in range(self.read_replicas):
            self.nodes.append(self._node(f"reader{number}", None))

    def _node(self, name: str, raft_address: str | None) -> MasterProcess:
        return MasterProcess(name, free_port(), raft_address, self.root / name)

    @property
    def peers(self) -> str:
        return ",".join(n.raft_address for n in self.nodes if n.raft_address)

    def start(self, node: MasterProcess) -> None:
        command = [
            sys.executable, "-m", "meseta.cli", "master",
            "--hostname", HOST, "--ip", HOST, "--port", str(node.port),
            "--work_dir", str(node.work_dir),
            "--peers", self.peers,
            "--secret_file", str(self.secret_file),
            *MASTER_FLAGS,
        ]  # fmt: skip
        command += (
            ["--raft_address", node.raft_address] if node.raft_address else ["--read_replica"]
        )
        node.spawn(command, self.root / f"{node.name}.out")

    def start_all(self) -> None:
        for node in self.nodes:
            if not node.running:
                self.start(node)

    def kill(self, node: MasterProcess) -> None:
        """SIGKILL, as a crash would."""
        node.crash()

    def close(self) -> None:
        stop_all(self.nodes)

    def by_address(self, address: str) -> MasterProcess:
        return next(node for node in self.nodes if node.address == address)

    async def leader(
        self, session: aiohttp.ClientSession, *, timeout_s: float = 30.0
    ) -> MasterProcess:
        """The replica serving as leader: every running replica's /redirect names it, and
        its scheduler endpoint answers (a GET gets 405 there, 307/503 elsewhere)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for node in [n for n in self.nodes if n.running]:
                leader = await self._redirect(session, node)
                if leader is None or not self.by_address(leader).running:
                    continue
                candidate = self.by_address(leader)
                if await self._status(session, candidate.url + "/api/v1/scheduler") == 405:
                    return candidate
            await asyncio.sleep(0.05)
        raise AssertionError(f"no leader within {timeout_s}s\n{self.outputs()}")

    def outputs(self, tail: int = 2000) -> str:
        """The end of every replica's output, for a failure message."""
        return "\n".join(f"--- {n.name}\n{n.output()[-tail:]}" for n in self.nodes)

    async def _redirect(self, session: aiohttp.ClientSession, node: MasterProcess) -> str | None:
        try:
            async with session.get(
                node.url + "/redirect",
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=1),
            ) as response:
                location = response.headers.get("Location", "")
                return location.removeprefix("//") if response.status == 307 else None
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def _status(self, session: aiohttp.ClientSession, url: str) -> int | None:
        try:
            async with session.get(
                url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=1)
            ) as response:
                return response.status
        except (aiohttp.ClientError, TimeoutError):
            return None
