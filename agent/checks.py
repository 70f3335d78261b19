"""What a task's check and health check mean, as Mesos's checkers decide it. Pure.

A task may carry a `CheckInfo` (`check`: its status is reported, never judged) and a
`HealthCheck` (`health_check`: judged healthy or not, and the task is killed after
`consecutive_failures` failures in a row). Both run one probe (COMMAND, HTTP or TCP) after
`delay_seconds`, then again `interval_seconds` after each result, each with `timeout_seconds`
(0: none). `agent/checker.py` runs the probes; the executors report what this module decides:

- a check reports each result that differs from the previous one (a probe that could not be
  performed counts as an empty status of the check's type), as TASK_RUNNING with
  REASON_TASK_CHECK_STATUS_UPDATED; every status of a checked task carries `check_status`;
- a health check reports `healthy: true` on its first success and on the first success after
  failures, and `healthy: false` on every failure, as TASK_RUNNING with
  REASON_TASK_HEALTH_CHECK_STATUS_UPDATED. Failures within `grace_period_seconds` of the start
  are ignored until the first success.
"""

from __future__ import annotations

from dataclasses import dataclass

from meseta.proto.mesos.v1 import mesos_pb2

CheckInfo = mesos_pb2.CheckInfo
HealthCheck = mesos_pb2.HealthCheck
CheckStatusInfo = mesos_pb2.CheckStatusInfo
LOOPBACK_V4 = "127.0.0.1"
LOOPBACK_V6 = "::1"
HTTP_OK_FIRST, HTTP_OK_LAST = 200, 399


@dataclass(frozen=True)
class Probe:
    """One kind of check and its timing; the same for checks and health checks."""

    kind: int  # CheckInfo.Type
    delay_s: float
    interval_s: float
    timeout_s: float | None  # None: wait as long as it takes
    command: mesos_pb2.CommandInfo | None = None
    port: int = 0
    path: str = ""
    scheme: str = "http"
    host: str = LOOPBACK_V4

    @property
    def name(self) -> str:
        return CheckInfo.Type.Name(self.kind)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"


def _timeout(seconds: float) -> float | None:
    return seconds if seconds > 0 else None


def check_probe(check: mesos_pb2.CheckInfo) -> Probe:
    """The probe of a validated CheckInfo."""
    timing = (check.delay_seconds, check.interval_seconds, _timeout(check.timeout_seconds))
    if check.type == CheckInfo.COMMAND:
        return Probe(CheckInfo.COMMAND, *timing, command=check.command.command)
    if check.type == CheckInfo.HTTP:
        return Probe(CheckInfo.HTTP, *timing, port=check.http.port, path=check.http.path)
    return Probe(CheckInfo.TCP, *timing, port=check.tcp.port)


def health_probe(check: mesos_pb2.HealthCheck) -> Probe:
    """The probe of a validated HealthCheck (IPv6 checks go to ::1, as Mesos's do)."""
    timing = (check.delay_seconds, check.interval_seconds, _timeout(check.timeout_seconds))
    if check.type == HealthCheck.COMMAND:
        return Probe(CheckInfo.COMMAND, *timing, command=check.command)
    if check.type == HealthCheck.HTTP:
        http = check.http
        return Probe(
            CheckInfo.HTTP,
            *timing,
            port=http.port,
            path=http.path,
            scheme=http.scheme or "http",
            host=LOOPBACK_V6 if http.protocol == mesos_pb2.NetworkInfo.IPv6 else LOOPBACK_V4,
        )
    v6 = check.tcp.protocol == mesos_pb2.NetworkInfo.IPv6
    return Probe(
        CheckInfo.TCP, *timing, port=check.tcp.port, host=LOOPBACK_V6 if v6 else LOOPBACK_V4
    )


def empty_status(kind: int) -> mesos_pb2.CheckStatusInfo:
    """A check's status before (or instead of) a result: only its type."""
    status = CheckStatusInfo(type=kind)  # type: ignore[arg-type]
    if kind == CheckInfo.COMMAND:
        status.command.SetInParent()
    elif kind == CheckInfo.HTTP:
        status.http.SetInParent()
    elif kind == CheckInfo.TCP:
        status.tcp.SetInParent()
    return status


def failure_of(result: mesos_pb2.CheckStatusInfo) -> str | None:
    """Why a health check's probe result counts as a failure (None: healthy)."""
    if result.type == CheckInfo.COMMAND and result.command.exit_code != 0:
        return f"Command exited with status {result.command.exit_code}"
    if result.type == CheckInfo.HTTP:
        code = result.http.status_code
        if not HTTP_OK_FIRST <= code <= HTTP_OK_LAST:
            return f"Unexpected HTTP response code: {code}"
    if result.type == CheckInfo.TCP and not result.tcp.succeeded:
        return "TCP connection failed"
    return None


class CheckTracker:
    """A check's last reported status: results are reported only when they change."""

    def __init__(self, kind: int) -> None:
        self.kind = kind
        self.previous = empty_status(kind)

    def observe(self, result: mesos_pb2.CheckStatusInfo | None) -> mesos_pb2.CheckStatusInfo | None:
        """The status to report for `result` (None: the probe failed), or None if unchanged."""
        status = result if result is not None else empty_status(self.kind)
        if status == self.previous:
            return None
        self.previous = status
        return status


@dataclass(frozen=True)
class HealthReport:
    healthy: bool
    consecutive_failures: int = 0
    kill_task: bool = False


class HealthTracker:
    """Mesos's health verdicts: report the first success, each failure, and the first success
    after failures; ask for a kill at `consecutive_failures` failures in a row."""

    def __init__(self, check: mesos_pb2.HealthCheck, started_at_s: float) -> None:
        self.grace_period_s = check.grace_period_seconds
        self.limit = check.consecutive_failures
        self.started_at_s = started_at_s
        self.initializing = True  # no success yet
        self.failures = 0

    def succeeded(self) -> HealthReport | None:
        report = None
        if self.initializing or self.failures > 0:
            report = HealthReport(healthy=True)
            self.initializing = False
        self.failures = 0
        return report

    def failed(self, now_s: float) -> HealthReport | None:
        """None while the failure is forgiven (in the grace period, before any success)."""
        in_grace = now_s - self.started_at_s <= self.grace_period_s
        if self.initializing and self.grace_period_s > 0 and in_grace:
            return None
        self.failures += 1
        return HealthReport(False, self.failures, kill_task=self.failures >= self.limit)


def with_check_status(
    status: mesos_pb2.TaskStatus, task: mesos_pb2.TaskInfo
) -> mesos_pb2.TaskStatus:
    """Mesos sets `check_status` on every status of a checked task, empty until a result."""
    if task.HasField("check") and not status.HasField("check_status"):
        status.check_status.CopyFrom(empty_status(task.check.type))
    return status


def follow_up(
    last: mesos_pb2.TaskStatus,
    reason: int,
    *,
    healthy: bool | None = None,
    check_status: mesos_pb2.CheckStatusInfo | None = None,
) -> mesos_pb2.TaskStatus:
    """A check or health update: the task's last status with everything attached to it kept,
    a new reason and the new verdict (the driver gives it a fresh uuid and timestamp)."""
    status = mesos_pb2.TaskStatus()
    status.CopyFrom(last)
    status.reason = reason  # type: ignore[assignment]
    if healthy is not None:
        status.healthy = healthy
    if check_status is not None:
        status.check_status.CopyFrom(check_status)
    return status
