"""Mesos's messages for invalid checks, health checks and command environments (the master
refuses such tasks with TASK_ERROR / REASON_TASK_INVALID)."""

from __future__ import annotations

import pytest

from meseta.master.validation import check_error, environment_error, health_check_error
from meseta.proto.mesos.v1 import mesos_pb2

CheckInfo = mesos_pb2.CheckInfo
HealthCheck = mesos_pb2.HealthCheck


def health(**fields: object) -> mesos_pb2.HealthCheck:
    return HealthCheck(**fields)  # type: ignore[arg-type]


def with_http(path: str | None = None, scheme: str | None = None) -> mesos_pb2.HealthCheck:
    check = HealthCheck(type=HealthCheck.HTTP)
    check.http.port = 80
    if path is not None:
        check.http.path = path
    if scheme is not None:
        check.http.scheme = scheme
    return check


def shell_less_command() -> mesos_pb2.HealthCheck:
    check = HealthCheck(type=HealthCheck.COMMAND)
    check.command.shell = False
    return check


def command_with_bad_environment() -> mesos_pb2.HealthCheck:
    check = HealthCheck(type=HealthCheck.COMMAND)
    check.command.value = "true"
    check.command.environment.variables.add(name="X")
    return check


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (health(), "HealthCheck must specify 'type'"),
        (health(type=HealthCheck.UNKNOWN), "'UNKNOWN' is not a valid health check type"),
        (
            health(type=HealthCheck.COMMAND),
            "Expecting 'command' to be set for COMMAND health check",
        ),
        (shell_less_command(), "Command health check must contain 'executable path'"),
        (
            command_with_bad_environment(),
            "Health check's `CommandInfo` is invalid: Environment variable 'X' of type 'VALUE'"
            " must have a value set",
        ),
        (health(type=HealthCheck.HTTP), "Expecting 'http' to be set for HTTP health check"),
        (with_http(scheme="ftp"), "Unsupported HTTP health check scheme: 'ftp'"),
        (with_http(scheme=""), "Unsupported HTTP health check scheme: ''"),
        (with_http(path="/ok"), None),
        (with_http(path="health"), "The path 'health' of HTTP health check must start with '/'"),
        (health(type=HealthCheck.TCP), "Expecting 'tcp' to be set for TCP health check"),
        (with_http(path="/ok", scheme="https"), None),
    ],
)
def test_health_check_errors(check: mesos_pb2.HealthCheck, message: str | None) -> None:
    assert health_check_error(check) == message


def test_negative_durations_are_named_in_mesos_order() -> None:
    check = with_http()
    check.timeout_seconds = -1
    assert health_check_error(check) == "Expecting 'timeout_seconds' to be non-negative"
    check.grace_period_seconds = -1
    assert health_check_error(check) == "Expecting 'grace_period_seconds' to be non-negative"
    check.delay_seconds = -1
    assert health_check_error(check) == "Expecting 'delay_seconds' to be non-negative"
    check.delay_seconds = check.grace_period_seconds = check.timeout_seconds = 0
    assert health_check_error(check) is None


def test_check_errors() -> None:
    assert check_error(CheckInfo()) == "CheckInfo must specify 'type'"
    assert check_error(CheckInfo(type=CheckInfo.UNKNOWN)) == "'UNKNOWN' is not a valid check type"
    command = CheckInfo(type=CheckInfo.COMMAND)
    assert check_error(command) == "Expecting 'command' to be set for COMMAND check"
    command.command.command.shell = True
    assert check_error(command) == "Command check must contain 'shell command'"
    command.command.command.value = "true"
    assert check_error(command) is None
    http = CheckInfo(type=CheckInfo.HTTP)
    assert check_error(http) == "Expecting 'http' to be set for HTTP check"
    http.http.port, http.http.path = 80, "x"
    assert check_error(http) == "The path 'x' of HTTP check must start with '/'"
    tcp = CheckInfo(type=CheckInfo.TCP, interval_seconds=-2)
    assert check_error(tcp) == "Expecting 'tcp' to be set for TCP check"
    tcp.tcp.port = 1
    assert check_error(tcp) == "Expecting 'interval_seconds' to be non-negative"


def test_environment_errors() -> None:
    Variable = mesos_pb2.Environment.Variable
    environment = mesos_pb2.Environment()
    environment.variables.add(name="A", value="1")
    assert environment_error(environment) is None
    secret = environment.variables.add(name="S", type=Variable.SECRET)
    expected = "Environment variable 'S' of type 'SECRET' must have a secret set"
    assert environment_error(environment) == expected
    secret.secret.type = mesos_pb2.Secret.VALUE
    secret.value = "v"
    expected = "Environment variable 'S' of type 'SECRET' must not have a value set"
    assert environment_error(environment) == expected
    unknown = mesos_pb2.Environment()
    unknown.variables.add(name="U", value="1", type=Variable.UNKNOWN)
    expected = "Environment variable of type 'UNKNOWN' is not allowed"
    assert environment_error(unknown) == expected
