"""`meseta execute` without a cluster: flags, offer fitting, the task it builds, its output."""

from __future__ import annotations

import argparse

import pytest

from meseta import execute
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
    return execute.TaskRequest(
        name="t", command=command, resources=execute.parse_resources("cpus:0.5;mem:64"),
        role="*", shell=shell, environment={"A": "1"},
    )  # fmt: skip


def test_offer_fitting() -> None:
    assert request().fits(offer(scalar("cpus", 1), scalar("mem", 128)))
    assert not request().fits(offer(scalar("cpus", 0.4), scalar("mem", 128)))
    assert not request().fits(offer(scalar("cpus", 1)))


def test_task_info_shell_and_argv() -> None:
    task = request().task_info(offer(scalar("cpus", 1), scalar("mem", 128)))
    assert task.task_id.value == "t" and task.agent_id.value == "a1"
    assert task.command.shell and task.command.value == "echo hi"
    assert [(v.name, v.value) for v in task.command.environment.variables] == [("A", "1")]
    assert {r.name: r.scalar.value for r in task.resources} == {"cpus": 0.5, "mem": 64}
    assert all(r.allocation_info.role == "*" for r in task.resources)
    argv = request("/bin/echo a b", shell=False).task_info(offer()).command
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
