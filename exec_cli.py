"""`meseta exec TASK_ID COMMAND [ARG...]`: run a command inside a running task's container, as
Mesos's `mesos task exec` does, over the same agent calls:

- LAUNCH_NESTED_CONTAINER_SESSION starts the command in a nested container of the task's
  container; the response streams its stdout and stderr until it ends;
- with `-i`, ATTACH_CONTAINER_INPUT streams our stdin to it (EOF included); with `-t` the command
  gets a terminal sized as ours, our terminal is put in raw mode, and resizes follow;
- WAIT_CONTAINER gives its exit status, which becomes ours (128 + N for signal N).

The task is found in any master's `/state`; its container id is in its statuses' container
status, and its agent is its `pid`'s address.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import signal
import sys
import termios
import threading
import tty
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import orjson

from meseta.api import recordio
from meseta.cluster_cli import (
    CliError,
    Json,
    agent_url,
    find_task,
    get_json,
    master_url,
    run_command,
)

JSON = "application/json"
RECORDIO = "application/recordio"
HEARTBEAT_S = 30.0


def container_of(task: Json) -> Json:
    """The task's container id, from its statuses (all carry it once it has one)."""
    for status in task.get("statuses", []):
        container_id = status.get("container_status", {}).get("container_id")
        if container_id and container_id.get("value"):
            return dict(container_id)
    raise CliError("No container found for the task; it may still be starting, try again")


def record(body: Json) -> bytes:
    return recordio.encode(orjson.dumps(body))


def input_call(process_io: Json) -> bytes:
    attach = {"type": "PROCESS_IO", "process_io": process_io}
    return record({"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": attach})


def stdin_record(data: bytes) -> bytes:
    encoded = base64.b64encode(data).decode()
    return input_call({"type": "DATA", "data": {"type": "STDIN", "data": encoded}})


def size_record() -> bytes | None:
    info = terminal_info()
    if not info:
        return None
    return input_call({"type": "CONTROL", "control": {"type": "TTY_INFO", "tty_info": info}})


class Session:
    def __init__(self, http: aiohttp.ClientSession, url: str, container_id: Json) -> None:
        self.http = http
        self.url = url
        self.container_id = container_id
        self.inputs: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def output(self, command: list[str], terminal: bool) -> None:
        """Start the command and copy its output to ours until it ends."""
        body: Json = {
            "container_id": self.container_id,
            "command": {"value": command[0], "arguments": command, "shell": False},
        }
        if terminal:
            body["container"] = {"type": "MESOS", "tty_info": terminal_info()}
        call = {"type": "LAUNCH_NESTED_CONTAINER_SESSION", "launch_nested_container_session": body}
        headers = {"Content-Type": JSON, "Accept": RECORDIO, "Message-Accept": JSON}
        async with self.http.post(self.url, data=orjson.dumps(call), headers=headers) as reply:
            if reply.status != 200:
                text = (await reply.read()).decode(errors="replace")
                raise CliError(f"Launching the command failed: {reply.status} {text}")
            decoder = recordio.Decoder()
            async for chunk in reply.content.iter_any():
                for payload in decoder.feed(chunk):
                    write_output(orjson.loads(payload))

    async def input(self) -> None:
        """Send what `inputs` gets (None ends it) over one ATTACH_CONTAINER_INPUT stream."""
        first = record({"type": "ATTACH_CONTAINER_INPUT",
                        "attach_container_input": {"type": "CONTAINER_ID",
                                                   "container_id": self.container_id}})  # fmt: skip

        async def body() -> AsyncIterator[bytes]:
            yield first
            while (item := await self.inputs.get()) is not None:
                yield item

        headers = {"Content-Type": RECORDIO, "Message-Content-Type": JSON, "Accept": JSON}
        async with self.http.post(self.url, data=body(), headers=headers) as reply:
            text = (await reply.read()).decode(errors="replace")
            # 500: the command ended before its input was attached (Mesos's CLI ignores it too).
            if reply.status not in (200, 500):
                raise CliError(f"Attaching the input failed: {reply.status} {text}")

    async def wait(self) -> int:
        call = {"type": "WAIT_CONTAINER", "wait_container": {"container_id": self.container_id}}
        headers = {"Content-Type": JSON, "Accept": JSON}
        async with self.http.post(self.url, data=orjson.dumps(call), headers=headers) as reply:
            body = await reply.read()
            if reply.status != 200:
                raise CliError(f"Waiting for the command failed: {reply.status} {body.decode()}")
        status = int(orjson.loads(body)["wait_container"].get("exit_status", 0))
        return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def terminal_info() -> Json:
    try:
        columns, rows = os.get_terminal_size(sys.stdout.fileno())
    except OSError:
        return {}
    return {"window_size": {"rows": rows, "columns": columns}}


def write_output(message: Json) -> None:
    if message.get("type") != "DATA":
        return  # heartbeats
    data = base64.b64decode(message["data"].get("data", ""))
    out = sys.stderr if message["data"].get("type") == "STDERR" else sys.stdout
    out.buffer.write(data)
    out.flush()


def feed_stdin(session: Session, terminal: bool) -> None:
    """Our stdin, read in a daemon thread (it may be a terminal, a pipe or a file, and a read
    blocked on it must not keep us from exiting once the command has ended), then EOF."""
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()

    def put(item: bytes) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: we are exiting
            loop.call_soon_threadsafe(session.inputs.put_nowait, item)

    def read() -> None:
        with contextlib.suppress(OSError):
            while data := os.read(fd, 4096):
                put(stdin_record(data))
        if not terminal:  # a terminal's EOF is the EOT its user typed
            put(stdin_record(b""))

    threading.Thread(target=read, name="stdin", daemon=True).start()


async def heartbeats(session: Session) -> None:
    interval = {"nanoseconds": int(HEARTBEAT_S * 1e9)}
    beat = input_call(
        {"type": "CONTROL", "control": {"type": "HEARTBEAT", "heartbeat": {"interval": interval}}}
    )
    while True:
        await asyncio.sleep(HEARTBEAT_S)
        session.inputs.put_nowait(beat)


@contextlib.contextmanager
def raw_terminal(session: Session) -> Iterator[None]:
    """Our terminal in raw mode, its size sent on every SIGWINCH; restored afterwards."""
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    loop = asyncio.get_running_loop()

    def resized() -> None:
        size = size_record()
        if size is not None:
            session.inputs.put_nowait(size)

    tty.setraw(fd, when=termios.TCSANOW)
    loop.add_signal_handler(signal.SIGWINCH, resized)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGWINCH)
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)


async def exec_command(options: argparse.Namespace) -> int:
    if options.tty and not sys.stdin.isatty():
        raise CliError("Must be running in a terminal to pass --tty")
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        state = await get_json(http, f"{master_url(options.master)}/state")
        task = find_task(state, options.task_id)
        if task.get("state") != "TASK_RUNNING":
            raise CliError(f"Task '{options.task_id}' is not running ({task.get('state')})")
        agents = {agent["id"]: agent for agent in state.get("slaves", [])}
        agent = agents.get(task.get("slave_id", ""))
        if agent is None:
            raise CliError(f"The agent of task '{options.task_id}' is not registered any more")
        child = {"parent": container_of(task), "value": str(uuid.uuid4())}
        session = Session(http, f"{agent_url(agent)}/api/v1", child)
        helpers: list[asyncio.Task[Any]] = []
        with raw_terminal(session) if options.tty else contextlib.nullcontext():
            output = asyncio.ensure_future(session.output(options.command, options.tty))
            if options.interactive:
                feed_stdin(session, options.tty)
                feeding = (heartbeats(session), session.input())
                helpers = [asyncio.ensure_future(coroutine) for coroutine in feeding]
            try:
                await output
            finally:
                session.inputs.put_nowait(None)
                for helper in helpers:
                    helper.cancel()
                for helper in helpers:
                    with contextlib.suppress(asyncio.CancelledError, CliError, aiohttp.ClientError):
                        await helper
        return await session.wait()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--master", default="127.0.0.1:5050", help="HOST:PORT of any master")
    parser.add_argument("--interactive", "-i", action="store_true", help="send our stdin to it")
    parser.add_argument("--tty", "-t", action="store_true", help="give it a terminal (with -i)")
    parser.add_argument("task_id", help="the running task to run the command in")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments")
    parser.set_defaults(run=run)


def run(options: argparse.Namespace) -> int:
    if not options.command:
        print("meseta exec: a command to run is required", file=sys.stderr)
        return 2
    return run_command("exec", exec_command(options))
