"""What an executor is started with: its sandbox path, command and environment.

The sandbox layout and the environment follow Mesos (contract 7.8 and 3.4):
`<work_dir>/slaves/<agent>/frameworks/<fw>/executors/<ex>/runs/<container>`
with a `runs/latest` link, and the MESOS_* variables executor libraries read.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from meseta.agent.containerizer import ContainerConfig
from meseta.agent.core import ExecutorKind, ExecutorRecord, FrameworkRecord
from meseta.agent.flags import AgentFlags, format_duration
from meseta.proto.mesos.v1 import mesos_pb2

COMMAND_EXECUTOR = [sys.executable, "-m", "meseta.agent.command_executor"]
DEFAULT_EXECUTOR = [sys.executable, "-m", "meseta.agent.default_executor"]
# A disconnected executor retries its SUBSCRIBE after a random pause of at most this. Mesos
# fixes it at 2 s (EXECUTOR_REREGISTER_TIMEOUT) whatever --executor_reregistration_timeout
# says, so raising that flag gives executors more tries instead of longer pauses.
SUBSCRIPTION_BACKOFF_MAX_S = 2.0


def run_directory(
    work_dir: Path, agent_id: str, framework_id: str, executor_id: str, container_id: str
) -> Path:
    return (
        work_dir / "slaves" / agent_id / "frameworks" / framework_id
        / "executors" / executor_id / "runs" / container_id
    )  # fmt: skip


def link_latest(run: Path) -> None:
    """`runs/latest` -> the newest run, as Mesos keeps it."""
    latest = run.parent / "latest"
    with contextlib.suppress(OSError):
        if latest.is_symlink():
            latest.unlink()
        latest.symlink_to(run.name)


def environment(
    flags: AgentFlags, agent_id: str, framework: FrameworkRecord, executor: ExecutorRecord
) -> dict[str, str]:
    """Contract 3.4 over --executor_environment_variables (CommandInfo.environment is laid on
    top by the containerizer)."""
    endpoint = f"{flags.ip}:{flags.port}"
    grace_s = flags.executor_shutdown_grace_period_s
    if executor.info.HasField("shutdown_grace_period"):
        grace_s = executor.info.shutdown_grace_period.nanoseconds / 1e9
    env = dict(flags.executor_environment or ())
    env |= {
        "MESOS_FRAMEWORK_ID": framework.framework_id,
        "MESOS_EXECUTOR_ID": executor.executor_id,
        "MESOS_AGENT_ENDPOINT": endpoint,
        "MESOS_SLAVE_PID": f"slave(1)@{endpoint}",
        "MESOS_SLAVE_ID": agent_id,
        "MESOS_DIRECTORY": executor.directory,
        "MESOS_SANDBOX": executor.directory,
        "MESOS_CHECKPOINT": "1" if framework.checkpoint else "0",
        "MESOS_HTTP_COMMAND_EXECUTOR": "1" if flags.http_command_executor else "0",
        "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": format_duration(grace_s),
        "LIBPROCESS_PORT": "0",
    }
    if framework.checkpoint:
        env["MESOS_RECOVERY_TIMEOUT"] = format_duration(flags.recovery_timeout_s)
        env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] = format_duration(SUBSCRIPTION_BACKOFF_MAX_S)
    if "LIBPROCESS_IP" in os.environ:
        env["LIBPROCESS_IP"] = os.environ["LIBPROCESS_IP"]
    return env


# What this agent's containerizer runs: Mesos's `--containerizers=mesos`, with no image
# provider (tasks run on the host's filesystem).
CONTAINERIZERS = "mesos"


def unsupported_container(executor: ExecutorRecord) -> str | None:
    """Why the executor's container (or a task's in its group) cannot be launched here, in
    Mesos's words, or None. Running a Docker task or an image's command on the host instead
    would run something other than what the framework asked for."""
    infos = [executor.info.container] if executor.info.HasField("container") else []
    infos += [t.info.container for t in executor.live_tasks() if t.info.HasField("container")]
    for info in infos:
        if info.type != mesos_pb2.ContainerInfo.MESOS:
            return (
                f"None of the enabled containerizers ({CONTAINERIZERS}) could create a"
                " container for the provided TaskInfo/ExecutorInfo message"
            )
        if info.mesos.HasField("image"):
            kind = mesos_pb2.Image.Type.Name(info.mesos.image.type)
            return f"Failed to launch container: Unsupported container image type: {kind}"
        if info.HasField("tty_info"):
            # Mesos gives such a container a terminal and serves it through its I/O
            # switchboard (ATTACH_CONTAINER_*); here only nested containers have one, and
            # without it the task would run detached.
            return (
                "Failed to launch container: a TTY (ContainerInfo.tty_info) needs the I/O"
                " switchboard, which this agent gives only nested containers"
            )
    return None


def container_config(
    flags: AgentFlags, agent_id: str, framework: FrameworkRecord, executor: ExecutorRecord
) -> ContainerConfig:
    """The executor's container: its command (the default executor for task groups without
    one) and the resources of the executor and of every task it will run."""
    command = executor.info.command
    if executor.kind is ExecutorKind.DEFAULT and not command.value:
        command = mesos_pb2.CommandInfo(shell=False, value=DEFAULT_EXECUTOR[0])
        command.arguments.extend(DEFAULT_EXECUTOR)
    return ContainerConfig(
        container_id=executor.container_id,
        sandbox=Path(executor.directory),
        command=command,
        environment=environment(flags, agent_id, framework, executor),
        resources=tuple(executor.resources()),
        user=command.user if command.HasField("user") else None,
    )
