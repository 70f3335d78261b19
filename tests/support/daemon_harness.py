"""Helpers for tests of the agent daemon (tests/agent/test_daemon*.py): an in-process agent
with the real containerizer, and a scheduler's side of launching tasks and acknowledging updates.
Every wait is bounded; `running_agent` stops the agent (not its executors) on exit."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from meseta.agent import flags as agent_flags
from meseta.agent.containerizer import Containerizer
from meseta.agent.daemon import Agent
from meseta.agent.main import agent_info
from meseta.agent.server import AgentServer
from meseta.log.testing import free_port
from support.fake_scheduler import FakeScheduler, SchedulerStream

Json = dict[str, Any]
# Fast retries and back-offs, small fixed resources. Executors get 10 s to re-subscribe to a
# restarted agent: they retry every 2 s at most, and on a loaded 2-core CI host Mesos's 2 s
# default (and even 3 s) lost the race now and then, killing a task the test meant to keep.
TEST_FLAGS = (
    "--resources=cpus:2;mem:1024;disk:1024;ports:[31000-31010]",
    "--registration_backoff_factor=10ms",
    "--status_update_retry_min=200ms",
    "--status_update_retry_max=1secs",
    "--executor_reregistration_timeout=10secs",
    "--executor_shutdown_grace_period=2secs",
)


def options(work_dir: Path, masters: list[str], port: int, *extra: str) -> agent_flags.AgentFlags:
    parser = argparse.ArgumentParser()
    agent_flags.add_arguments(parser)
    argv = [
        f"--master={','.join(masters)}",
        f"--work_dir={work_dir}",
        f"--port={port}",
        *TEST_FLAGS,
        *extra,
    ]
    return agent_flags.from_options(parser.parse_args(argv))


@contextlib.asynccontextmanager
async def running_agent(
    work_dir: Path,
    masters: list[str],
    *extra: str,
    port: int | None = None,
    keep_executors: bool = False,
) -> AsyncIterator[Agent]:
    """An agent serving on 127.0.0.1; on exit its executors are destroyed too, unless kept
    for a successor agent (as after a crash)."""
    flags = options(work_dir, masters, port or free_port(), *extra)
    agent = Agent(flags, agent_info(flags), Containerizer(work_dir))
    server = AgentServer(agent)
    await server.start()
    try:
        assert await agent.recover()
        await agent.start()
        yield agent
    finally:
        if not keep_executors:
            await kill_everything(agent)
        await agent.stop()
        await server.stop()


async def until(predicate: Callable[[], object], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.02)


async def kill_everything(agent: Agent) -> None:
    for container_id in agent.containerizer.containers():
        with contextlib.suppress(Exception):
            await agent.containerizer.destroy(container_id, 0.0)


def command_task(offer: Json, task_id: str, command: str) -> Json:
    return {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": offer["agent_id"],
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
        ],
        "command": {"value": command},
    }


async def launch(
    scheduler: FakeScheduler,
    stream: SchedulerStream,
    *tasks: tuple[str, str],
    extra: Json | None = None,
    executor: Json | None = None,
) -> None:
    """Launch command tasks (id, command) on the next offer; `extra`: more TaskInfo fields;
    `executor`: an ExecutorInfo to run them on instead of their commands."""
    offers = await stream.expect("OFFERS", timeout_s=10)
    offer = offers["offers"]["offers"][0]
    infos = [command_task(offer, task_id, command) | (extra or {}) for task_id, command in tasks]
    if executor is not None:
        for info in infos:
            del info["command"]
            info["executor"] = executor
    reply = await scheduler.call(
        "ACCEPT",
        accept={
            "offer_ids": [offer["id"]],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": infos}}],
        },
    )
    assert reply.status == 202, reply.text


async def next_update(
    scheduler: FakeScheduler, stream: SchedulerStream, *, ack: bool = True, timeout_s: float = 15
) -> Json:
    event = await stream.expect("UPDATE", timeout_s=timeout_s)
    status: Json = event["update"]["status"]
    if ack and "uuid" in status:
        reply = await scheduler.call(
            "ACKNOWLEDGE",
            acknowledge={
                "agent_id": status["agent_id"],
                "task_id": status["task_id"],
                "uuid": status["uuid"],
            },
        )
        assert reply.status == 202, reply.text
    return status


async def states_until(
    scheduler: FakeScheduler, stream: SchedulerStream, final: str, **kwargs: Any
) -> list[Json]:
    seen: list[Json] = []
    while not seen or seen[-1]["state"] != final:
        seen.append(await next_update(scheduler, stream, **kwargs))
        assert len(seen) < 10, [s["state"] for s in seen]
    return seen
