"""`meseta execute`: run one task through the v1 scheduler API and follow it, like mesos-execute.

It subscribes as a framework (following 307s to the leader and keeping the `Mesos-Stream-Id`),
accepts the first offer that holds the requested resources (declining the rest), launches one
command task, prints each status update and acknowledges it, and tears the framework down once
the task is terminal. The exit code is 0 for TASK_FINISHED and 1 otherwise; 2 for bad flags.
If the stream breaks (master failover), it subscribes again with its framework id and carries on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

import aiohttp

from meseta.api import mesos_json, recordio
from meseta.master import resources as resource_values
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.scheduler import scheduler_pb2

JSON = "application/json"
SCHEDULER_PATH = "/api/v1/scheduler"
MAX_REDIRECTS = 5
FAILOVER_TIMEOUT_S = 60.0  # lets a resubscription after a master failover keep the task
TERMINAL = frozenset(
    {
        mesos_pb2.TASK_FINISHED,
        mesos_pb2.TASK_FAILED,
        mesos_pb2.TASK_KILLED,
        mesos_pb2.TASK_LOST,
        mesos_pb2.TASK_ERROR,
        mesos_pb2.TASK_DROPPED,
        mesos_pb2.TASK_GONE,
        mesos_pb2.TASK_GONE_BY_OPERATOR,
    }
)
Call = scheduler_pb2.Call
Event = scheduler_pb2.Event


class ExecuteError(Exception):
    """Ends the run with a one-line message and exit code 1."""


def parse_resources(text: str) -> resource_values.Resources:
    """The `--resources` flag in Mesos syntax; ExecuteError says what is wrong."""
    try:
        parsed = resource_values.parse(text)
    except resource_values.ResourceError as error:
        raise ExecuteError(f"Invalid resources '{text}': {error}") from None
    if not parsed:
        raise ExecuteError(f"Invalid resources '{text}': no resources")
    return parsed


def parse_masters(text: str) -> list[str]:
    masters = []
    for address in filter(None, (part.strip() for part in text.split(","))):
        address = address.removeprefix("http://")
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ExecuteError(f"Invalid --master '{address}': expected HOST:PORT[,HOST:PORT...]")
        masters.append(address)
    if not masters:
        raise ExecuteError("Missing --master=HOST:PORT")
    return masters


@dataclass(slots=True)
class TaskRequest:
    name: str
    command: str
    resources: resource_values.Resources
    role: str
    shell: bool = True
    environment: dict[str, str] = field(default_factory=dict)
    checkpoint: bool = False

    def framework_info(self, framework_id: str | None) -> mesos_pb2.FrameworkInfo:
        info = mesos_pb2.FrameworkInfo(
            user="",
            name="meseta-execute instance",
            failover_timeout=FAILOVER_TIMEOUT_S,
            checkpoint=self.checkpoint,
            roles=[self.role],
        )
        info.capabilities.add(type=mesos_pb2.FrameworkInfo.Capability.MULTI_ROLE)
        if framework_id:
            info.id.value = framework_id
        return info

    def task_info(self, offer: mesos_pb2.Offer) -> mesos_pb2.TaskInfo:
        task = mesos_pb2.TaskInfo(name=self.name)
        task.task_id.value = self.name
        task.agent_id.CopyFrom(offer.agent_id)
        task.resources.extend(resource_values.to_protos(self.resources, allocation_role=self.role))
        task.command.shell = self.shell
        if self.shell:
            task.command.value = self.command
        else:
            argv = self.command.split()
            task.command.value = argv[0] if argv else ""
            task.command.arguments.extend(argv)
        for name, value in self.environment.items():
            task.command.environment.variables.add(name=name, value=value)
        return task

    def fits(self, offer: mesos_pb2.Offer) -> bool:
        offered = resource_values.from_protos(offer.resources)
        return offered.contains(self.resources)


def status_lines(status: mesos_pb2.TaskStatus) -> list[str]:
    """The update as mesos-execute prints it: a headline, then message, source and reason."""
    state = mesos_pb2.TaskState.Name(status.state)
    lines = [f"Received status update {state} for task '{status.task_id.value}'"]
    if status.HasField("message"):
        lines.append(f"  message: '{status.message}'")
    if status.HasField("source"):
        lines.append(f"  source: {mesos_pb2.TaskStatus.Source.Name(status.source)}")
    if status.HasField("reason"):
        lines.append(f"  reason: {mesos_pb2.TaskStatus.Reason.Name(status.reason)}")
    return lines


@dataclass(slots=True)
class Session:
    """One subscription: the leader it reached and the headers every later call carries."""

    http: aiohttp.ClientSession
    leader: str
    stream_id: str
    response: aiohttp.ClientResponse

    async def call(self, call: scheduler_pb2.Call) -> None:
        async with self.http.post(
            f"http://{self.leader}{SCHEDULER_PATH}",
            data=mesos_json.to_json(call),
            headers={"Content-Type": JSON, "Mesos-Stream-Id": self.stream_id},
            allow_redirects=False,
        ) as response:
            if response.status != 202:
                text = (await response.text()).strip()
                raise ExecuteError(f"{Call.Type.Name(call.type)} failed: {response.status} {text}")

    async def events(self) -> AsyncGenerator[scheduler_pb2.Event, None]:
        decoder = recordio.Decoder()
        async for chunk in self.response.content.iter_any():
            for record in decoder.feed(chunk):
                yield mesos_json.from_json(record, Event)


async def subscribe(
    http: aiohttp.ClientSession, masters: list[str], info: mesos_pb2.FrameworkInfo
) -> Session:
    """SUBSCRIBE at the leader: each master in turn, following up to 5 redirects from each."""
    call = Call(type=Call.SUBSCRIBE)
    call.subscribe.framework_info.CopyFrom(info)
    if info.HasField("id"):
        call.framework_id.CopyFrom(info.id)
    body = mesos_json.to_json(call)
    problems = []
    for master in masters:
        address = master
        for _ in range(MAX_REDIRECTS):
            try:
                response = await http.post(
                    f"http://{address}{SCHEDULER_PATH}",
                    data=body,
                    headers={"Content-Type": JSON, "Accept": JSON},
                    allow_redirects=False,
                )
            except (aiohttp.ClientError, OSError) as error:
                problems.append(f"{address}: {error}")
                break
            if response.status == 307:
                location = response.headers.get("Location", "")
                response.release()
                # Mesos sends a protocol-relative `//host:port/path`: keep only host:port.
                address = location.removeprefix("http:").lstrip("/").split("/", 1)[0] or address
                continue
            if response.status != 200:
                text = (await response.text()).strip()
                response.release()
                problems.append(f"{address}: {response.status} {text}")
                break
            return Session(http, address, response.headers.get("Mesos-Stream-Id", ""), response)
        else:
            problems.append(f"{master}: too many redirects")
    raise ExecuteError("Cannot subscribe to a master (" + "; ".join(problems) + ")")


@dataclass(slots=True)
class Run:
    request: TaskRequest
    say: Callable[[str], None]
    framework_id: str | None = None
    launched: bool = False
    final: mesos_pb2.TaskStatus | None = None

    async def handle(self, session: Session, event: scheduler_pb2.Event) -> bool:
        """React to one event; True once the task is terminal and acknowledged."""
        if event.type == Event.SUBSCRIBED:
            if self.framework_id is None:
                self.say(f"Subscribed with ID {event.subscribed.framework_id.value}")
            self.framework_id = event.subscribed.framework_id.value
        elif event.type == Event.OFFERS:
            await self.offers(session, list(event.offers.offers))
        elif event.type == Event.UPDATE:
            return await self.update(session, event.update.status)
        elif event.type == Event.ERROR:
            raise ExecuteError(f"Master sent an error: {event.error.message}")
        return False

    def call(self, kind: int) -> scheduler_pb2.Call:
        call = Call(type=kind)  # type: ignore[arg-type]
        call.framework_id.value = self.framework_id or ""
        return call

    async def offers(self, session: Session, offers: list[mesos_pb2.Offer]) -> None:
        declined = []
        for offer in offers:
            if self.launched or not self.request.fits(offer):
                declined.append(offer)
                continue
            accept = self.call(Call.ACCEPT)
            accept.accept.offer_ids.add().CopyFrom(offer.id)
            operation = accept.accept.operations.add(type=mesos_pb2.Offer.Operation.LAUNCH)
            operation.launch.task_infos.add().CopyFrom(self.request.task_info(offer))
            await session.call(accept)
            self.launched = True
            self.say(f"Submitted task '{self.request.name}' to agent '{offer.agent_id.value}'")
        if declined:
            decline = self.call(Call.DECLINE)
            decline.decline.offer_ids.extend(offer.id for offer in declined)
            await session.call(decline)

    async def update(self, session: Session, status: mesos_pb2.TaskStatus) -> bool:
        if status.task_id.value != self.request.name:
            return False
        for line in status_lines(status):
            self.say(line)
        if status.uuid:
            ack = self.call(Call.ACKNOWLEDGE)
            ack.acknowledge.agent_id.CopyFrom(status.agent_id)
            ack.acknowledge.task_id.CopyFrom(status.task_id)
            ack.acknowledge.uuid = status.uuid
            await session.call(ack)
        if status.state in TERMINAL:
            self.final = status
            return True
        return False


async def execute(request: TaskRequest, masters: list[str], say: Callable[[str], None]) -> int:
    run = Run(request, say)
    timeout = aiohttp.ClientTimeout(total=None, connect=5, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        failures = 0
        while run.final is None:
            try:
                session = await subscribe(http, masters, request.framework_info(run.framework_id))
            except ExecuteError:
                failures += 1
                if run.framework_id is None or failures > 30:
                    raise
                await asyncio.sleep(1.0)  # the masters are electing a new leader
                continue
            failures = 0
            try:
                async with contextlib.aclosing(session.events()) as events:
                    async for event in events:
                        if await run.handle(session, event):
                            break
            except (aiohttp.ClientError, recordio.RecordIOError, OSError):
                pass  # the stream broke: subscribe again
            finally:
                session.response.release()
            if run.final is not None:
                with contextlib.suppress(ExecuteError, aiohttp.ClientError, OSError):
                    await session.call(run.call(Call.TEARDOWN))
            elif run.framework_id is None:
                raise ExecuteError("The master closed the subscription before SUBSCRIBED")
    assert run.final is not None
    return 0 if run.final.state == mesos_pb2.TASK_FINISHED else 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--master", required=True, help="HOST:PORT[,HOST:PORT...] of the masters")
    parser.add_argument("--name", required=True, help="task name (also its id)")
    parser.add_argument("--command", required=True, help="shell command to run")
    parser.add_argument("--resources", default="cpus:1;mem:128", help="Mesos resource syntax")
    parser.add_argument("--role", default="*", help="role the framework subscribes with")
    parser.add_argument(
        "--shell", default=True, action=argparse.BooleanOptionalAction,
        help="run the command with /bin/sh -c (--no-shell: split it into argv)",
    )  # fmt: skip
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="task environment"
    )
    parser.add_argument("--checkpoint", action="store_true", help="task survives agent restarts")


def request_from(options: argparse.Namespace) -> TaskRequest:
    environment = {}
    for item in options.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ExecuteError(f"Invalid --env '{item}': expected NAME=VALUE")
        environment[name] = value
    return TaskRequest(
        name=options.name,
        command=options.command,
        resources=parse_resources(options.resources),
        role=options.role,
        shell=options.shell,
        environment=environment,
        checkpoint=options.checkpoint,
    )


def run(options: argparse.Namespace) -> int:
    def say(text: str) -> None:
        print(text, flush=True)

    try:
        request = request_from(options)
        masters = parse_masters(options.master)
    except ExecuteError as error:
        print(f"meseta execute: {error}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(execute(request, masters, say))
    except ExecuteError as error:
        print(f"meseta execute: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
