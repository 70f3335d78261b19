"""Nested containers through the agent operator API, on a real agent with a running task: what
`mesos task exec` does (a session's output, an input stream, WAIT_CONTAINER), terminals, the
nested-container life cycle, what ends them (their client leaving, their task ending) and what
an agent restart recovers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from support.daemon_harness import launch, next_update, running_agent, states_until, until
from support.fake_scheduler import FakeScheduler, framework_info
from support.master_harness import MasterHandle, running_master

from meseta.agent import launcher
from meseta.agent.containerizer import ContainerConfig, Containerizer, Launched
from meseta.agent.daemon import Agent
from meseta.agent.nested import NestedConfig, NestedContainers
from meseta.api import recordio
from meseta.log.testing import free_port
from meseta.proto.mesos.v1 import mesos_pb2

pytestmark = pytest.mark.timeout(60)
JSON = "application/json"
RECORDIO = "application/recordio"
Json = dict[str, Any]


@dataclass
class Task:
    """A running command task `sleep 60` and the agent's operator API."""

    agent: Agent
    scheduler: FakeScheduler
    http: aiohttp.ClientSession
    container_id: str
    sandbox: Path
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = f"http://127.0.0.1:{self.agent.flags_.port}/api/v1"

    def child(self, value: str | None = None) -> Json:
        """A new nested container id under the task's container, as `mesos task exec` makes."""
        return {"parent": {"value": self.container_id}, "value": value or str(uuid.uuid4())}

    async def call(self, body: Json, accept: str = JSON) -> tuple[int, bytes]:
        headers = {"Content-Type": JSON, "Accept": accept}
        async with self.http.post(self.url, data=orjson.dumps(body), headers=headers) as reply:
            return reply.status, await reply.read()

    async def wait(self, container_id: Json) -> Json:
        call = {"type": "WAIT_CONTAINER", "wait_container": {"container_id": container_id}}
        status, body = await self.call(call)
        assert status == 200, body
        return orjson.loads(body)["wait_container"]  # type: ignore[no-any-return]

    async def session(self, container_id: Json, command: Json, **extra: Any) -> Output:
        """LAUNCH_NESTED_CONTAINER_SESSION as the Mesos CLI sends it; its output, read on."""
        body = {"container_id": container_id, "command": command, **extra}
        return await self.output(
            {"type": "LAUNCH_NESTED_CONTAINER_SESSION", "launch_nested_container_session": body}
        )

    async def output(self, call: Json) -> Output:
        headers = {"Content-Type": JSON, "Accept": RECORDIO, "Message-Accept": JSON}
        reply = await self.http.post(self.url, data=orjson.dumps(call), headers=headers)
        assert reply.status == 200, await reply.text()
        assert reply.headers["Content-Type"] == RECORDIO
        assert reply.headers["Message-Content-Type"] == JSON
        return Output(reply)

    async def attach_input(self, container_id: Json, records: AsyncIterator[bytes]) -> int:
        """ATTACH_CONTAINER_INPUT as the Mesos CLI streams it (chunked, Connection: close)."""
        headers = {"Content-Type": RECORDIO, "Message-Content-Type": JSON, "Accept": JSON,
                   "Connection": "close"}  # fmt: skip
        first = {
            "type": "ATTACH_CONTAINER_INPUT",
            "attach_container_input": {"type": "CONTAINER_ID", "container_id": container_id},
        }

        async def body() -> AsyncIterator[bytes]:
            yield recordio.encode(orjson.dumps(first))
            async for record in records:
                yield record

        async with self.http.post(self.url, data=body(), headers=headers) as reply:
            await reply.read()
            return reply.status


class Output:
    """A streamed ProcessIO response, gathered per stream until it ends."""

    def __init__(self, reply: aiohttp.ClientResponse) -> None:
        self.reply = reply
        self.data: dict[str, bytes] = {"STDOUT": b"", "STDERR": b""}
        self.decoder = recordio.Decoder()

    async def until_end(self) -> dict[str, bytes]:
        async for chunk in self.reply.content.iter_any():
            self.take(chunk)
        self.reply.release()
        return self.data

    async def until(self, text: bytes) -> None:
        while text not in self.data["STDOUT"]:
            chunk = await self.reply.content.readany()
            assert chunk, f"the output ended before {text!r}: {self.data}"
            self.take(chunk)

    def take(self, chunk: bytes) -> None:
        for record in self.decoder.feed(chunk):
            message = orjson.loads(record)
            if message["type"] == "DATA":
                kind = message["data"]["type"]
                self.data[kind] += base64.b64decode(message["data"]["data"])


def stdin(data: bytes) -> bytes:
    return recordio.encode(orjson.dumps({
        "type": "ATTACH_CONTAINER_INPUT",
        "attach_container_input": {"type": "PROCESS_IO", "process_io": {
            "type": "DATA", "data": {"type": "STDIN", "data": base64.b64encode(data).decode()}}},
    }))  # fmt: skip


def control(body: Json) -> bytes:
    return recordio.encode(orjson.dumps({
        "type": "ATTACH_CONTAINER_INPUT",
        "attach_container_input": {"type": "PROCESS_IO", "process_io": {
            "type": "CONTROL", "control": body}},
    }))  # fmt: skip


HEARTBEAT = control({"type": "HEARTBEAT", "heartbeat": {"interval": {"nanoseconds": 30 * 10**9}}})


def shell(script: str) -> Json:
    """A command as the Mesos CLI sends it: argv, no shell."""
    return {"value": "/bin/sh", "arguments": ["/bin/sh", "-c", script], "shell": False}


@pytest.fixture
async def master() -> AsyncIterator[MasterHandle]:
    async with running_master() as handle:
        yield handle


@pytest.fixture
async def task(master: MasterHandle, tmp_path: Path) -> AsyncIterator[Task]:
    async with (
        running_agent(tmp_path, [master.address]) as agent,
        FakeScheduler(master.url) as scheduler,
        aiohttp.ClientSession() as http,
    ):
        await until(lambda: agent.counters.registered, "registration")
        stream, _ = await scheduler.subscribe()
        await launch(scheduler, stream, ("t1", "sleep 60"))
        while (await next_update(scheduler, stream))["state"] != "TASK_RUNNING":
            pass
        (executor,) = agent.core.executors()
        yield Task(agent, scheduler, http, executor.container_id, Path(executor.directory))


def exit_code(status: int) -> int:
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)


async def test_a_session_streams_the_commands_output_then_wait_gives_its_status(
    task: Task,
) -> None:
    child = task.child()
    script = "echo out; echo err >&2; pwd; echo $MESOS_SANDBOX $MESOS_FRAMEWORK_ID; exit 3"
    output = await (await task.session(child, shell(script))).until_end()
    framework = task.agent.core.executors()[0].framework_id
    # A DEBUG container works in its parent's sandbox, with its parent's environment.
    assert output["STDOUT"].decode() == f"out\n{task.sandbox}\n{task.sandbox} {framework}\n"
    assert output["STDERR"] == b"err\n"
    # The container's sandbox keeps its output, as Mesos's container logger does.
    sandbox = task.sandbox / "containers" / child["value"]
    assert (sandbox / "stderr").read_bytes() == b"err\n"
    assert (sandbox / "stdout").read_bytes() == output["STDOUT"]
    assert exit_code((await task.wait(child))["exit_status"]) == 3
    status, body = await task.call({"type": "WAIT_NESTED_CONTAINER",
                                    "wait_nested_container": {"container_id": child}})  # fmt: skip
    assert status == 200 and orjson.loads(body) == {
        "type": "WAIT_NESTED_CONTAINER",
        "wait_nested_container": {"exit_status": 3 << 8},
    }
    remove = {"type": "REMOVE_NESTED_CONTAINER", "remove_nested_container": {"container_id": child}}
    assert (await task.call(remove))[0] == 200
    wait = {"type": "WAIT_CONTAINER", "wait_container": {"container_id": child}}
    assert await task.call(wait) == (
        404,
        f"Container {task.container_id}.{child['value']} cannot be found".encode(),
    )


async def test_input_reaches_the_command_as_the_mesos_cli_sends_it(task: Task) -> None:
    child = task.child()
    output = await task.session(child, {"value": "cat", "arguments": ["cat"], "shell": False})

    async def nothing() -> AsyncIterator[bytes]:
        return
        yield b""

    # The CLI first tries a connection with the first record alone; the container lives on.
    assert await task.attach_input(child, nothing()) == 200
    release = asyncio.Event()

    async def typed() -> AsyncIterator[bytes]:
        yield HEARTBEAT
        yield stdin(b"hello\n")
        await release.wait()
        yield stdin(b"")  # EOF

    # Another client attaches to the output too (`mesos task attach`).
    watcher = await task.output({"type": "ATTACH_CONTAINER_OUTPUT",
                                 "attach_container_output": {"container_id": child}})  # fmt: skip
    attached = asyncio.ensure_future(task.attach_input(child, typed()))
    await output.until(b"hello\n")
    # One input connection at a time.
    assert await task.attach_input(child, nothing()) == 409
    release.set()
    assert await attached == 200
    assert (await output.until_end())["STDOUT"] == b"hello\n"
    assert (await watcher.until_end())["STDOUT"] == b"hello\n"
    assert (await task.wait(child))["exit_status"] == 0


async def test_a_terminal_has_the_asked_size_and_follows_resizes(task: Task) -> None:
    child = task.child()
    script = "tty; stty size; read line; stty size"
    terminal = {"type": "MESOS", "tty_info": {"window_size": {"rows": 24, "columns": 80}}}
    output = await task.session(child, shell(script), container=terminal)
    await output.until(b"24 80")

    async def typed() -> AsyncIterator[bytes]:
        yield control({"type": "TTY_INFO",
                       "tty_info": {"window_size": {"rows": 30, "columns": 100}}})  # fmt: skip
        yield stdin(b"go\r")

    assert await task.attach_input(child, typed()) == 200
    text = (await output.until_end())["STDOUT"]
    assert text.startswith(b"/dev/pts/") and b"30 100" in text
    assert output.data["STDERR"] == b""  # a terminal is one stream
    assert (await task.wait(child))["exit_status"] == 0


async def test_a_nested_container_runs_until_killed_and_is_removed(task: Task) -> None:
    child = task.child("n1")
    body = {"container_id": child, "command": {"value": "echo hi; exec sleep 60"}}
    launch_call = {"type": "LAUNCH_NESTED_CONTAINER", "launch_nested_container": body}
    assert (await task.call(launch_call))[0] == 200
    assert (await task.call(launch_call))[0] == 202  # it exists already
    sandbox = task.sandbox / "containers" / "n1"
    await until(lambda: (sandbox / "stdout").exists()
                and (sandbox / "stdout").read_bytes() == b"hi\n", "its output")  # fmt: skip
    get = {"type": "GET_CONTAINERS", "get_containers": {"show_nested": True}}
    listed = orjson.loads((await task.call(get))[1])["get_containers"]["containers"]
    assert [c["container_id"] for c in listed] == [{"value": task.container_id}, child]
    pid, _ = launched_pid(task.agent.nested, (task.container_id, "n1"))
    assert listed[1]["container_status"]["executor_pid"] == pid
    assert listed[1]["resource_statistics"]["processes"] >= 2  # the launcher and `sleep`
    attach = {"type": "ATTACH_CONTAINER_OUTPUT", "attach_container_output": {"container_id": child}}
    assert await task.call(attach) == (
        500,
        b"I/O switchboard server was disabled for this container",
    )
    remove = {"type": "REMOVE_NESTED_CONTAINER", "remove_nested_container": {"container_id": child}}
    assert await task.call(remove) == (500, b"Nested container has not terminated yet")
    kill = {"type": "KILL_NESTED_CONTAINER",
            "kill_nested_container": {"container_id": child, "signal": signal.SIGTERM}}  # fmt: skip
    assert (await task.call(kill))[0] == 200
    assert exit_code((await task.wait(child))["exit_status"]) == -signal.SIGTERM
    assert (await task.call(remove))[0] == 200
    assert not sandbox.exists()


async def test_a_launch_that_fails_says_why_and_leaves_nothing_to_wait_for(task: Task) -> None:
    child = task.child()
    command = {"value": "true", "user": "no-such-user-here"}
    call = {"type": "LAUNCH_NESTED_CONTAINER",
            "launch_nested_container": {"container_id": child, "command": command}}  # fmt: skip
    assert await task.call(call) == (
        400, b"Failed to get user information for 'no-such-user-here': no such user"
    )  # fmt: skip
    wait = {"type": "WAIT_CONTAINER", "wait_container": {"container_id": child}}
    assert (await task.call(wait))[0] == 404
    assert task.agent.nested.live() == []


async def test_a_session_whose_client_leaves_is_destroyed(task: Task) -> None:
    child = task.child()
    output = await task.session(child, shell("echo ready; exec sleep 60"))
    await output.until(b"ready")
    output.reply.close()
    waited = await asyncio.wait_for(task.wait(child), 10)
    assert exit_code(waited["exit_status"]) == -signal.SIGKILL


async def test_nested_containers_end_with_their_task(task: Task) -> None:
    child = task.child()
    body = {"container_id": child, "command": {"value": "exec sleep 60"}}
    call = {"type": "LAUNCH_NESTED_CONTAINER", "launch_nested_container": body}
    assert (await task.call(call))[0] == 200
    waited = asyncio.ensure_future(task.wait(child))
    reply = await task.scheduler.call("KILL", kill={"task_id": {"value": "t1"}})
    assert reply.status == 202, reply.text
    assert exit_code((await asyncio.wait_for(waited, 15))["exit_status"]) == -signal.SIGKILL
    assert task.agent.nested.live() == []


def launched_pid(nested: NestedContainers, path: tuple[str, ...]) -> tuple[int, int]:
    pid, started = (int(part) for part in (nested.runtime(path) / "pid").read_text().split())
    return pid, started


SLEEP = mesos_pb2.CommandInfo(value="exec sleep 60")


@dataclass
class Restart:
    """A root container `root` launched by a first agent's containerizer, and the
    containerizer of the agent after it, on the same work directory."""

    first: NestedContainers
    root: Launched
    sandbox: Path
    then: NestedContainers

    async def launch(self, path: tuple[str, ...], command: mesos_pb2.CommandInfo = SLEEP,
                     debug: bool = False) -> tuple[int, int]:  # fmt: skip
        config = NestedConfig(path, command, debug, None, self.sandbox, {}, None)
        assert await self.first.launch(config)
        return launched_pid(self.first, path)


@contextlib.asynccontextmanager
async def agents_in_turn(tmp_path: Path) -> AsyncIterator[Restart]:
    sandbox = tmp_path / "sandbox"
    first = NestedContainers(Containerizer(tmp_path))
    root = await first.containerizer.launch(ContainerConfig("root", sandbox, SLEEP, {}))
    restart = Restart(first, root, sandbox, NestedContainers(Containerizer(tmp_path)))
    try:
        yield restart
    finally:
        for containers in (restart.then, first):
            with contextlib.suppress(Exception):
                await containers.destroy_under("root")
            with contextlib.suppress(Exception):
                await containers.containerizer.destroy("root")


async def test_a_restarted_agent_recovers_default_containers_and_kills_debug_ones(
    tmp_path: Path,
) -> None:
    """As Mesos: DEFAULT nested containers go on under a recovered root, WAIT answers for one
    that ended while no agent ran, and a DEBUG one (its switchboard died with the agent) is
    killed, its termination kept."""
    async with agents_in_turn(tmp_path) as restart:
        kept = await restart.launch(("root", "kept"))
        inner = await restart.launch(("root", "kept", "inner"))
        ends = await restart.launch(
            ("root", "ends"), mesos_pb2.CommandInfo(value="sleep 0.5; exit 3")
        )
        session = await restart.launch(("root", "debug"), debug=True)
        restart.first.release()  # the agent is gone; one container ends meanwhile
        await until(lambda: not launcher.is_alive(*ends), "the short container to end")

        recovered = restart.then
        assert await recovered.containerizer.recover([restart.root]) == ["root"]
        assert sorted(recovered.live()) == [("root", "kept"), ("root", "kept", "inner")]
        assert launcher.is_alive(*kept) and launcher.is_alive(*inner)
        assert not launcher.is_alive(*session)
        ended = await recovered.wait(("root", "ends"))
        assert ended is not None and ended.status is not None
        assert exit_code(ended.status) == 3
        killed = await recovered.wait(("root", "debug"))
        assert killed is not None and killed.status == signal.SIGKILL
        usage = await recovered.usage(("root", "kept"))
        assert usage is not None and usage[0] == kept[0] and usage[1].processes >= 2
        # Recovered containers are supervised again: they end with their root, inner first.
        waited = asyncio.ensure_future(recovered.wait(("root", "kept")))
        await recovered.containerizer.destroy("root")
        assert exit_code((await asyncio.wait_for(waited, 10)).status or 0) == -signal.SIGKILL
        assert recovered.live() == []
        assert not launcher.is_alive(*inner)


async def test_nested_containers_of_a_root_that_ended_are_killed_at_recovery(
    tmp_path: Path,
) -> None:
    async with agents_in_turn(tmp_path) as restart:
        child = await restart.launch(("root", "child"))
        restart.first.release()
        launcher.kill_tree(restart.root.pid, restart.root.start_time)  # while no agent runs
        assert await restart.then.containerizer.recover([restart.root]) == []
        assert not launcher.is_alive(*child)
        assert restart.then.live() == []
        assert not (tmp_path / "containers" / "root").exists()


async def test_an_agent_restart_keeps_a_nested_container_going(
    master: MasterHandle, tmp_path: Path
) -> None:
    """Through the operator API of two agents in turn: the second lists, kills and waits for
    the container the first launched."""
    port = free_port()
    async with (
        FakeScheduler(master.url) as scheduler,
        aiohttp.ClientSession() as http,
    ):
        stream, _ = await scheduler.subscribe(framework_info(checkpoint=True))
        first = running_agent(tmp_path, [master.address], port=port, keep_executors=True)
        async with first as agent:
            await until(lambda: agent.counters.registered, "registration")
            await launch(scheduler, stream, ("t1", "sleep 60"))
            await states_until(scheduler, stream, "TASK_RUNNING")
            (executor,) = agent.core.executors()
            task = Task(agent, scheduler, http, executor.container_id, Path(executor.directory))
            child = task.child("kept")
            body = {"container_id": child, "command": {"value": "exec sleep 60"}}
            call = {"type": "LAUNCH_NESTED_CONTAINER", "launch_nested_container": body}
            assert (await task.call(call))[0] == 200
            pid = launched_pid(agent.nested, (task.container_id, "kept"))
        assert launcher.is_alive(*pid)
        async with running_agent(tmp_path, [master.address], port=port) as again:
            get = {"type": "GET_CONTAINERS", "get_containers": {"show_nested": True}}
            listed = orjson.loads((await task.call(get))[1])["get_containers"]["containers"]
            assert [c["container_id"] for c in listed] == [{"value": task.container_id}, child]
            assert listed[1]["container_status"]["executor_pid"] == pid[0]
            kill = {"type": "KILL_CONTAINER", "kill_container": {"container_id": child}}
            assert (await task.call(kill))[0] == 200
            assert exit_code((await task.wait(child))["exit_status"]) == -signal.SIGKILL
            assert again.nested.live() == []


async def meseta_exec(master: MasterHandle, *argv: str, stdin: bytes = b"") -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "meseta.cli", "exec", f"--master={master.address}", *argv,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_meseta_exec_runs_a_command_in_the_tasks_container(
    master: MasterHandle, task: Task
) -> None:
    code, out, err = await meseta_exec(master, "t1", "sh", "-c", "echo hi; echo oops >&2; exit 4")
    assert (code, out, err) == (4, "hi\n", "oops\n")
    assert await meseta_exec(master, "-i", "t1", "cat", stdin=b"typed\n") == (0, "typed\n", "")
    code, _, err = await meseta_exec(master, "nope", "true")
    assert code == 1 and "No task with id 'nope'" in err


async def test_containers_nest_at_the_second_level(task: Task) -> None:
    outer = task.child("outer")
    body = {"container_id": outer, "command": {"value": "exec sleep 60"}}
    assert (await task.call({"type": "LAUNCH_CONTAINER", "launch_container": body}))[0] == 200
    inner = {"parent": outer, "value": "inner"}
    # A DEBUG container works where its parent does: the outer one's own sandbox.
    output = await (await task.session(inner, shell("pwd; echo $MESOS_SANDBOX"))).until_end()
    sandbox = task.sandbox / "containers" / "outer"
    assert output["STDOUT"].decode() == f"{sandbox}\n{sandbox}\n"
    assert (sandbox / "containers" / "inner").is_dir()
    resources = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}]
    again = {"container_id": {"parent": outer, "value": "x"}, "command": {"value": "true"},
             "resources": resources}  # fmt: skip
    status, text = await task.call({"type": "LAUNCH_CONTAINER", "launch_container": again})
    assert status == 400 and b"cannot specify resources" in text
    # Destroying the outer container takes what is nested in it first.
    kill = {"type": "KILL_CONTAINER", "kill_container": {"container_id": outer}}
    assert (await task.call(kill))[0] == 200
    assert exit_code((await task.wait(outer))["exit_status"]) == -signal.SIGKILL
    assert task.agent.nested.live() == []


async def test_the_containers_endpoint_selects_as_mesos_does(task: Task) -> None:
    base = task.url.removesuffix("/api/v1") + "/containers"
    executor = task.agent.core.executors()[0]

    async def listed(**query: str) -> tuple[int, Any]:
        """The listed containers' ids, or the refusal."""
        async with task.http.get(base, params=query) as reply:
            body = await reply.read()
            if reply.status != 200:
                return reply.status, body.decode()
            return reply.status, [entry["container_id"] for entry in orjson.loads(body)]

    everything = [task.container_id]
    assert await listed() == (200, everything)
    assert (await listed(container_id=task.container_id))[1] == everything
    assert (await listed(framework_id=executor.framework_id))[1] == everything
    both = {"framework_id": executor.framework_id, "executor_id": executor.executor_id}
    assert (await listed(**both))[1] == everything
    assert (await listed(container_id="other"))[1] == []
    status, text = await listed(executor_id=executor.executor_id)
    assert status == 400 and text.startswith("Supported query parameters are container_id only")
