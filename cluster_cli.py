"""Operator commands that read a running cluster, like Mesos's `mesos-ps`, `mesos-cat`,
`mesos-tail` and `mesos-ls` and the `mesos agent|framework|task list` CLI:

    meseta agents     [--master HOST:PORT] [--json]
    meseta frameworks [--master HOST:PORT] [--json] [--all]
    meseta tasks      [--master HOST:PORT] [--json] [--all] [--framework ID]
    meseta cat TASK_ID [FILE] [--master HOST:PORT] [--follow]
    meseta ls  TASK_ID [FOLDER] [--master HOST:PORT] [--json]

They read `/state` from any master replica (every replica answers reads) and, for `cat` and
`ls`, the task's sandbox through its agent's `/files/*`, as the web UI does. `--json` prints the
listed objects themselves, as /state and /files/browse have them (as the DC/OS CLI's `--json`
does), rather than the table's text. Exit codes: 0, 1 when the cluster cannot be read or the
task is not found, 2 for bad flags.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

import aiohttp
import orjson
from rich.console import Console
from rich.table import Table

DEFAULT_MASTER = "127.0.0.1:5050"
FOLLOW_INTERVAL_S = 1.0
READ_CHUNK = 64 * 1024  # bytes copied at a time from a sandbox file
PIPE_WIDTH = 10_000
JSON_HELP = "the listed objects as the cluster writes them (Mesos's JSON), for scripts"
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a process killed by it
Json = dict[str, Any]


class CliError(Exception):
    """Ends the command with a one-line message and exit code 1."""


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    try:
        async with session.get(url) as response:
            body = await response.read()
            if response.status != 200:
                text = body.decode(errors="replace").strip()
                raise CliError(f"GET {url}: {response.status} {text}")
            return orjson.loads(body)
    except (aiohttp.ClientError, TimeoutError) as error:
        raise CliError(f"GET {url}: {error or type(error).__name__}") from None
    except orjson.JSONDecodeError:
        raise CliError(f"GET {url}: the answer is not JSON") from None


def master_url(address: str) -> str:
    return address if address.startswith(("http://", "https://")) else f"http://{address}"


def agent_url(agent: Json) -> str:
    """`slave(1)@ip:port` -> http://ip:port (the pid is how Mesos says where an agent is)."""
    pid = str(agent.get("pid", ""))
    address = pid.partition("@")[2] or f"{agent['hostname']}:{agent['port']}"
    return f"http://{address}"


# -- tables ----------------------------------------------------------------------------------


def amount(resources: Json, name: str) -> str:
    value = float(resources.get(name, 0) or 0)
    return f"{value:g}"


def agent_rows(state: Json) -> list[dict[str, str]]:
    rows = []
    for agent in state.get("slaves", []):
        total, used = agent.get("resources", {}), agent.get("used_resources", {})
        rows.append(
            {
                "ID": agent["id"],
                "HOSTNAME": agent["hostname"],
                "ACTIVE": agent_activity(agent),
                "CPUS": f"{amount(used, 'cpus')}/{amount(total, 'cpus')}",
                "MEM (MB)": f"{amount(used, 'mem')}/{amount(total, 'mem')}",
                "DISK (MB)": f"{amount(used, 'disk')}/{amount(total, 'disk')}",
                "VERSION": str(agent.get("version", "")),
            }
        )
    return rows


def agent_activity(agent: Json) -> str:
    """yes, or no with why when an operator deactivated or drained it."""
    if agent.get("active"):
        return "yes"
    drain = agent.get("drain_info")
    if isinstance(drain, dict):
        return f"no ({str(drain.get('state', 'draining')).lower()})"
    return "no (deactivated)" if agent.get("deactivated") else "no"


def frameworks_of(state: Json, everything: bool) -> list[Json]:
    found = list(state.get("frameworks", []))
    if everything:
        found += state.get("completed_frameworks", [])
    return found


def framework_rows(state: Json, everything: bool) -> list[dict[str, str]]:
    rows = []
    for framework in frameworks_of(state, everything):
        used = framework.get("used_resources", {})
        rows.append(
            {
                "ID": framework["id"],
                "NAME": framework.get("name", ""),
                "ACTIVE": "yes" if framework.get("active") else "no",
                "TASKS": str(len(framework.get("tasks", []))),
                "CPUS": amount(used, "cpus"),
                "MEM (MB)": amount(used, "mem"),
                "DISK (MB)": amount(used, "disk"),
            }
        )
    return rows


def tasks_of(state: Json, everything: bool, framework_id: str | None) -> list[Json]:
    found = []
    for framework in frameworks_of(state, everything):
        if framework_id is not None and framework["id"] != framework_id:
            continue
        lists = ["tasks", "unreachable_tasks"] + (["completed_tasks"] if everything else [])
        for name in lists:
            found += framework.get(name, [])
    return found


def task_rows(state: Json, everything: bool, framework_id: str | None) -> list[dict[str, str]]:
    hostnames = {agent["id"]: agent["hostname"] for agent in state.get("slaves", [])}
    rows = []
    for task in tasks_of(state, everything, framework_id):
        statuses = task.get("statuses") or [{}]
        healthy = statuses[-1].get("healthy")
        rows.append(
            {
                "ID": task["id"],
                "NAME": task.get("name", ""),
                "STATE": task.get("state", ""),
                "HEALTHY": "" if healthy is None else ("yes" if healthy else "no"),
                "FRAMEWORK": task.get("framework_id", ""),
                "AGENT": hostnames.get(task.get("slave_id", ""), task.get("slave_id", "")),
            }
        )
    return rows


def print_rows(rows: list[dict[str, str]], records: list[Json], as_json: bool, empty: str) -> None:
    """A table of `rows`, or with `--json` the `records` they show, as the master or agent
    wrote them (Mesos's /state objects, /files/browse entries): numbers, not display text."""
    if as_json:
        sys.stdout.write(orjson.dumps(records, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if not rows:
        print(empty)
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in rows[0]:
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(*row.values())
    # A terminal gets what fits it; a pipe or a file gets whole values.
    Console(width=None if sys.stdout.isatty() else PIPE_WIDTH).print(table)


# -- cat -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sandbox:
    agent_url: str
    directory: str


def find_task(state: Json, task_id: str) -> Json:
    matches = [task for task in tasks_of(state, True, None) if task["id"] == task_id]
    if not matches:
        raise CliError(f"No task with id '{task_id}' is known to the master")
    if len(matches) > 1:
        frameworks = ", ".join(sorted(task["framework_id"] for task in matches))
        raise CliError(f"Task id '{task_id}' is used by several frameworks: {frameworks}")
    return matches[0]


def executors_with(agent_state: Json, framework_id: str, task_id: str) -> Iterable[Json]:
    frameworks = [*agent_state.get("frameworks", []), *agent_state.get("completed_frameworks", [])]
    for framework in frameworks:
        if framework.get("id") != framework_id:
            continue
        executors = [*framework.get("executors", []), *framework.get("completed_executors", [])]
        for executor in executors:
            task_lists = ("tasks", "queued_tasks", "completed_tasks")
            ids = {_task_id(task) for name in task_lists for task in executor.get(name, [])}
            if task_id in ids:
                yield executor


def _task_id(task: Json) -> str:
    """Task objects say `id`; queued TaskInfos (protobuf JSON) say `task_id.value`."""
    return str(task.get("id") or task.get("task_id", {}).get("value", ""))


async def sandbox_of(session: aiohttp.ClientSession, state: Json, task_id: str) -> Sandbox:
    task = find_task(state, task_id)
    agents = {agent["id"]: agent for agent in state.get("slaves", [])}
    agent = agents.get(task.get("slave_id", ""))
    if agent is None:
        raise CliError(f"The agent of task '{task_id}' is not registered any more")
    url = agent_url(agent)
    agent_state = await get_json(session, f"{url}/state")
    found = list(executors_with(agent_state, task["framework_id"], task_id))
    if not found:
        raise CliError(f"Agent {agent['hostname']} no longer knows task '{task_id}'")
    return Sandbox(url, found[-1]["directory"])


async def copy_from(
    session: aiohttp.ClientSession, sandbox: Sandbox, name: str, offset: int, out: BinaryIO
) -> int:
    """Write the file's bytes from `offset` on to `out`, exactly as stored, and return the new
    offset; -1 when the file is now shorter than `offset` (truncated).

    Read from `/files/download` with a Range, not `/files/read`: that one's `data` is text,
    so binary bytes and a multi-byte character cut at a chunk's end come back altered, and
    counting its characters drifts from the byte offsets. An agent that ignores Range (as
    Mesos's does) sends the whole file, and the bytes before `offset` are skipped.
    """
    path = f"{sandbox.directory}/{name}"
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    url = f"{sandbox.agent_url}/files/download"
    try:
        async with session.get(url, params={"path": path}, headers=headers) as response:
            if response.status == 416:  # nothing at `offset`: "bytes */<size>" says why
                size = response.headers.get("Content-Range", "").rpartition("/")[2]
                return -1 if size.isdigit() and int(size) < offset else offset
            if response.status == 404:
                raise CliError(f"No file '{name}' in the sandbox of the task ({sandbox.directory})")
            if response.status not in (200, 206):
                body = (await response.read()).decode(errors="replace")
                raise CliError(f"Reading {path}: {response.status} {body}")
            skip = offset if response.status == 200 else 0
            async for chunk in response.content.iter_chunked(READ_CHUNK):
                if skip:
                    dropped = min(skip, len(chunk))
                    chunk, skip = chunk[dropped:], skip - dropped
                if chunk:
                    out.write(chunk)
                    offset += len(chunk)
    except (aiohttp.ClientError, TimeoutError) as error:
        raise CliError(f"Reading {path}: {error or type(error).__name__}") from None
    out.flush()
    return -1 if skip else offset


async def cat(options: argparse.Namespace, session: aiohttp.ClientSession) -> None:
    state = await get_json(session, f"{master_url(options.master)}/state")
    sandbox = await sandbox_of(session, state, options.task_id)
    offset = 0
    while True:
        offset = await copy_from(session, sandbox, options.file, offset, sys.stdout.buffer)
        if offset < 0:  # as tail -f does: say so, and follow the file from its new start
            print(f"meseta cat: {options.file}: file truncated", file=sys.stderr)
            offset = 0
            continue
        if not options.follow:
            return
        await asyncio.sleep(FOLLOW_INTERVAL_S)


# -- ls --------------------------------------------------------------------------------------


def sandbox_path(sandbox: Sandbox, path: str) -> str:
    """`path` inside the sandbox (the agent refuses anything that leaves it)."""
    inner = path.strip("/")
    return f"{sandbox.directory}/{inner}" if inner else sandbox.directory


def sorted_listing(listing: list[Json]) -> list[Json]:
    return sorted(listing, key=lambda e: str(e.get("path", "")))


def listing_rows(listing: list[Json]) -> list[dict[str, str]]:
    rows = []
    for entry in sorted_listing(listing):
        name = str(entry.get("path", "")).rpartition("/")[2]
        mode = str(entry.get("mode", ""))
        mtime = entry.get("mtime")
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(mtime)) if mtime else ""
        rows.append(
            {
                "MODE": mode,
                "UID": str(entry.get("uid", "")),
                "GID": str(entry.get("gid", "")),
                "SIZE": str(entry.get("size", "")),
                "MODIFIED": when,
                "NAME": name + ("/" if mode.startswith("d") else ""),
            }
        )
    return rows


async def list_dir(session: aiohttp.ClientSession, sandbox: Sandbox, path: str) -> list[Json]:
    """The entries of a folder of the sandbox, as the agent's `/files/browse` lists them."""
    where = sandbox_path(sandbox, path)
    url = f"{sandbox.agent_url}/files/browse"
    try:
        async with session.get(url, params={"path": where}) as response:
            body = await response.read()
    except (aiohttp.ClientError, TimeoutError) as error:
        raise CliError(f"Listing {where}: {error or type(error).__name__}") from None
    if response.status == 404:
        raise CliError(f"No folder '{path}' in the sandbox of the task ({sandbox.directory})")
    if response.status != 200:
        raise CliError(f"Listing {where}: {response.status} {body.decode(errors='replace')}")
    listing: list[Json] = orjson.loads(body)
    return listing


async def ls(options: argparse.Namespace, session: aiohttp.ClientSession) -> None:
    state = await get_json(session, f"{master_url(options.master)}/state")
    sandbox = await sandbox_of(session, state, options.task_id)
    listing = await list_dir(session, sandbox, options.path)
    print_rows(listing_rows(listing), sorted_listing(listing), options.json, "Empty.")


# -- the commands ----------------------------------------------------------------------------


async def run_async(options: argparse.Namespace) -> None:
    timeout = aiohttp.ClientTimeout(total=None if options.view == "cat" else 60, sock_connect=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        if options.view == "cat":
            await cat(options, session)
            return
        if options.view == "ls":
            await ls(options, session)
            return
        state = await get_json(session, f"{master_url(options.master)}/state")
        if options.view == "agents":
            agents = list(state.get("slaves", []))
            print_rows(agent_rows(state), agents, options.json, "No agents.")
        elif options.view == "frameworks":
            rows = framework_rows(state, options.all)
            frameworks = frameworks_of(state, options.all)
            print_rows(rows, frameworks, options.json, "No frameworks.")
        else:
            rows = task_rows(state, options.all, options.framework)
            tasks = tasks_of(state, options.all, options.framework)
            print_rows(rows, tasks, options.json, "No tasks.")


def run(options: argparse.Namespace) -> int:
    return run_command(options.view, run_async(options))


def run_command(name: str, main: Coroutine[Any, Any, int | None]) -> int:
    """Run a command's coroutine: what it returns (0 for None) or 0 when Ctrl-C stops it, 1 on
    a CliError (said on stderr as `meseta <name>: ...`), and quietly 141 (as SIGPIPE would)
    when what reads its output goes away (`meseta events | head`)."""
    code: int | None = None
    try:
        with contextlib.suppress(KeyboardInterrupt):
            code = asyncio.run(main)
    except CliError as error:
        print(f"meseta {name}: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # Nothing more can be written; keep the interpreter's final flush from failing too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code or 0


def add_arguments(parser: argparse.ArgumentParser, view: str) -> None:
    parser.add_argument("--master", default=DEFAULT_MASTER, help="HOST:PORT of any master")
    if view == "cat":
        parser.add_argument("task_id", help="the task whose sandbox to read")
        parser.add_argument("file", nargs="?", default="stdout", help="default: stdout")
        parser.add_argument("--follow", "-f", action="store_true", help="keep printing (tail -f)")
    elif view == "ls":
        parser.add_argument("task_id", help="the task whose sandbox to list")
        parser.add_argument("path", nargs="?", default="", help="a folder in it (default: its top)")
        parser.add_argument("--json", action="store_true", help=JSON_HELP)
    else:
        parser.add_argument("--json", action="store_true", help=JSON_HELP)
    if view in ("frameworks", "tasks"):
        parser.add_argument("--all", action="store_true", help="completed ones too")
    if view == "tasks":
        parser.add_argument("--framework", default=None, help="only this framework's tasks")
    parser.set_defaults(view=view, run=run)
