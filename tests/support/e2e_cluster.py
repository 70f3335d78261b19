"""End-to-end helpers: a real cluster (3 `meseta master` + 1 `meseta agent` processes) and
real pymesos schedulers as child processes. Everything runs on 127.0.0.1 with free ports under
a temporary folder, and is stopped (executors included) even when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meseta import local_cluster
from meseta.local_cluster import Child, Layout, LocalCluster
from support.failure_logs import executor_stderr, tails

HOST = "127.0.0.1"
HERE = Path(__file__).resolve().parents[1] / "e2e"
FRAMEWORK_SCRIPT = HERE / "pymesos_framework.py"
EXECUTOR_SCRIPT = HERE / "pymesos_executor.py"
AGENT_FLAGS = (
    "--resources=cpus:4;mem:4096;disk:4096;ports:[31000-31099]",
    "--status_update_retry_min=1secs",
    "--status_update_retry_max=2secs",
    "--executor_shutdown_grace_period=2secs",
    "--registration_backoff_factor=100ms",
    "--executor_reregistration_timeout=10secs",  # as in daemon_harness.TEST_FLAGS
)
# Elections as in master_processes.MASTER_FLAGS: ride out the CI machine's CPU steal.
MASTER_FLAGS = ("--allocation_interval=200ms", "--raft_election_timeout=1secs")
START_TIMEOUT_S = 90.0


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            probe = socket.socket()
            probe.bind((HOST, 0))
            sockets.append(probe)
        return [int(probe.getsockname()[1]) for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def wait_until(predicate: Callable[[], object], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.1)


@dataclass
class Cluster:
    """A running LocalCluster plus what the tests do to it."""

    local: LocalCluster

    @property
    def masters(self) -> list[str]:
        return self.local.layout.master_addresses

    @property
    def agent_url(self) -> str:
        return self.local.agent.url

    @property
    def work_dir(self) -> Path:
        return self.local.data / "agent"

    def leader(self, timeout_s: float = 60.0) -> str:
        found: list[str] = []

        def known() -> bool:
            for address in self.masters:
                child = self.child_for(address)
                if not child.running():
                    continue
                leader = local_cluster.leader_of(address)
                if leader is not None and self.child_for(leader).running():
                    found.append(leader)
                    return True
            return False

        wait_until(known, "a leading master", timeout_s)
        return found[0]

    def child_for(self, address: str) -> Child:
        index = self.masters.index(address)
        return self.local.masters[index]

    def kill9(self, child: Child) -> None:
        assert child.process is not None
        os.kill(child.process.pid, signal.SIGKILL)
        child.process.wait(10)

    def restart(self, child: Child) -> None:
        assert not child.running()
        child.start()

    def agent_registered(self) -> bool:
        try:
            state = get_json(f"{self.agent_url}/metrics/snapshot")
        except OSError:
            return False
        return bool(state.get("slave/registered"))

    def diagnostics(self) -> str:
        """The tails of the masters' and the agent's logs and of every executor's stderr."""
        logs = sorted((self.local.data / "logs").glob("*.log"))
        return tails([*logs, *executor_stderr(self.work_dir)], self.local.data)


def get_json(url: str, timeout_s: float = 5.0) -> Any:
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def running_cluster(data: Path) -> Iterator[Cluster]:
    ports = free_ports(7)
    layout = Layout(HOST, tuple(ports[0:3]), tuple(ports[3:6]), ports[6])
    data.mkdir(parents=True)
    (data / "cluster.json").write_bytes(layout.to_json())
    local = local_cluster.build(data, HOST, AGENT_FLAGS, MASTER_FLAGS)
    cluster = Cluster(local)
    try:
        local.start()
        cluster.leader(START_TIMEOUT_S)
        wait_until(cluster.agent_registered, "the agent to register", START_TIMEOUT_S)
        yield cluster
    except BaseException:
        sys.stderr.write(cluster.diagnostics())
        raise
    finally:
        local.stop()


# -- a pymesos scheduler in a child process ------------------------------------------------


@dataclass
class Framework:
    process: subprocess.Popen[str]
    stderr_path: Path
    seen: list[dict[str, Any]] = field(default_factory=list)
    taken: set[int] = field(default_factory=set)
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def start_reader(self) -> None:
        def pump() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.lines.put(line)
            self.lines.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def send(self, op: str, **fields: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.process.stdin.flush()

    def expect(
        self,
        kind: str,
        match: Callable[[dict[str, Any]], bool] = lambda event: True,
        timeout_s: float = 30.0,
    ) -> dict[str, Any]:
        """The first not yet returned event of `kind` that matches (waiting for it)."""
        deadline = time.monotonic() + timeout_s
        while True:
            for index, event in enumerate(self.seen):
                if index not in self.taken and event["event"] == kind and match(event):
                    self.taken.add(index)
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no {kind!r} event within {timeout_s}s; seen: {self.seen[-20:]}\n"
                    f"scheduler stderr: {self.stderr_path.read_text()[-2000:]}"
                )
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(
                    f"the scheduler exited; stderr: {self.stderr_path.read_text()[-2000:]}"
                )
            self.seen.append(json.loads(line))

    def command(self, op: str, **fields: Any) -> None:
        self.send(op, **fields)
        self.expect("done", lambda event: event.get("op") == op)

    def launch(self, **spec: Any) -> None:
        """Launch one task on a fresh offer."""
        self.expect("offers")
        self.command("launch", tasks=[spec])

    def update(self, task_id: str, state: str, timeout_s: float = 30.0) -> dict[str, Any]:
        event = self.expect(
            "update",
            lambda e: e["status"]["task_id"]["value"] == task_id and e["status"]["state"] == state,
            timeout_s,
        )
        return dict(event["status"])

    def updates_for(self, task_id: str) -> list[str]:
        return [
            event["status"]["state"]
            for event in self.seen
            if event["event"] == "update" and event["status"]["task_id"]["value"] == task_id
        ]


@contextlib.contextmanager
def pymesos_framework(master: str, tmp_path: Path, **framework_info: Any) -> Iterator[Framework]:
    stderr_path = tmp_path / f"scheduler-{time.monotonic_ns()}.log"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-P", str(FRAMEWORK_SCRIPT), master, json.dumps(framework_info)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            start_new_session=True,
        )
    framework = Framework(process, stderr_path)
    framework.start_reader()
    try:
        framework.expect("registered", timeout_s=30)
        yield framework
    finally:
        with contextlib.suppress(OSError, ValueError):
            framework.send("stop", failover=False)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()
