"""`meseta agent` as a real process: kill -9 and restart it, bad flags, --recover=cleanup,
SIGTERM and SIGUSR1.

The master runs in-process; the agent and its executors are real processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.daemon_harness import TEST_FLAGS, launch, next_update, states_until, until
from support.fake_scheduler import FakeScheduler, SchedulerStream, framework_info
from support.master_harness import MasterHandle, running_master

from meseta.agent.checkpoint import Checkpoints
from meseta.log.testing import free_port

pytestmark = pytest.mark.timeout(90)


def agent_command(master: MasterHandle, work_dir: Path, port: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "meseta.cli", "agent",
        f"--master={master.address}", f"--work_dir={work_dir}", f"--port={port}",
        *TEST_FLAGS, *extra,
    ]  # fmt: skip


@contextlib.contextmanager
def agent_process(master: MasterHandle, work_dir: Path, port: int, *extra: str) -> Iterator[
    subprocess.Popen[bytes]
]:  # fmt: skip
    log = (work_dir / "agent.log").open("ab")
    process = subprocess.Popen(
        agent_command(master, work_dir, port, *extra), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        log.close()


def recorded_pids(work_dir: Path) -> dict[str, int]:
    """Executor id -> root pid, from the (dead) agent's checkpoints."""
    checkpoints = Checkpoints(work_dir)
    try:
        return {e.executor_id: e.pid for e in checkpoints.load().executors if e.pid}
    finally:
        checkpoints.close()


def alive(pid: int) -> bool:
    """Running (a zombie left to a non-reaping init does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def kill_leftovers(pids: dict[str, int]) -> None:
    for pid in pids.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


async def agent_state(port: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/state"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        state: dict[str, Any] = await response.json()
        return state


@contextlib.asynccontextmanager
async def running_a_task(
    master: MasterHandle, scheduler: FakeScheduler, work_dir: Path, port: int
) -> AsyncIterator[tuple[subprocess.Popen[bytes], SchedulerStream, str]]:
    """The agent as a process, registered (its id), running task `keeps` (sleep 60) of
    `scheduler`, a checkpointing framework subscribed on the stream yielded."""
    stream, _ = await scheduler.subscribe(framework_info(checkpoint=True))
    with agent_process(master, work_dir, port) as process:
        await until(lambda: len(master.state.agents) == 1, "registration", 20)
        (agent_id,) = master.state.agents
        await launch(scheduler, stream, ("keeps", "sleep 60"))
        await states_until(scheduler, stream, "TASK_RUNNING")
        yield process, stream, agent_id


async def signal_after_a_task_runs(
    master: MasterHandle,
    scheduler: FakeScheduler,
    work_dir: Path,
    port: int,
    signum: signal.Signals,
) -> int:
    """Send the agent `signum` while it runs task `keeps` (`running_a_task`); its exit code."""
    async with running_a_task(master, scheduler, work_dir, port) as (process, _, _):
        process.send_signal(signum)
        return await asyncio.to_thread(process.wait, 15)


@pytest.fixture
async def master() -> AsyncIterator[MasterHandle]:
    async with running_master() as handle:
        yield handle


async def test_kill_9_keeps_tasks_and_loses_no_update(master: MasterHandle, tmp_path: Path) -> None:
    port = free_port()
    pids: dict[str, int] = {}
    try:
        async with FakeScheduler(master.url) as scheduler:
            stream, _ = await scheduler.subscribe(framework_info(checkpoint=True))
            with agent_process(master, tmp_path, port) as process:
                await until(lambda: len(master.state.agents) == 1, "registration", 20)
                (agent_id,) = master.state.agents
                await launch(
                    scheduler, stream,
                    ("keeps", "sleep 60"), ("ends", "sleep 3"), ("dies", "sleep 60"),
                )  # fmt: skip
                running: set[str] = set()
                while len(running) < 3:
                    status = await next_update(scheduler, stream)
                    if status["state"] == "TASK_RUNNING":
                        running.add(status["task_id"]["value"])
                process.send_signal(signal.SIGKILL)
                process.wait(10)
            pids = recorded_pids(tmp_path)
            assert sorted(pids) == ["dies", "ends", "keeps"]
            os.killpg(pids["dies"], signal.SIGKILL)  # an executor dies while the agent is down
            await asyncio.sleep(3.5)  # "ends" finishes while the agent is down
            with agent_process(master, tmp_path, port):
                await until(
                    lambda: (
                        master.state.agents[agent_id].status.name == "ACTIVE"
                        and master.state.agents[agent_id].info.port == port
                    ),
                    "re-registration",
                    20,
                )
                # (an acknowledgement the killed agent had not received yet is resent first)
                finals: dict[str, dict[str, object]] = {}
                while sorted(finals) != ["dies", "ends"]:
                    status = await next_update(scheduler, stream, timeout_s=20)
                    if status["state"] != "TASK_RUNNING":
                        finals[status["task_id"]["value"]] = status
                assert finals["ends"]["state"] == "TASK_FINISHED"
                assert finals["ends"]["source"] == "SOURCE_EXECUTOR"
                assert finals["dies"]["state"] == "TASK_FAILED"
                assert finals["dies"]["source"] == "SOURCE_AGENT"
                assert finals["dies"]["reason"] == "REASON_EXECUTOR_TERMINATED"
                state = await agent_state(port)
                assert state["id"] == agent_id
                executors: list[Any] = []
                for _ in range(100):  # "ends" exits once its update is acknowledged
                    (framework,) = (await agent_state(port))["frameworks"]
                    executors = framework["executors"]
                    if len(executors) == 1:
                        break
                    await asyncio.sleep(0.05)
                assert [e["id"] for e in executors] == ["keeps"]
                # the surviving task is still alive and killable through the new agent
                reply = await scheduler.call(
                    "KILL", kill={"task_id": {"value": "keeps"}, "agent_id": {"value": agent_id}}
                )
                assert reply.status == 202
                killed = await states_until(scheduler, stream, "TASK_KILLED")
                assert killed[-1]["task_id"]["value"] == "keeps"
    finally:
        kill_leftovers(pids)


def test_bad_resources_exit_with_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "meseta.cli", "agent", "--master=127.0.0.1:1",
         f"--work_dir={tmp_path}", "--resources=cpus:four;mem:64"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Failed to parse --resources 'cpus:four;mem:64'" in result.stderr
    assert "'four' is not a number" in result.stderr


async def test_recover_cleanup_kills_old_executors(master: MasterHandle, tmp_path: Path) -> None:
    port = free_port()
    pids: dict[str, int] = {}
    try:
        async with FakeScheduler(master.url) as scheduler:
            await signal_after_a_task_runs(master, scheduler, tmp_path, port, signal.SIGKILL)
            pids = recorded_pids(tmp_path)
            with agent_process(master, tmp_path, port, "--recover=cleanup") as cleanup:
                assert await asyncio.to_thread(cleanup.wait, 30) == 0
            assert not alive(pids["keeps"])
    finally:
        kill_leftovers(pids)


async def test_sigterm_stops_the_agent_and_leaves_executors_running(
    master: MasterHandle, tmp_path: Path
) -> None:
    port = free_port()
    pids: dict[str, int] = {}
    try:
        async with FakeScheduler(master.url) as scheduler:
            code = await signal_after_a_task_runs(master, scheduler, tmp_path, port, signal.SIGTERM)
            assert code == 0
            pids = recorded_pids(tmp_path)
            assert alive(pids["keeps"])
    finally:
        kill_leftovers(pids)


async def test_sigusr1_unregisters_kills_the_tasks_and_forgets_the_agent(
    master: MasterHandle, tmp_path: Path
) -> None:
    """As Mesos's agent on SIGUSR1: it unregisters (the master removes it, and its tasks are
    lost), kills its executors, and a restart registers a new agent."""
    port = free_port()
    pids: dict[str, int] = {}
    try:
        async with FakeScheduler(master.url) as scheduler:
            async with running_a_task(master, scheduler, tmp_path, port) as running:
                process, stream, agent_id = running
                pids = recorded_pids(tmp_path)
                process.send_signal(signal.SIGUSR1)
                lost = await states_until(scheduler, stream, "TASK_LOST")
                assert await asyncio.to_thread(process.wait, 30) == 0
            assert lost[-1]["reason"] == "REASON_AGENT_REMOVED"
            assert lost[-1]["message"].endswith("removed: the agent unregistered")
            assert master.state.agents[agent_id].status.name == "REMOVED"
            await until(lambda: not alive(pids["keeps"]), "the executor to be killed", 10)
            with agent_process(master, tmp_path, port):
                await until(lambda: len(master.state.agents) == 2, "a new registration", 20)
    finally:
        kill_leftovers(pids)
