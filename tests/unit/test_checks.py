"""The rules of task checks and health checks (agent/checks.py), as Mesos's checkers apply them."""

from __future__ import annotations

from meseta.agent import checks
from meseta.agent.checks import CheckInfo, CheckTracker, HealthReport, HealthTracker
from meseta.proto.mesos.v1 import mesos_pb2

HealthCheck = mesos_pb2.HealthCheck


def health(**fields: object) -> mesos_pb2.HealthCheck:
    check = HealthCheck(type=HealthCheck.TCP, **fields)  # type: ignore[arg-type]
    check.tcp.port = 8080
    return check


def test_failures_in_the_grace_period_are_forgiven_until_the_first_success() -> None:
    tracker = HealthTracker(health(grace_period_seconds=10, consecutive_failures=2), 100.0)
    assert tracker.failed(105.0) is None
    assert tracker.failed(110.0) is None  # the boundary is still inside, as in Mesos
    assert tracker.failed(110.5) == HealthReport(False, 1, kill_task=False)
    assert tracker.failed(111.0) == HealthReport(False, 2, kill_task=True)


def test_after_a_success_the_grace_period_no_longer_applies() -> None:
    tracker = HealthTracker(health(grace_period_seconds=60, consecutive_failures=3), 0.0)
    assert tracker.succeeded() == HealthReport(True)
    assert tracker.failed(1.0) == HealthReport(False, 1, kill_task=False)


def test_only_the_first_success_and_the_first_after_failures_are_reported() -> None:
    tracker = HealthTracker(health(grace_period_seconds=0, consecutive_failures=3), 0.0)
    assert tracker.succeeded() == HealthReport(True)
    assert tracker.succeeded() is None
    assert tracker.failed(1.0) == HealthReport(False, 1)
    assert tracker.failed(2.0) == HealthReport(False, 2)
    assert tracker.succeeded() == HealthReport(True)  # and the count starts again
    assert tracker.failed(3.0) == HealthReport(False, 1)
    assert tracker.succeeded() == HealthReport(True)
    assert tracker.succeeded() is None


def test_a_zero_grace_period_forgives_nothing_and_failures_keep_being_reported() -> None:
    tracker = HealthTracker(health(grace_period_seconds=0, consecutive_failures=1), 0.0)
    assert tracker.failed(0.0) == HealthReport(False, 1, kill_task=True)
    assert tracker.failed(0.1) == HealthReport(False, 2, kill_task=True)


def test_a_check_reports_changes_only_and_a_failed_probe_is_an_empty_status() -> None:
    tracker = CheckTracker(CheckInfo.COMMAND)
    assert tracker.observe(None) is None  # empty, as reported from the start
    exited_1 = checks.empty_status(CheckInfo.COMMAND)
    exited_1.command.exit_code = 1
    assert tracker.observe(exited_1) == exited_1
    assert tracker.observe(exited_1) is None
    exited_0 = checks.empty_status(CheckInfo.COMMAND)
    exited_0.command.exit_code = 0
    reported = tracker.observe(exited_0)
    assert reported is not None and reported.command.HasField("exit_code")
    assert tracker.observe(None) == checks.empty_status(CheckInfo.COMMAND)


def test_empty_statuses_name_their_type_and_nothing_else() -> None:
    http = checks.empty_status(CheckInfo.HTTP)
    assert http.HasField("http") and not http.http.HasField("status_code")
    assert checks.empty_status(CheckInfo.TCP).HasField("tcp")
    assert checks.empty_status(CheckInfo.COMMAND).HasField("command")


def test_probes_take_mesos_defaults_and_address_loopback() -> None:
    check = HealthCheck(type=HealthCheck.HTTP)
    check.http.port = 8080
    probe = checks.health_probe(check)
    assert (probe.delay_s, probe.interval_s, probe.timeout_s) == (15.0, 10.0, 20.0)
    assert probe.url == "http://127.0.0.1:8080"
    check.http.path, check.http.scheme = "/health", "https"
    check.http.protocol = mesos_pb2.NetworkInfo.IPv6
    check.timeout_seconds = 0  # no timeout
    probe = checks.health_probe(check)
    assert probe.url == "https://[::1]:8080/health" and probe.timeout_s is None
    info = CheckInfo(type=CheckInfo.COMMAND, interval_seconds=1)
    info.command.command.value = "exit 0"
    probe = checks.check_probe(info)
    assert probe.kind == CheckInfo.COMMAND and probe.command is not None
    assert probe.command.value == "exit 0" and probe.interval_s == 1


def test_what_counts_as_a_failed_health_check() -> None:
    command = checks.empty_status(CheckInfo.COMMAND)
    command.command.exit_code = 0
    assert checks.failure_of(command) is None
    command.command.exit_code = 2
    assert checks.failure_of(command) == "Command exited with status 2"
    http = checks.empty_status(CheckInfo.HTTP)
    for code, healthy in ((200, True), (302, True), (399, True), (400, False), (503, False)):
        http.http.status_code = code
        assert (checks.failure_of(http) is None) == healthy
    tcp = checks.empty_status(CheckInfo.TCP)
    tcp.tcp.succeeded = False
    assert checks.failure_of(tcp) == "TCP connection failed"
    tcp.tcp.succeeded = True
    assert checks.failure_of(tcp) is None


def test_follow_ups_keep_what_the_last_status_carried() -> None:
    task = mesos_pb2.TaskInfo()
    task.check.type = CheckInfo.TCP
    last = mesos_pb2.TaskStatus(state=mesos_pb2.TASK_RUNNING, message="up", healthy=True)
    last.container_status.executor_pid = 42
    checks.with_check_status(last, task)
    assert last.check_status == checks.empty_status(CheckInfo.TCP)
    result = checks.empty_status(CheckInfo.TCP)
    result.tcp.succeeded = True
    reason = mesos_pb2.TaskStatus.REASON_TASK_CHECK_STATUS_UPDATED
    update = checks.follow_up(last, reason, check_status=result)
    assert update.state == mesos_pb2.TASK_RUNNING and update.message == "up"
    assert update.healthy and update.container_status.executor_pid == 42
    assert update.check_status.tcp.succeeded and update.reason == reason
    assert not last.check_status.tcp.succeeded  # the last status itself is left alone
    unchecked = checks.with_check_status(mesos_pb2.TaskStatus(), mesos_pb2.TaskInfo())
    assert not unchecked.HasField("check_status")
