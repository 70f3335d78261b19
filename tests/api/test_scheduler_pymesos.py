"""A real pymesos 0.3.15 scheduler against the master, with a fake agent behind it.

pymesos runs in a child process (`pymesos_scheduler.py`): it installs a SIGINT
handler at import and re-raises IO-thread failures in the main thread, which
must not happen inside pytest. The child is bounded by timeouts and killed in
`finally`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.fake_agent import FakeAgent
from support.master_harness import MasterHandle, follower_master

from meseta.master.state import FrameworkStatus

SCRIPT = Path(__file__).with_name("pymesos_scheduler.py")


@pytest.fixture(scope="module", autouse=True)
def pymesos_importable() -> None:
    """Skip unless pymesos imports (checked in a child: importing it here would
    replace pytest's SIGINT handler); fail instead when MESETA_REQUIRE_PYMESOS=1 (CI)."""
    probe = subprocess.run(
        [sys.executable, "-c", "import pymesos"], capture_output=True, text=True, timeout=30
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        reason = f"pymesos is not importable ({last}); see scripts/install_pymesos.py"
        if os.environ.get("MESETA_REQUIRE_PYMESOS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


class PymesosScheduler:
    """The child process: commands to its stdin, its JSON-line reports from stdout."""

    def __init__(self, process: asyncio.subprocess.Process, stderr: Path) -> None:
        self.process = process
        self.stderr = stderr
        self.seen: list[dict[str, Any]] = []
        # Reports read but passed over by `expect`, oldest first.
        self.backlog: list[dict[str, Any]] = []

    def diagnostics(self) -> str:
        events = [e["event"] for e in self.seen]
        return f"events so far {events}; pymesos stderr:\n{self.stderr.read_text()[-3000:]}"

    async def send(self, op: str, **fields: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **fields}).encode() + b"\n")
        await self.process.stdin.drain()

    async def command(self, op: str, **fields: Any) -> None:
        """Run a driver call and wait until the child reports it done."""
        await self.send(op, **fields)
        await self.expect("done", lambda e: e["op"] == op)

    async def expect(self, kind: str, match: Any = None, timeout_s: float = 10.0) -> dict[str, Any]:
        """The oldest unconsumed report of `kind` (matching `match`); the reports it
        passes over stay unconsumed."""

        def wanted(event: dict[str, Any]) -> bool:
            return event["event"] == kind and (match is None or match(event))

        for event in self.backlog:
            if wanted(event):
                self.backlog.remove(event)
                return event
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = max(deadline - time.monotonic(), 0.01)
            try:
                line = await asyncio.wait_for(self.process.stdout.readline(), remaining)
            except TimeoutError:
                message = f"pymesos: no {kind} in {timeout_s}s; {self.diagnostics()}"
                raise AssertionError(message) from None
            if not line:
                raise AssertionError(f"pymesos exited waiting for {kind}; {self.diagnostics()}")
            event = json.loads(line)
            self.seen.append(event)
            if event["event"] == "failed":
                raise AssertionError(f"pymesos: {event}; {self.diagnostics()}")
            if wanted(event):
                return event
            self.backlog.append(event)

    async def update(self, task_id: str, state: str) -> dict[str, Any]:
        event = await self.expect(
            "update",
            lambda e: (e["status"]["task_id"]["value"], e["status"]["state"]) == (task_id, state),
        )
        status: dict[str, Any] = event["status"]
        return status


@contextlib.asynccontextmanager
async def pymesos_scheduler(
    address: str, tmp_path: Path, **framework: Any
) -> AsyncIterator[PymesosScheduler]:
    stderr = tmp_path / "pymesos.stderr"
    with stderr.open("wb") as errors:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            address,
            json.dumps(framework),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=errors,
            cwd=tmp_path,
        )
    child = PymesosScheduler(process, stderr)
    try:
        await child.expect("started")
        yield child
    finally:
        if process.returncode is None:
            process.kill()
        await asyncio.wait_for(process.wait(), 10)
        assert process.stdin is not None and process.stdout is not None
        process.stdin.close()
        await asyncio.wait_for(process.stdout.read(), 5)


def b64(data: bytes | None) -> str:
    assert data is not None
    return base64.b64encode(data).decode()


async def test_pymesos_task_lifecycle(
    master: MasterHandle, agent: FakeAgent, tmp_path: Path
) -> None:
    async with pymesos_scheduler(master.address, tmp_path, failover_timeout=60) as scheduler:
        registered = await scheduler.expect("registered")
        fid = registered["framework_id"]
        assert fid == f"{master.state.cluster_id}-0000"
        framework = master.state.frameworks[fid]
        assert framework.status is FrameworkStatus.CONNECTED
        # pymesos read our /version as >= 1.0.0 and so asked for GPU offers.
        assert [c.type for c in framework.info.capabilities] == [3]  # GPU_RESOURCES

        offers = (await scheduler.expect("offers"))["offers"]
        assert [o["agent_id"]["value"] for o in offers] == [agent.agent_id]
        assert offers[0]["framework_id"]["value"] == fid
        cpus = {r["name"]: r["scalar"]["value"] for r in offers[0]["resources"]}
        assert cpus == {"cpus": 4.0, "mem": 1024.0}

        tasks = [
            {"task_id": "finishes", "command": "echo hi"},
            {"task_id": "killed"},
            {"task_id": "orphaned"},
        ]
        await scheduler.command("launch", tasks=tasks)
        runs = {}
        for _ in tasks:
            run = (await agent.expect("RUN_TASK"))["run_task"]
            assert run["framework_info"]["id"]["value"] == fid
            runs[run["task"]["task_id"]["value"]] = run["task"]
        assert runs["finishes"]["command"]["value"] == "echo hi"
        assert runs["killed"]["agent_id"]["value"] == agent.agent_id

        # Every update with a uuid is acknowledged by pymesos, and the ACK reaches the agent.
        async def deliver(task_id: str, state: str) -> dict[str, Any]:
            sent = await agent.update(fid, task_id, state)
            status = await scheduler.update(task_id, state)
            assert status["uuid"] == b64(sent)
            assert status["agent_id"]["value"] == agent.agent_id
            ack = (await agent.expect("ACKNOWLEDGE"))["acknowledge"]
            assert ack == {
                "framework_id": {"value": fid},
                "task_id": {"value": task_id},
                "uuid": b64(sent),
            }
            return status

        for task_id in ("finishes", "killed", "orphaned"):
            await deliver(task_id, "TASK_RUNNING")
        finished = await deliver("finishes", "TASK_FINISHED")
        assert finished["source"] == "SOURCE_EXECUTOR"
        # Acknowledging the terminal update completes the task.
        await master.wait_until(
            lambda: "finishes" not in master.state.frameworks[fid].tasks, "task completion"
        )

        # Explicit reconciliation: a known task, and one nobody knows (non-PA: TASK_LOST).
        await scheduler.command("reconcile", task_ids=["killed", "ghost"])
        replies = {}
        for _ in range(2):
            status = (await scheduler.expect("update"))["status"]
            assert status["reason"] == "REASON_RECONCILIATION"
            assert status["source"] == "SOURCE_MASTER"
            assert "uuid" not in status
            replies[status["task_id"]["value"]] = status["state"]
        assert replies == {"killed": "TASK_RUNNING", "ghost": "TASK_LOST"}

        # Implicit reconciliation: every task the master knows for the framework.
        await scheduler.command("reconcile", task_ids=[])
        implicit = {}
        for _ in range(2):
            status = (await scheduler.expect("update"))["status"]
            assert status["reason"] == "REASON_RECONCILIATION"
            implicit[status["task_id"]["value"]] = status["state"]
        assert implicit == {"killed": "TASK_RUNNING", "orphaned": "TASK_RUNNING"}

        # KILL reaches the agent, which reports the task killed.
        await scheduler.command("kill", task_id="killed")
        kill = (await agent.expect("KILL_TASK"))["kill_task"]
        assert kill["framework_id"]["value"] == fid
        assert kill["task_id"]["value"] == "killed"
        await deliver("killed", "TASK_KILLED")

        # stop(failover=False) tears the framework down; its last task is shut down.
        await scheduler.send("stop", failover=False)
        await scheduler.expect("stopped")
        await master.wait_until(
            lambda: master.state.frameworks[fid].status is FrameworkStatus.REMOVED,
            "framework removal",
        )
        shutdown = await agent.expect("SHUTDOWN_FRAMEWORK")
        assert shutdown["shutdown_framework"]["framework_id"]["value"] == fid
        assert master.state.frameworks[fid].tasks == {}
        assert (await asyncio.wait_for(scheduler.process.wait(), 10)) == 0


async def test_pymesos_follows_a_redirect_to_the_leader(
    master: MasterHandle, agent: FakeAgent, tmp_path: Path
) -> None:
    async with (
        follower_master(leader_hostname=master.host, leader_port=master.port) as follower,
        pymesos_scheduler(follower.address, tmp_path) as scheduler,
    ):
        registered = await scheduler.expect("registered")
        assert registered["master"]["port"] == master.port
        assert registered["framework_id"] in master.state.frameworks
        assert follower.state.frameworks == {}
        await scheduler.expect("offers")
