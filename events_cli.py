"""`meseta events`: follow the operator event stream, one line per event.

    meseta events [--master HOST:PORT[,HOST:PORT...]] [--json]

It reads the Server-Sent Events at `/api/v1/events` (api/sse.py) of any master replica: first
SUBSCRIBED (the whole state, summarized), then every TASK_ADDED, TASK_UPDATED, AGENT_ADDED,
AGENT_REMOVED, FRAMEWORK_ADDED/UPDATED/REMOVED as the log applies it. Each line starts with the
event's id, its log index. When the replica goes away (killed, partitioned) the command moves on
to the next master given and resumes with `Last-Event-ID`: no event is lost or shown twice,
because indexes name the same entries on every replica. A `resync` (the stream fell too far
behind) is reported and the stream starts again from a fresh SUBSCRIBED. `--json` prints each
event as one JSON object per line instead: `{"id", "type", "event"}` with the event as Mesos's
JSON. Ctrl-C stops it; exit code 1 when no master can be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from meseta.cluster_cli import DEFAULT_MASTER, CliError, Json, master_url, run_command

RETRY_S = 1.0  # between rounds over every master, while none answers
ROUNDS = 30  # rounds before giving up (about RETRY_S * ROUNDS with no master at all)


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    data: str
    id: str | None  # None when the event had no id field

    def json(self) -> Any:
        return orjson.loads(self.data)


class SseParser:
    """text/event-stream, a line at a time: `feed` returns the event a blank line completes.
    Comment lines (keep-alive pings) are only counted."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.data: list[str] = []
        self.comments = 0

    def feed(self, line: str) -> SseEvent | None:
        line = line.rstrip("\r\n")
        if not line:
            if not (self.data or self.fields):
                return None
            fields, data = self.fields, self.data
            self.fields, self.data = {}, []
            return SseEvent(fields.get("event", "message"), "\n".join(data), fields.get("id"))
        if line.startswith(":"):
            self.comments += 1
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self.data.append(value)
        else:
            self.fields[name] = value
        return None


async def read_events(response: aiohttp.ClientResponse) -> AsyncIterator[SseEvent]:
    """The events of a text/event-stream body, as they arrive."""
    parser = SseParser()
    async for raw in response.content:
        event = parser.feed(raw.decode())
        if event is not None:
            yield event


def _value(message: Json, name: str) -> str:
    return str(message.get(name, {}).get("value", ""))


def describe(kind: str, event: Json) -> str:
    """A line's text after the id and type: what an operator wants to see of the event."""
    if kind == "SUBSCRIBED":
        state = event.get("subscribed", {}).get("get_state", {})
        tasks = state.get("get_tasks", {})
        counts = {
            "agents": len(state.get("get_agents", {}).get("agents", [])),
            "frameworks": len(state.get("get_frameworks", {}).get("frameworks", [])),
            "tasks": len(tasks.get("tasks", [])),
            "completed tasks": len(tasks.get("completed_tasks", [])),
        }
        return ", ".join(f"{count} {name}" for name, count in counts.items())
    if kind == "TASK_ADDED":
        task = event.get("task_added", {}).get("task", {})
        return (
            f"task {_value(task, 'task_id')} ({task.get('name', '')}) of framework "
            f"{_value(task, 'framework_id')} on agent {_value(task, 'agent_id')}: "
            f"{task.get('state', '')}"
        )
    if kind == "TASK_UPDATED":
        updated = event.get("task_updated", {})
        status = updated.get("status", {})
        state = updated.get("state", "")
        parts = [f"task {_value(status, 'task_id')}: {state}"]
        if status.get("state", state) != state:  # e.g. a RUNNING that arrives once it ended
            parts.append(f"(status {status['state']})")
        for name in ("source", "reason", "message"):
            if status.get(name):
                parts.append(f"{name}={status[name]}")
        return " ".join(parts)
    if kind == "AGENT_ADDED":
        info = event.get("agent_added", {}).get("agent", {}).get("agent_info", {})
        return f"agent {_value(info, 'id')} ({info.get('hostname', '')})"
    if kind == "AGENT_REMOVED":
        return f"agent {_value(event.get('agent_removed', {}), 'agent_id')}"
    if kind in ("FRAMEWORK_ADDED", "FRAMEWORK_UPDATED"):
        framework = event.get(kind.lower(), {}).get("framework", {})
        info = framework.get("framework_info", {})
        flags = [name for name in ("active", "connected") if framework.get(name)]
        return f"framework {_value(info, 'id')} ({info.get('name', '')}) {' '.join(flags)}".rstrip()
    if kind == "FRAMEWORK_REMOVED":
        info = event.get("framework_removed", {}).get("framework_info", {})
        return f"framework {_value(info, 'id')} ({info.get('name', '')})"
    return ""


def line_of(sse: SseEvent, as_json: bool) -> str:
    event: Json = orjson.loads(sse.data) if sse.data else {}
    if as_json:
        return orjson.dumps({"id": sse.id, "type": sse.event, "event": event}).decode()
    return f"{sse.id or '-'} {sse.event} {describe(sse.event, event)}".rstrip()


class Follower:
    """Follows the stream across masters; `last_id` is where a new connection resumes."""

    def __init__(self, masters: list[str], write: Callable[[str], None], as_json: bool) -> None:
        self.masters = masters
        self.write = write
        self.as_json = as_json
        self.last_id: str | None = None

    async def follow(self, session: aiohttp.ClientSession) -> None:
        rounds = 0
        while True:
            for master in self.masters:
                if await self.follow_one(session, master):
                    rounds = 0  # it streamed: start counting failures afresh
            rounds += 1
            if rounds >= ROUNDS:
                raise CliError(f"no master answered: {', '.join(self.masters)}")
            await asyncio.sleep(RETRY_S)

    async def follow_one(self, session: aiohttp.ClientSession, master: str) -> bool:
        """Stream from `master` until it ends; whether it streamed anything."""
        headers = {"Accept": "text/event-stream"}
        if self.last_id:
            headers["Last-Event-ID"] = self.last_id
        streamed = False
        try:
            async with session.get(f"{master_url(master)}/api/v1/events", headers=headers) as got:
                if got.status != 200:
                    return False
                async for sse in read_events(got):
                    streamed = True
                    if sse.event == "resync":  # events were lost: start again from the state
                        reason = orjson.loads(sse.data).get("reason", "")
                        print(f"meseta events: resync ({reason})", file=sys.stderr)
                        self.last_id = None
                        return True
                    self.write(line_of(sse, self.as_json))
                    self.last_id = sse.id or self.last_id
        except (aiohttp.ClientError, TimeoutError, ValueError):
            pass
        return streamed


async def run_async(options: argparse.Namespace) -> None:
    masters = [address for address in options.master.split(",") if address]
    # No total timeout: a stream lasts as long as it is followed; pings keep reads alive.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await Follower(masters, print_flushed, options.json).follow(session)


def print_flushed(line: str) -> None:
    print(line, flush=True)


def run(options: argparse.Namespace) -> int:
    return run_command("events", run_async(options))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--master",
        default=DEFAULT_MASTER,
        help="HOST:PORT of a master, or several separated by commas to fail over between",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per event")
    parser.set_defaults(run=run)
