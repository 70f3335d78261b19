"""`meseta execute` without a cluster: flags, offer fitting, the task it builds, its output."""

from __future__ import annotations

import argparse
import os
import pwd
import re
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from meseta import execute
from meseta.log.testing import free_port
from meseta.proto.mesos.v1 import mesos_pb2


def scalar(name: str, value: float) -> mesos_pb2.Resource:
    resource = mesos_pb2.Resource(name=name, type=mesos_pb2.Value.SCALAR)
    resource.scalar.value = value
    return resource


def offer(*resources: mesos_pb2.Resource) -> mesos_pb2.Offer:
    built = mesos_pb2.Offer(hostname="h")
    built.id.value = "o1"
    built.agent_id.value = "a1"
    built.framework_id.value = "f1"
    built.resources.extend(resources)
    return built


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("cpus:lots", "'lots' is not a number"),
        ("cpus", "expected name[(role)]:value"),
        ("cpus:-1", "non-negative"),
        ("", "no resources"),
        ("ports:[1-", "unterminated range"),
    ],
)
def test_bad_resources_are_named(text: str, error: str) -> None:
    with pytest.raises(execute.ExecuteError, match="Invalid resources") as raised:
        execute.parse_resources(text)
    assert error in str(raised.value)


@pytest.mark.parametrize("text", ["", "localhost", "host:port", ":5050"])
def test_bad_master_lists(text: str) -> None:
    with pytest.raises(execute.ExecuteError):
        execute.parse_masters(text)


def test_master_list() -> None:
    assert execute.parse_masters("a:1, http://b:2") == ["a:1", "b:2"]


def request(command: str = "echo hi", shell: bool = True) -> execute.TaskRequest:
    resources = execute.parse_resources("cpus:0.5;mem:64")
    task = execute.command_task("t", command, resources, "*", shell=shell, environment={"A": "1"})
    return execute.TaskRequest(tasks=[task], role="*")


def test_offer_fitting() -> None:
    assert request().fits(offer(scalar("cpus", 1), scalar("mem", 128)))
    assert not request().fits(offer(scalar("cpus", 0.4), scalar("mem", 128)))
    assert not request().fits(offer(scalar("cpus", 1)))


def launched(req: execute.TaskRequest) -> mesos_pb2.TaskInfo:
    operation = req.operation(offer(scalar("cpus", 1), scalar("mem", 128)), "f1")
    assert operation.type == mesos_pb2.Offer.Operation.LAUNCH
    (task,) = operation.launch.task_infos
    return task


def test_task_info_shell_and_argv() -> None:
    task = launched(request())
    assert task.task_id.value == "t" and task.agent_id.value == "a1"
    assert task.command.shell and task.command.value == "echo hi"
    assert [(v.name, v.value) for v in task.command.environment.variables] == [("A", "1")]
    assert {r.name: r.scalar.value for r in task.resources} == {"cpus": 0.5, "mem": 64}
    assert all(r.allocation_info.role == "*" for r in task.resources)
    argv = launched(request("/bin/echo a b", shell=False)).command
    assert not argv.shell and argv.value == "/bin/echo" and list(argv.arguments) == [
        "/bin/echo", "a", "b",
    ]  # fmt: skip


def test_status_lines_like_mesos_execute() -> None:
    status = mesos_pb2.TaskStatus(
        state=mesos_pb2.TASK_FAILED, source=mesos_pb2.TaskStatus.SOURCE_EXECUTOR,
        reason=mesos_pb2.TaskStatus.REASON_COMMAND_EXECUTOR_FAILED, message="exit 3",
    )  # fmt: skip
    status.task_id.value = "t"
    assert execute.status_lines(status) == [
        "Received status update TASK_FAILED for task 't'",
        "  message: 'exit 3'",
        "  source: SOURCE_EXECUTOR",
        "  reason: REASON_COMMAND_EXECUTOR_FAILED",
    ]
    status.healthy = False
    status.check_status.type = mesos_pb2.CheckInfo.TCP
    status.check_status.tcp.succeeded = True
    assert execute.status_lines(status)[-2:] == [
        "  healthy?: 0",
        '  check status: {"type":"TCP","tcp":{"succeeded":true}}',
    ]


def options(**overrides: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    execute.add_arguments(parser)
    base = ["--master=127.0.0.1:1", "--name=t", "--command=true"]
    return parser.parse_args(base + [f"--{k}={v}" for k, v in overrides.items()])


def test_run_exit_codes_without_a_master(capsys: pytest.CaptureFixture[str]) -> None:
    assert execute.run(options(resources="cpus:x")) == 2
    assert "Invalid resources 'cpus:x'" in capsys.readouterr().err
    assert execute.run(options(env="novalue")) == 2
    assert execute.run(options()) == 1
    assert "Cannot subscribe to a master (127.0.0.1:1" in capsys.readouterr().err


TASK_JSON = (
    '{"name": "web", "task_id": {"value": "web"}, "agent_id": {"value": "ignored"},'
    ' "command": {"value": "serve"},'
    ' "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}}],'
    ' "health_check": {"type": "TCP", "tcp": {"port": 8080}}}'
)


def parsed(*argv: str) -> execute.TaskRequest:
    parser = argparse.ArgumentParser()
    execute.add_arguments(parser)
    return execute.request_from(parser.parse_args(["--master=m:1", *argv]))


def test_a_task_given_as_json_inline_or_in_a_file(tmp_path: Path) -> None:
    for given in (TASK_JSON, str(tmp_path / "task.json"), f"file://{tmp_path / 'task.json'}"):
        (tmp_path / "task.json").write_text(TASK_JSON)
        task = launched(parsed(f"--task={given}"))
        assert task.name == "web" and task.agent_id.value == "a1"  # the offer's agent
        assert task.health_check.tcp.port == 8080


def test_a_task_group_runs_on_the_default_executor() -> None:
    other = TASK_JSON.replace('"web"', '"db"')
    group = '{"tasks": [' + TASK_JSON + ", " + other + "]}"
    req = parsed(f"--task_group={group}")
    assert req.task_ids == ["web", "db"]
    # Both tasks and the default executor's cpus:0.1;mem:32;disk:32 must fit.
    assert not req.fits(offer(scalar("cpus", 1.0), scalar("mem", 128)))
    fitting = offer(scalar("cpus", 1.1), scalar("mem", 32), scalar("disk", 32))
    assert req.fits(fitting)
    operation = req.operation(fitting, "f1")
    assert operation.type == mesos_pb2.Offer.Operation.LAUNCH_GROUP
    executor = operation.launch_group.executor
    assert executor.type == mesos_pb2.ExecutorInfo.DEFAULT
    assert (executor.executor_id.value, executor.framework_id.value) == ("default-executor", "f1")
    assert {r.name for r in executor.resources} == {"cpus", "mem", "disk"}
    assert [t.agent_id.value for t in operation.launch_group.task_group.tasks] == ["a1", "a1"]


def test_capabilities_like_mesos_execute() -> None:
    kinds = {c.type for c in parsed("--name=t", "--command=true").framework_info(None).capabilities}
    Capability = mesos_pb2.FrameworkInfo.Capability
    assert {Capability.PARTITION_AWARE, Capability.TASK_KILLING_STATE} <= kinds
    quiet = parsed("--name=t", "--command=true", "--no-partition_aware").framework_info(None)
    assert Capability.PARTITION_AWARE not in {c.type for c in quiet.capabilities}
    gpus = parsed("--name=t", "--command=true", "--framework_capabilities=GPU_RESOURCES")
    assert Capability.GPU_RESOURCES in {c.type for c in gpus.framework_info(None).capabilities}


def test_environment_as_pairs_or_json() -> None:
    req = parsed("--name=t", "--command=true", "--env=A=1", '--env={"B": "2", "C": "x=y"}')
    variables = launched(req).command.environment.variables
    assert [(v.name, v.value) for v in variables] == [("A", "1"), ("B", "2"), ("C", "x=y")]


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        ((f"--task={TASK_JSON}", "--task_group={}"), "Either --task or --task_group"),
        ((f"--task={TASK_JSON}", "--name=x"), "only go without --task"),
        (("--task={nope",), "Invalid --task"),
        (("--task=/no/such/file",), "Cannot read --task file '/no/such/file'"),
        (("--task_group={}",), "--task_group has no tasks"),
        (("--command=true",), "Missing required option --name"),
        (("--name=t",), "Missing required option --command"),
        (("--name=t", "--command=true", "--kill_after=soon"), "Invalid --kill_after"),
        (("--name=t", "--command=true", '--env={"A": 1}'), "expected an object of strings"),
        (("--name=t", "--command=true", "--framework_capabilities=FOO"), "unknown capability"),
        (("--name=t", "--command=true", "--framework_capabilities=MULTI_ROLE"), "unsupported"),
    ],
)
def test_bad_requests_are_named(argv: tuple[str, ...], error: str) -> None:
    with pytest.raises(execute.ExecuteError, match=re.escape(error)):
        parsed(*argv)


def test_a_bad_content_type_is_a_flag_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert execute.run(options(content_type="xml")) == 2
    assert "Invalid content type 'xml'" in capsys.readouterr().err


def test_the_framework_user_is_who_runs_the_command() -> None:
    info = parsed("--name=t", "--command=true").framework_info(None)
    assert info.user == pwd.getpwuid(os.getuid()).pw_name  # mesos-execute sends os::user()


async def test_masters_without_a_leader_are_waited_for_not_a_failure() -> None:
    """Every master answering 503 means an election: the run waits for it (NoLeader), where
    a refusal or an unreachable master ends it."""

    async def no_leader(request: web.Request) -> web.Response:
        return web.Response(status=503, text="No leader elected")

    app = web.Application()
    app.router.add_post(execute.SCHEDULER_PATH, no_leader)
    runner = web.AppRunner(app)
    await runner.setup()
    port, closed = free_port(), free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    info = mesos_pb2.FrameworkInfo(user="u", name="n")
    try:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(execute.NoLeader, match="503 No leader elected"):
                await execute.subscribe(http, [f"127.0.0.1:{port}"], info)
            with pytest.raises(execute.ExecuteError) as raised:
                await execute.subscribe(http, [f"127.0.0.1:{port}", f"127.0.0.1:{closed}"], info)
            assert not isinstance(raised.value, execute.NoLeader)
    finally:
        await runner.cleanup()
