"""The containerizer and launcher: statuses, environment, kill with grace, whole trees reaped,
usage, launch failures, and re-attaching after the agent was killed with -9."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from meseta.agent import launcher
from meseta.agent.containerizer import (
    ContainerConfig,
    ContainerError,
    Containerizer,
    Launched,
)
from meseta.agent.isolator import LaunchInfo, Limitation, RecoveredContainer
from meseta.proto.mesos.v1 import mesos_pb2


def shell(command: str, **environment: str) -> mesos_pb2.CommandInfo:
    info = mesos_pb2.CommandInfo(value=command)
    for name, value in environment.items():
        info.environment.variables.add(name=name, value=value)
    return info


def config(
    tmp_path: Path, container_id: str, command: mesos_pb2.CommandInfo, **kw: object
) -> ContainerConfig:
    return ContainerConfig(container_id, tmp_path / "sandboxes" / container_id, command, {}, **kw)  # type: ignore[arg-type]


async def wait(containerizer: Containerizer, container_id: str) -> tuple[int | None, str]:
    termination = await asyncio.wait_for(containerizer.wait(container_id), 20)
    return termination.status, termination.message


def pids_in(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()]


def gone(pids: list[int]) -> bool:
    return all(launcher.stat(pid) is None or launcher.stat(pid).dead for pid in pids)  # type: ignore[union-attr]


async def test_exit_status_output_and_message(containerizer: Containerizer, tmp_path: Path) -> None:
    await containerizer.launch(config(tmp_path, "c1", shell("echo out; echo err >&2; exit 3")))
    assert await wait(containerizer, "c1") == (3 << 8, "Executor exited with status 3")
    sandbox = tmp_path / "sandboxes" / "c1"
    assert (sandbox / "stdout").read_text() == "out\n"
    assert (sandbox / "stderr").read_text() == "err\n"
    assert containerizer.containers() == []
    assert await wait(containerizer, "c1") == (3 << 8, "Executor exited with status 3")


async def test_death_by_signal_is_reported_as_such(
    containerizer: Containerizer, tmp_path: Path
) -> None:
    await containerizer.launch(config(tmp_path, "c1", shell("kill -KILL $$")))
    assert await wait(containerizer, "c1") == (
        signal.SIGKILL,
        "Executor terminated with signal Killed",
    )


async def test_environment_is_exactly_the_given_one(
    containerizer: Containerizer, tmp_path: Path
) -> None:
    command = shell("env", A="from command", B="b")
    cfg = ContainerConfig("c1", tmp_path / "sb", command, {"A": "from agent", "MESOS_X": "x"})
    await containerizer.launch(cfg)
    assert (await wait(containerizer, "c1"))[0] == 0
    lines = set((tmp_path / "sb" / "stdout").read_text().splitlines())
    assert {"A=from command", "B=b", "MESOS_X=x", f"MESOS_SANDBOX={tmp_path / 'sb'}"} <= lines
    assert f"PATH={launcher.DEFAULT_PATH}" in lines
    assert not any(line.startswith("HOME=") for line in lines)  # the agent's own env stays out


async def test_argv_form_runs_value_with_arguments(
    containerizer: Containerizer, tmp_path: Path
) -> None:
    command = mesos_pb2.CommandInfo(shell=False, value="/bin/echo", arguments=["echo", "a b", "c"])
    await containerizer.launch(config(tmp_path, "c1", command))
    assert (await wait(containerizer, "c1"))[0] == 0
    assert (tmp_path / "sandboxes" / "c1" / "stdout").read_text() == "a b c\n"


async def test_a_command_that_cannot_be_executed_exits_1_saying_why(
    containerizer: Containerizer, tmp_path: Path
) -> None:
    command = mesos_pb2.CommandInfo(shell=False, value="/nonexistent/executor")
    await containerizer.launch(config(tmp_path, "c1", command))
    assert (await wait(containerizer, "c1"))[0] == 1 << 8
    stderr = (tmp_path / "sandboxes" / "c1" / "stderr").read_text()
    assert "Failed to execute command '/nonexistent/executor'" in stderr


async def test_the_tree_left_behind_by_an_exited_executor_is_killed(
    containerizer: Containerizer, tmp_path: Path
) -> None:
    script = "sleep 60 & echo $! > pids; (setsid sleep 60 & echo $! >> pids); sleep 0.2"
    await containerizer.launch(config(tmp_path, "c1", shell(script)))
    assert (await wait(containerizer, "c1"))[0] == 0
    pids = pids_in(tmp_path / "sandboxes" / "c1" / "pids")
    assert len(pids) == 2 and gone(pids)


async def test_processes_outliving_a_killed_launcher_are_still_found_and_killed(
    containerizer: Containerizer, tmp_path: Path
) -> None:
    # A task in its own process group (as our executors start tasks), and then someone
    # SIGKILLs the launcher's process group: the task is orphaned to init, but stays in the
    # container's session, so the containerizer still kills it.
    regroup = "import os; os.setpgid(0, 0); os.execvp('sleep', ['sleep', '60'])"
    script = f'{sys.executable} -c "{regroup}" & echo $! > pids; wait'
    launched = await containerizer.launch(config(tmp_path, "c1", shell(script)))
    pids_file = tmp_path / "sandboxes" / "c1" / "pids"
    await until(lambda: pids_file.exists() and bool(pids_in(pids_file)))  # `>` creates it empty
    task = pids_in(pids_file)
    await until(
        lambda: launcher.stat(task[0]) is not None and launcher.stat(task[0]).pgrp == task[0]
    )  # type: ignore[union-attr]
    os.killpg(launched.pid, signal.SIGKILL)
    termination = await asyncio.wait_for(containerizer.wait("c1"), 20)
    assert termination.status == signal.SIGKILL
    await until(lambda: gone(task))


async def test_destroy_gives_sigterm_then_grace_then_sigkill_to_the_whole_tree(
    containerizer: Containerizer, tmp_path: Path
) -> None:
    script = (
        "trap '' TERM; sleep 60 & echo $! > pids; (setsid sleep 60 & echo $! >> pids);"
        " (sleep 60 & echo $! >> pids) ; echo ready > ready; wait"
    )
    launched = await containerizer.launch(config(tmp_path, "c1", shell(script)))
    ready = tmp_path / "sandboxes" / "c1" / "ready"
    await until(ready.exists)
    pids = pids_in(tmp_path / "sandboxes" / "c1" / "pids")
    started = time.monotonic()
    termination = await containerizer.destroy("c1", grace_s=0.5)
    assert time.monotonic() - started >= 0.5
    assert termination.status == signal.SIGKILL
    assert gone([*pids, launched.pid])
    assert await containerizer.destroy("c1") == termination  # idempotent
    assert containerizer.containers() == []


async def test_destroy_lets_a_task_that_honours_sigterm_exit_cleanly(
    containerizer: Containerizer, tmp_path: Path
) -> None:
    script = "trap 'echo bye; exit 0' TERM; echo ready > ready; while true; do sleep 0.05; done"
    await containerizer.launch(config(tmp_path, "c1", shell(script)))
    await until((tmp_path / "sandboxes" / "c1" / "ready").exists)
    termination = await containerizer.destroy("c1", grace_s=10)
    assert termination.status == 0
    assert (tmp_path / "sandboxes" / "c1" / "stdout").read_text() == "bye\n"


async def test_usage_comes_from_the_process_tree(
    containerizer: Containerizer, tmp_path: Path
) -> None:
    cpus = mesos_pb2.Resource(name="cpus", type=mesos_pb2.Value.SCALAR)
    cpus.scalar.value = 0.5
    mem = mesos_pb2.Resource(name="mem", type=mesos_pb2.Value.SCALAR)
    mem.scalar.value = 64
    script = "(while true; do :; done) & echo ready > ready; wait"
    await containerizer.launch(config(tmp_path, "c1", shell(script), resources=(cpus, mem)))
    await until((tmp_path / "sandboxes" / "c1" / "ready").exists)
    usage = await containerizer.usage("c1")
    for _ in range(200):  # the busy loop shows up within a few clock ticks
        if usage.cpus_user_time_secs + usage.cpus_system_time_secs > 0:
            break
        await asyncio.sleep(0.05)
        usage = await containerizer.usage("c1")
    assert usage.processes >= 3 and usage.threads >= usage.processes
    assert usage.cpus_user_time_secs + usage.cpus_system_time_secs > 0
    assert usage.mem_rss_bytes > 0
    assert usage.cpus_limit == 0.5 and usage.mem_limit_bytes == 64 << 20
    assert abs(usage.timestamp - time.time()) < 60
    await containerizer.update("c1", [cpus])
    assert not (await containerizer.usage("c1")).HasField("mem_limit_bytes")
    with pytest.raises(ContainerError, match="Unknown container 'nope'"):
        await containerizer.usage("nope")


async def test_a_failed_fetch_fails_the_launch_naming_the_uri(
    containerizer: Containerizer, tmp_path: Path
) -> None:
    command = shell("true")
    command.uris.add(value=str(tmp_path / "missing.tar.gz"))
    with pytest.raises(ContainerError) as failure:
        await containerizer.launch(config(tmp_path, "c1", command))
    assert str(failure.value).startswith(f"Failed to fetch '{tmp_path / 'missing.tar.gz'}': ")
    assert "No such file or directory" in str(failure.value)
    assert containerizer.containers() == []
    assert "Failed to fetch" in (tmp_path / "sandboxes" / "c1" / "stderr").read_text()


async def test_bad_launches_are_refused(containerizer: Containerizer, tmp_path: Path) -> None:
    with pytest.raises(ContainerError, match="no such user"):
        await containerizer.launch(config(tmp_path, "c1", shell("true"), user="no-such-user-x"))
    secret = shell("true")
    secret.environment.variables.add(name="S", type=mesos_pb2.Environment.Variable.SECRET)
    with pytest.raises(ContainerError, match="'S' is a secret"):
        await containerizer.launch(config(tmp_path, "c2", secret))
    await containerizer.launch(config(tmp_path, "c3", shell("sleep 5")))
    with pytest.raises(ContainerError, match="already exists"):
        await containerizer.launch(config(tmp_path, "c3", shell("true")))


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
async def test_runs_as_the_given_user(containerizer: Containerizer, tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    (tmp_path / "sandboxes").mkdir(mode=0o755)
    await containerizer.launch(
        config(tmp_path, "c1", shell("id -u > uid; touch mine"), user="nobody")
    )
    assert (await wait(containerizer, "c1"))[0] == 0
    sandbox = tmp_path / "sandboxes" / "c1"
    assert (sandbox / "uid").read_text().strip() == "65534"
    assert (sandbox / "mine").stat().st_uid == 65534


AGENT = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    from meseta.agent.containerizer import Containerizer, ContainerConfig
    from meseta.proto.mesos.v1 import mesos_pb2

    async def main():
        work = Path(sys.argv[1])
        containerizer = Containerizer(work / "work")
        until = "while [ ! -e ../end-{} ]; do sleep 0.02; done"
        for cid, command in (("alive", "echo $$ > pid; " + until.format("alive") + "; exit 7"),
                             ("dead", until.format("dead") + "; exit 5"),
                             ("orphan", "echo $$ > pid; sleep 60")):
            cfg = ContainerConfig(cid, work / cid, mesos_pb2.CommandInfo(value=command), {})
            launched = await containerizer.launch(cfg)
            print(json.dumps([cid, launched.pid, launched.start_time]), flush=True)
        await asyncio.sleep(600)

    asyncio.run(main())
    """
)


async def test_reattaches_after_the_agent_is_killed_with_9(tmp_path: Path) -> None:
    agent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", AGENT, str(tmp_path), stdout=asyncio.subprocess.PIPE
    )
    recovered = Containerizer(tmp_path / "work")
    try:
        assert agent.stdout is not None
        launched = {}
        for _ in range(3):
            line = await asyncio.wait_for(agent.stdout.readline(), 20)
            cid, pid, started = json.loads(line)
            launched[cid] = Launched(cid, pid, started)
        await until((tmp_path / "alive" / "pid").exists)
        await until((tmp_path / "orphan" / "pid").exists)
        agent.kill()
        await agent.wait()
        (tmp_path / "end-dead").touch()  # "dead" ends while no agent watches
        await until(
            lambda: not launcher.is_alive(launched["dead"].pid, launched["dead"].start_time)
        )
        assert launcher.is_alive(launched["alive"].pid, launched["alive"].start_time)

        ids = await recovered.recover([launched["alive"], launched["dead"]])
        assert ids == ["alive"]
        assert recovered.containers() == ["alive"]
        # The dead one ended while no agent watched: its launcher recorded the status.
        assert await wait(recovered, "dead") == (5 << 8, "Executor exited with status 5")
        # The orphan (not checkpointed) was killed, with its whole tree.
        orphan_task = pids_in(tmp_path / "orphan" / "pid")
        assert gone([launched["orphan"].pid, *orphan_task])
        # The survivor is no longer our child; we still learn how it ends.
        (tmp_path / "end-alive").touch()
        assert await wait(recovered, "alive") == (7 << 8, "Executor exited with status 7")
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()
        for cid in recovered.containers():
            await recovered.destroy(cid)
        for item in locals().get("launched", {}).values():
            launcher.kill_tree(item.pid, item.start_time)


async def test_recover_of_a_container_whose_pid_was_reused_reports_unknown_status(
    tmp_path: Path,
) -> None:
    containerizer = Containerizer(tmp_path / "work")
    stale = Launched("old", os.getpid(), 1)  # our own pid, but another start time
    assert await containerizer.recover([stale]) == []
    assert await wait(containerizer, "old") == (None, "Executor exited with unknown status")


async def until(predicate: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.02)


class LimitingIsolator:
    """Records the calls, asks the launcher to join a file, and reports a memory limit on cue."""

    name = "test/limiting"

    def __init__(self, join_file: Path) -> None:
        self.join_file = join_file
        self.calls: list[str] = []
        self.hit = asyncio.Event()

    async def recover(self, containers: Sequence[RecoveredContainer]) -> None:
        self.calls.append("recover")

    async def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        self.calls.append("prepare")
        return LaunchInfo(environment={"ISOLATED": "yes"}, join_files=(str(self.join_file),))

    async def isolate(self, container_id: str, pid: int, start_time: int) -> None:
        self.calls.append("isolate")

    async def watch(self, container_id: str) -> Limitation:
        await self.hit.wait()
        return Limitation(
            mesos_pb2.TaskStatus.REASON_CONTAINER_LIMITATION_MEMORY, "Memory limit exceeded"
        )

    async def update(self, container_id: str, resources: Sequence[mesos_pb2.Resource]) -> None:
        self.calls.append("update")

    async def usage(self, container_id: str) -> mesos_pb2.ResourceStatistics:
        return mesos_pb2.ResourceStatistics(timestamp=0, mem_limit_bytes=1)

    async def cleanup(self, container_id: str) -> None:
        self.calls.append("cleanup")


async def test_an_isolator_limitation_destroys_the_container_with_its_reason(
    tmp_path: Path,
) -> None:
    isolator = LimitingIsolator(tmp_path / "cgroup.procs")
    containerizer = Containerizer(tmp_path / "work", isolators=[isolator])
    try:
        script = "echo $ISOLATED > isolated; sleep 60"
        launched = await containerizer.launch(config(tmp_path, "c1", shell(script)))
        await until((tmp_path / "sandboxes" / "c1" / "isolated").exists)
        assert (tmp_path / "cgroup.procs").read_text() == str(launched.pid)
        await containerizer.update("c1", [])
        isolator.hit.set()
        termination = await asyncio.wait_for(containerizer.wait("c1"), 20)
        assert termination.reason == mesos_pb2.TaskStatus.REASON_CONTAINER_LIMITATION_MEMORY
        assert termination.message == "Memory limit exceeded"
        assert termination.status == signal.SIGKILL
        assert isolator.calls == ["prepare", "isolate", "update", "cleanup"]
        assert (tmp_path / "sandboxes" / "c1" / "isolated").read_text() == "yes\n"
    finally:
        for cid in containerizer.containers():
            await containerizer.destroy(cid)


async def test_pending_names_the_launches_and_destroys_under_way(
    containerizer: Containerizer, tmp_path: Path
) -> None:
    script = "trap '' TERM; echo ready > ready; while true; do sleep 0.05; done"
    await containerizer.launch(config(tmp_path, "c1", shell(script)))
    await until((tmp_path / "sandboxes" / "c1" / "ready").exists)
    assert containerizer.pending() == []
    destroying = asyncio.get_running_loop().create_task(containerizer.destroy("c1", grace_s=1.0))
    await asyncio.sleep(0.2)  # inside the grace period: the destroy is under way
    assert containerizer.pending() == [("MesosContainerizer::destroy", "c1")]
    await asyncio.wait_for(destroying, 20)
    assert containerizer.pending() == []
