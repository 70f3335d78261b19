"""A hand-built Agent (no daemon running) with one framework, executor and running task."""

from __future__ import annotations

from pathlib import Path

from meseta.agent.containerizer import Containerizer
from meseta.agent.core import ExecutorKind, ExecutorRecord, TaskRecord
from meseta.agent.daemon import Agent
from meseta.agent.flags import AgentFlags
from meseta.proto.mesos.v1 import mesos_pb2

AGENT_ID = "agent-1"
FW = "fw-1"
EX = "ex-1"
CONTAINER = "c-1"


def scalar(name: str, value: float, role: str | None = None) -> mesos_pb2.Resource:
    resource = mesos_pb2.Resource(name=name, type=mesos_pb2.Value.SCALAR)
    resource.scalar.value = value
    if role is not None:
        resource.reservations.add(type=mesos_pb2.Resource.ReservationInfo.STATIC, role=role)
    return resource


def build_agent(work_dir: Path) -> Agent:
    info = mesos_pb2.AgentInfo(hostname="127.0.0.1", port=5051)
    info.id.value = AGENT_ID
    ports = mesos_pb2.Resource(name="ports", type=mesos_pb2.Value.RANGES)
    ports.ranges.range.add(begin=31000, end=32000)
    info.resources.extend([scalar("cpus", 4), scalar("mem", 1024), scalar("cpus", 1, "web"), ports])
    rack = info.attributes.add(name="rack", type=mesos_pb2.Value.TEXT)
    rack.text.value = "r1"
    flags = AgentFlags(masters=("127.0.0.1:5050",), work_dir=work_dir)
    agent = Agent(flags, info, Containerizer(work_dir))
    agent.recovering = False  # as if recover() had run
    framework = mesos_pb2.FrameworkInfo(user="me", name="fw", checkpoint=True, roles=["*"])
    framework.id.value = FW
    framework.capabilities.add(type=mesos_pb2.FrameworkInfo.Capability.MULTI_ROLE)
    agent.core.add_framework(framework)
    sandbox = work_dir / "slaves" / AGENT_ID / "frameworks" / FW / "executors" / EX / "runs"
    (sandbox / CONTAINER).mkdir(parents=True)
    (sandbox / "latest").symlink_to(CONTAINER)
    executor_info = mesos_pb2.ExecutorInfo(name="ex", source="src")
    executor_info.executor_id.value = EX
    executor_info.resources.append(scalar("cpus", 0.1))
    executor = ExecutorRecord(
        executor_info, FW, ExecutorKind.CUSTOM, CONTAINER, str(sandbox / CONTAINER)
    )
    agent.core.add_executor(FW, executor)
    task = mesos_pb2.TaskInfo(name="t")
    task.task_id.value = "t1"
    task.agent_id.value = AGENT_ID
    task.resources.extend([scalar("cpus", 0.5), scalar("mem", 64)])
    executor.tasks["t1"] = TaskRecord(task, FW, EX)
    status = mesos_pb2.TaskStatus(state=mesos_pb2.TASK_RUNNING, timestamp=12.5)
    status.task_id.value = "t1"
    status.container_status.container_id.value = CONTAINER
    status.container_status.executor_pid = 4242  # not shown in /state, as in Mesos
    agent.core.apply_status(status, FW)
    return agent
