"""`meseta execute`: run a task through the v1 scheduler API and follow it, like mesos-execute.

It subscribes as a framework (following 307s to the leader and keeping the `Mesos-Stream-Id`),
accepts the first offer that holds the requested resources (declining the rest), launches the
task (from `--name`/`--command`/`--resources`, or a TaskInfo given with `--task`) or a task
group (`--task_group`, on the default executor), prints each status update as mesos-execute
does and acknowledges it, and tears the framework down once every task is terminal. The exit
code is 0 when every task FINISHED and 1 otherwise; 2 for bad flags. If the stream breaks
(master failover), it subscribes again with its framework id and carries on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pwd
import sys
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import aiohttp
import orjson

from meseta.api import mesos_json, recordio
from meseta.master import resources as resource_values
from meseta.master.durations import parse_duration_ns
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.scheduler import scheduler_pb2

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
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


class NoLeader(ExecuteError):
    """Every master answered 503 (electing, or the new leader still taking office)."""


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


DEFAULT_EXECUTOR_ID = "default-executor"
# What mesos-execute gives the default executor of a task group.
DEFAULT_EXECUTOR_RESOURCES = "cpus:0.1;mem:32;disk:32"
Capability = mesos_pb2.FrameworkInfo.Capability
# mesos-execute's own, plus MULTI_ROLE (we subscribe with `roles`); PARTITION_AWARE unless
# --no-partition_aware.
CAPABILITIES = (
    Capability.MULTI_ROLE,
    Capability.RESERVATION_REFINEMENT,
    Capability.TASK_KILLING_STATE,
    Capability.REVOCABLE_RESOURCES,
)


def command_task(
    name: str,
    command: str,
    resources: resource_values.Resources,
    role: str,
    *,
    shell: bool = True,
    environment: dict[str, str] | None = None,
) -> mesos_pb2.TaskInfo:
    """The task `--name`, `--command`, `--resources`, `--shell` and `--env` describe."""
    task = mesos_pb2.TaskInfo(name=name)
    task.task_id.value = name
    task.resources.extend(resource_values.to_protos(resources, allocation_role=role))
    task.command.shell = shell
    if shell:
        task.command.value = command
    else:
        argv = command.split()
        task.command.value = argv[0] if argv else ""
        task.command.arguments.extend(argv)
    for variable, value in (environment or {}).items():
        task.command.environment.variables.add(name=variable, value=value)
    return task


def current_user() -> str:
    """Who runs this command: mesos-execute's framework user (tasks run as them)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name  # as Mesos's os::user(), not $USER
    except KeyError:  # no passwd entry
        return ""


@dataclass(slots=True)
class TaskRequest:
    """What to run: one task (LAUNCH), or a task group (LAUNCH_GROUP on the default executor)."""

    tasks: list[mesos_pb2.TaskInfo]
    role: str
    group: bool = False
    checkpoint: bool = False
    partition_aware: bool = True
    extra_capabilities: tuple[int, ...] = ()
    kill_after_s: float | None = None  # KILL each task this long after its TASK_RUNNING
    needs: resource_values.Resources = field(init=False)

    def __post_init__(self) -> None:
        protos = [resource for task in self.tasks for resource in task.resources]
        try:
            needs = resource_values.from_protos(protos)
            if self.group:
                needs = needs + parse_resources(DEFAULT_EXECUTOR_RESOURCES)
        except resource_values.ResourceError as error:
            raise ExecuteError(f"Invalid task resources: {error}") from None
        self.needs = needs

    @property
    def task_ids(self) -> list[str]:
        return [task.task_id.value for task in self.tasks]

    def framework_info(self, framework_id: str | None) -> mesos_pb2.FrameworkInfo:
        info = mesos_pb2.FrameworkInfo(
            user=current_user(),
            name="meseta-execute instance",
            failover_timeout=FAILOVER_TIMEOUT_S,
            checkpoint=self.checkpoint,
            roles=[self.role],
        )
        capabilities = [*CAPABILITIES, *self.extra_capabilities]
        if self.partition_aware:
            capabilities.append(Capability.PARTITION_AWARE)
        for capability in capabilities:
            info.capabilities.add(type=capability)
        if framework_id:
            info.id.value = framework_id
        return info

    def fits(self, offer: mesos_pb2.Offer) -> bool:
        offered = resource_values.from_protos(offer.resources)
        return offered.contains(self.needs)

    def operation(self, offer: mesos_pb2.Offer, framework_id: str) -> mesos_pb2.Offer.Operation:
        """LAUNCH (or LAUNCH_GROUP) of the tasks on the offer's agent."""
        tasks = []
        for template in self.tasks:
            task = mesos_pb2.TaskInfo()
            task.CopyFrom(template)
            task.agent_id.CopyFrom(offer.agent_id)
            tasks.append(task)
        Operation = mesos_pb2.Offer.Operation
        if not self.group:
            operation = Operation(type=Operation.LAUNCH)
            operation.launch.task_infos.extend(tasks)
            return operation
        operation = Operation(type=Operation.LAUNCH_GROUP)
        executor = operation.launch_group.executor
        executor.type = mesos_pb2.ExecutorInfo.DEFAULT
        executor.executor_id.value = DEFAULT_EXECUTOR_ID
        executor.framework_id.value = framework_id
        resources = parse_resources(DEFAULT_EXECUTOR_RESOURCES)
        executor.resources.extend(resource_values.to_protos(resources, allocation_role=self.role))
        operation.launch_group.task_group.tasks.extend(tasks)
        return operation


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
    if status.HasField("healthy"):
        lines.append(f"  healthy?: {int(status.healthy)}")  # C++ prints a bool as 1 or 0
    if status.HasField("check_status"):
        lines.append(f"  check status: {mesos_json.to_json(status.check_status).decode()}")
    return lines


@dataclass(slots=True)
class Session:
    """One subscription: the leader it reached and the headers every later call carries."""

    http: aiohttp.ClientSession
    leader: str
    stream_id: str
    response: aiohttp.ClientResponse
    media_type: str = JSON

    async def call(self, call: scheduler_pb2.Call) -> None:
        async with self.http.post(
            f"http://{self.leader}{SCHEDULER_PATH}",
            data=encode(call, self.media_type),
            headers={"Content-Type": self.media_type, "Mesos-Stream-Id": self.stream_id},
            allow_redirects=False,
        ) as response:
            if response.status != 202:
                text = (await response.text()).strip()
                raise ExecuteError(f"{Call.Type.Name(call.type)} failed: {response.status} {text}")

    async def events(self) -> AsyncGenerator[scheduler_pb2.Event, None]:
        decoder = recordio.Decoder()
        async for chunk in self.response.content.iter_any():
            for record in decoder.feed(chunk):
                if self.media_type == JSON:
                    yield mesos_json.from_json(record, Event)
                else:
                    yield mesos_json.from_protobuf(record, Event)


def encode(call: scheduler_pb2.Call, media_type: str) -> bytes:
    return mesos_json.to_json(call) if media_type == JSON else call.SerializeToString()


async def subscribe(
    http: aiohttp.ClientSession,
    masters: list[str],
    info: mesos_pb2.FrameworkInfo,
    media_type: str = JSON,
) -> Session:
    """SUBSCRIBE at the leader: each master in turn, following up to 5 redirects from each."""
    call = Call(type=Call.SUBSCRIBE)
    call.subscribe.framework_info.CopyFrom(info)
    if info.HasField("id"):
        call.framework_id.CopyFrom(info.id)
    body = encode(call, media_type)
    problems = []
    unavailable = 0  # masters that answered 503
    for master in masters:
        address = master
        for _ in range(MAX_REDIRECTS):
            try:
                response = await http.post(
                    f"http://{address}{SCHEDULER_PATH}",
                    data=body,
                    headers={"Content-Type": media_type, "Accept": media_type},
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
                unavailable += response.status == 503
                break
            stream_id = response.headers.get("Mesos-Stream-Id", "")
            return Session(http, address, stream_id, response, media_type)
        else:
            problems.append(f"{master}: too many redirects")
    kind = NoLeader if unavailable == len(masters) else ExecuteError
    raise kind("Cannot subscribe to a master (" + "; ".join(problems) + ")")


@dataclass(slots=True)
class Run:
    request: TaskRequest
    say: Callable[[str], None]
    framework_id: str | None = None
    launched: bool = False
    session: Session | None = None  # the current subscription (KILLs go through it)
    finals: dict[str, mesos_pb2.TaskStatus] = field(default_factory=dict)
    kills: dict[str, asyncio.TimerHandle] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return len(self.finals) == len(self.request.tasks)

    @property
    def succeeded(self) -> bool:
        return self.done and all(s.state == mesos_pb2.TASK_FINISHED for s in self.finals.values())

    async def handle(self, session: Session, event: scheduler_pb2.Event) -> bool:
        """React to one event; True once every task is terminal and acknowledged."""
        self.session = session
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
            operation = self.request.operation(offer, self.framework_id or "")
            accept.accept.operations.add().CopyFrom(operation)
            await session.call(accept)
            self.launched = True
            what = "task group" if self.request.group else "task"
            names = ", ".join(f"'{task_id}'" for task_id in self.request.task_ids)
            self.say(f"Submitted {what} {names} to agent '{offer.agent_id.value}'")
        if declined:
            decline = self.call(Call.DECLINE)
            decline.decline.offer_ids.extend(offer.id for offer in declined)
            await session.call(decline)

    async def update(self, session: Session, status: mesos_pb2.TaskStatus) -> bool:
        task_id = status.task_id.value
        if task_id not in self.request.task_ids:
            return False
        for line in status_lines(status):
            self.say(line)
        if status.uuid:
            ack = self.call(Call.ACKNOWLEDGE)
            ack.acknowledge.agent_id.CopyFrom(status.agent_id)
            ack.acknowledge.task_id.CopyFrom(status.task_id)
            ack.acknowledge.uuid = status.uuid
            await session.call(ack)
        kill_after = self.request.kill_after_s
        running = status.state == mesos_pb2.TASK_RUNNING
        if running and kill_after is not None and task_id not in self.kills:
            loop = asyncio.get_running_loop()
            self.kills[task_id] = loop.call_later(kill_after, self.kill_soon, status)
        if status.state in TERMINAL:
            self.finals[task_id] = status
            timer = self.kills.get(task_id)
            if timer is not None:
                timer.cancel()
        return self.done

    def kill_soon(self, status: mesos_pb2.TaskStatus) -> None:
        """--kill_after ran out for this task: KILL it (as mesos-execute does)."""
        if status.task_id.value in self.finals or self.session is None:
            return
        kill = self.call(Call.KILL)
        kill.kill.task_id.CopyFrom(status.task_id)
        kill.kill.agent_id.CopyFrom(status.agent_id)
        self.say(f"Killing task '{status.task_id.value}' (--kill_after)")
        asyncio.get_running_loop().create_task(self.send_quietly(self.session, kill))

    async def send_quietly(self, session: Session, call: scheduler_pb2.Call) -> None:
        with contextlib.suppress(ExecuteError, aiohttp.ClientError, OSError):
            await session.call(call)


async def execute(
    request: TaskRequest, masters: list[str], say: Callable[[str], None], media_type: str = JSON
) -> int:
    run = Run(request, say)
    timeout = aiohttp.ClientTimeout(total=None, connect=5, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        failures = 0
        while not run.done:
            try:
                info = request.framework_info(run.framework_id)
                session = await subscribe(http, masters, info, media_type)
            except ExecuteError as error:
                # Subscribed before, or every master says it has no leader yet: they are
                # electing one (mesos-execute's scheduler library keeps trying too).
                failures += 1
                retry = run.framework_id is not None or isinstance(error, NoLeader)
                if not retry or failures > 30:
                    raise
                await asyncio.sleep(1.0)
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
            if run.done:
                with contextlib.suppress(ExecuteError, aiohttp.ClientError, OSError):
                    await session.call(run.call(Call.TEARDOWN))
            elif run.framework_id is None:
                raise ExecuteError("The master closed the subscription before SUBSCRIBED")
    return 0 if run.succeeded else 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--master", required=True, help="HOST:PORT[,HOST:PORT...] of the masters")
    parser.add_argument("--name", default=None, help="task name (also its id)")
    parser.add_argument("--command", default=None, help="shell command to run")
    parser.add_argument(
        "--task",
        default=None,
        help="a TaskInfo in JSON, or a file holding one: /path or file:///path",
    )
    parser.add_argument(
        "--task_group",
        default=None,
        help="a TaskGroupInfo in JSON (or /path, file:///path): its tasks run on the default"
        " executor",
    )
    parser.add_argument("--resources", default="cpus:1;mem:128", help="Mesos resource syntax")
    parser.add_argument("--role", default="*", help="role the framework subscribes with")
    parser.add_argument(
        "--shell", default=True, action=argparse.BooleanOptionalAction,
        help="run the command with /bin/sh -c (--no-shell: split it into argv)",
    )  # fmt: skip
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE|JSON",
        help='task environment: NAME=VALUE (repeatable) or a JSON object {"NAME": "VALUE"}',
    )
    parser.add_argument("--checkpoint", action="store_true", help="task survives agent restarts")
    parser.add_argument(
        "--partition_aware", default=True, action=argparse.BooleanOptionalAction,
        help="subscribe PARTITION_AWARE (the default, as mesos-execute)",
    )  # fmt: skip
    parser.add_argument(
        "--framework_capabilities", default=None, help="more capabilities: GPU_RESOURCES"
    )
    parser.add_argument("--kill_after", default=None, help="KILL the task this long after it runs")
    parser.add_argument("--content_type", default="json", help="json | protobuf (scheduler API)")


def request_from(options: argparse.Namespace) -> TaskRequest:
    if options.task is not None and options.task_group is not None:
        raise ExecuteError("Either --task or --task_group, not both")
    given = options.task is not None or options.task_group is not None
    if given and (options.name is not None or options.command is not None or options.env):
        raise ExecuteError("--name, --command and --env only go without --task or --task_group")
    tasks, group = task_templates(options)
    kill_after_s = None
    if options.kill_after is not None:
        try:
            kill_after_s = parse_duration_ns(options.kill_after) / 1e9
        except ValueError as error:
            raise ExecuteError(f"Invalid --kill_after: {error}") from None
    return TaskRequest(
        tasks=tasks,
        role=options.role,
        group=group,
        checkpoint=options.checkpoint,
        partition_aware=options.partition_aware,
        extra_capabilities=capabilities(options.framework_capabilities),
        kill_after_s=kill_after_s,
    )


def task_templates(options: argparse.Namespace) -> tuple[list[mesos_pb2.TaskInfo], bool]:
    if options.task is not None:
        return [load_message(options.task, mesos_pb2.TaskInfo, "--task")], False
    if options.task_group is not None:
        group = load_message(options.task_group, mesos_pb2.TaskGroupInfo, "--task_group")
        if not group.tasks:
            raise ExecuteError("--task_group has no tasks")
        return list(group.tasks), True
    if options.name is None:
        raise ExecuteError("Missing required option --name")
    if options.command is None:
        raise ExecuteError("Missing required option --command")
    task = command_task(
        options.name,
        options.command,
        parse_resources(options.resources),
        options.role,
        shell=options.shell,
        environment=environment_from(options.env),
    )
    return [task], False


M = TypeVar("M", mesos_pb2.TaskInfo, mesos_pb2.TaskGroupInfo)


def load_message(text: str, message_type: type[M], flag: str) -> M:
    """JSON given inline, or read from `file:///path` or `/path` (as mesos-execute takes it)."""
    if text.startswith(("file://", "/")):
        path = text.removeprefix("file://")
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise ExecuteError(f"Cannot read {flag} file '{path}': {error.strerror}") from None
    try:
        return mesos_json.from_json(text.encode(), message_type)
    except ValueError as error:
        raise ExecuteError(f"Invalid {flag}: {error}") from None


def environment_from(items: list[str]) -> dict[str, str]:
    environment: dict[str, str] = {}
    for item in items:
        if item.lstrip().startswith("{"):
            try:
                given = orjson.loads(item)
            except orjson.JSONDecodeError as error:
                raise ExecuteError(f"Invalid --env '{item}': {error}") from None
            if not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values()):
                raise ExecuteError(f"Invalid --env '{item}': expected an object of strings")
            environment.update(given)
            continue
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ExecuteError(f"Invalid --env '{item}': expected NAME=VALUE or a JSON object")
        environment[name] = value
    return environment


def capabilities(text: str | None) -> tuple[int, ...]:
    """--framework_capabilities: as in mesos-execute, GPU_RESOURCES is the one to add."""
    found = []
    for name in filter(None, (part.strip() for part in (text or "").split(","))):
        if name not in Capability.Type.keys():  # noqa: SIM118 (an enum wrapper, not a dict)
            raise ExecuteError(f"--framework_capabilities: unknown capability '{name}'")
        if name != "GPU_RESOURCES":
            raise ExecuteError(f"--framework_capabilities: unsupported capability '{name}'")
        found.append(Capability.Type.Value(name))
    return tuple(found)


CONTENT_TYPES = {"json": JSON, JSON: JSON, "protobuf": PROTOBUF, PROTOBUF: PROTOBUF}


def run(options: argparse.Namespace) -> int:
    def say(text: str) -> None:
        print(text, flush=True)

    try:
        request = request_from(options)
        masters = parse_masters(options.master)
        media_type = CONTENT_TYPES.get(options.content_type)
        if media_type is None:
            raise ExecuteError(f"Invalid content type '{options.content_type}'")
    except ExecuteError as error:
        print(f"meseta execute: {error}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(execute(request, masters, say, media_type))
    except ExecuteError as error:
        print(f"meseta execute: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
