"""A small populated cluster for the read-side tests, driven through the real APIs.

`populate()` registers an agent with cpus, mem and a port range, subscribes a
framework, launches two labelled tasks, reports one RUNNING and the other
FINISHED, and acknowledges the FINISHED one, so the view then holds a running
task, a completed task, an agent with used and offered resources and a
framework with an outstanding offer (the rest of the agent, offered again).
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass
from typing import Any

from support.fake_agent import FakeAgent, scalar
from support.fake_scheduler import FakeScheduler, SchedulerStream, framework_info
from support.master_harness import MasterHandle

Json = dict[str, Any]

AGENT_RESOURCES = [
    scalar("cpus", 4),
    scalar("mem", 1024),
    {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 32000}]}},
]
TASK_LABELS = {"labels": [{"key": "team", "value": "read-side"}]}


@dataclass
class Populated:
    agent: FakeAgent
    scheduler: FakeScheduler
    stream: SchedulerStream
    framework_id: str
    agent_id: str


def task_info(task_id: str, agent_id: Json, ports: bool = False) -> Json:
    resources = [scalar("cpus", 1), scalar("mem", 128)]
    if ports:
        resources.append(
            {
                "name": "ports",
                "type": "RANGES",
                "ranges": {"range": [{"begin": 31000, "end": 31001}]},
            }
        )
    return {
        "name": f"name-{task_id}",
        "task_id": {"value": task_id},
        "agent_id": agent_id,
        "resources": resources,
        "command": {"value": "sleep 1000"},
        "labels": TASK_LABELS,
    }


async def wait_for(predicate: Any, what: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def populate(master: MasterHandle, agent: FakeAgent, scheduler: FakeScheduler) -> Populated:
    stream, first = await scheduler.subscribe(framework_info(name="reader"))
    assert first["type"] == "SUBSCRIBED", first
    framework_id = scheduler.framework_id or ""
    offer = (await stream.expect("OFFERS"))["offers"]["offers"][0]
    tasks = [task_info("t1", offer["agent_id"], ports=True), task_info("t2", offer["agent_id"])]
    reply = await scheduler.call(
        "ACCEPT",
        accept={
            "offer_ids": [offer["id"]],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": tasks}}],
            "filters": {"refuse_seconds": 0},
        },
    )
    assert reply.status == 202, reply.text
    await agent.expect("RUN_TASK")
    await agent.expect("RUN_TASK")
    await agent.update(framework_id, "t1", "TASK_RUNNING")
    finished = await agent.update(framework_id, "t2", "TASK_FINISHED")
    assert finished is not None
    agent_id = agent.agent_id or ""
    reply = await scheduler.call(
        "ACKNOWLEDGE",
        acknowledge={
            "agent_id": {"value": agent_id},
            "task_id": {"value": "t2"},
            "uuid": base64.b64encode(finished).decode(),
        },
    )
    assert reply.status == 202, reply.text
    view = master.context.cluster

    def settled() -> bool:
        framework = view.frameworks.get(framework_id)
        return (
            framework is not None
            and len(framework.completed_tasks) == 1
            and "t1" in framework.tasks
            and len(framework.tasks["t1"].proto.statuses) == 1
            and bool(framework.offers)
        )

    await wait_for(settled, "the view to show t1 running, t2 completed and an offer")
    return Populated(agent, scheduler, stream, framework_id, agent_id)
