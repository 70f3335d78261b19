"""`meseta agent` flags: Mesos names, Mesos defaults, parsed once into `AgentFlags`.

`/flags` shows them as Mesos does: every flag as a string, durations printed
in stout form (contract 7.10). Our own test knobs (status update back-off)
carry a meseta prefix-free name but are documented as meseta extensions.
"""

from __future__ import annotations

import argparse
import socket
from dataclasses import dataclass
from pathlib import Path

import orjson

from meseta.api.flags import UNSPECIFIED_ADDRESSES, add_logging_arguments, ip_flag
from meseta.master.durations import format_duration as format_duration_ns
from meseta.master.durations import parse_duration_ns

RECOVER_MODES = ("reconnect", "cleanup")
RECONFIGURATION_POLICIES = ("equal", "additive")


class FlagError(ValueError):
    """A flag value that cannot be used; the agent exits with EXIT_BAD_FLAGS."""


EXIT_BAD_FLAGS = 1  # Mesos exits with EXIT_FAILURE on a bad flag


def duration_s(text: str, flag: str) -> float:
    try:
        return parse_duration_ns(text) / 1e9
    except ValueError as error:
        raise FlagError(f"Failed to load flag '{flag}': {error}") from None


def format_duration(seconds: float) -> str:
    """The largest unit that shows the value as a whole number (e.g. `5secs`)."""
    return format_duration_ns(round(seconds * 1e9))


@dataclass(frozen=True, slots=True)
class AgentFlags:
    masters: tuple[str, ...]
    work_dir: Path
    ip: str = "127.0.0.1"
    port: int = 5051
    hostname: str | None = None
    advertise_ip: str | None = None
    resources: str | None = None
    attributes: str | None = None
    default_role: str = "*"
    recover: str = "reconnect"
    strict: bool = True
    reconfiguration_policy: str = "equal"
    executor_shutdown_grace_period_s: float = 5.0
    executor_registration_timeout_s: float = 60.0
    executor_reregistration_timeout_s: float = 2.0
    recovery_timeout_s: float = 900.0
    registration_backoff_factor_s: float = 1.0
    http_command_executor: bool = True
    # --executor_environment_variables: what executors (and so their tasks) start with, under
    # the MESOS_* variables; None: nothing beyond those and a default PATH.
    executor_environment: tuple[tuple[str, str], ...] | None = None
    gc_delay_s: float = 7 * 86400.0
    gc_disk_headroom: float = 0.1
    disk_watch_interval_s: float = 60.0
    logging_level: str = "INFO"
    log_dir: str | None = None
    quiet: bool = False
    external_log_file: str | None = None
    # meseta extensions: the status update retry back-off (contract 7.6: 10 s doubling to 10 min)
    status_update_retry_min_s: float = 10.0
    status_update_retry_max_s: float = 600.0

    @property
    def advertised_ip(self) -> str | None:
        """The IP the agent is reached at (its pid's), as libprocess advertises it; None when
        it listens everywhere and names none (the master then sees where it connects from)."""
        if self.advertise_ip:
            return self.advertise_ip
        return None if self.ip in UNSPECIFIED_ADDRESSES else self.ip

    @property
    def advertised_host(self) -> str:
        return self.hostname or self.advertised_ip or socket.gethostname()

    def as_mesos(self) -> dict[str, str]:
        """Flag name -> printed value, as the agent's /flags shows them."""
        shown = {
            "master": ",".join(self.masters),
            "work_dir": str(self.work_dir),
            "ip": self.ip,
            "port": str(self.port),
            "hostname": self.advertised_host,
            "default_role": self.default_role,
            "recover": self.recover,
            "strict": _bool(self.strict),
            "reconfiguration_policy": self.reconfiguration_policy,
            "executor_shutdown_grace_period": format_duration(
                self.executor_shutdown_grace_period_s
            ),
            "executor_registration_timeout": format_duration(self.executor_registration_timeout_s),
            "executor_reregistration_timeout": format_duration(
                self.executor_reregistration_timeout_s
            ),
            "recovery_timeout": format_duration(self.recovery_timeout_s),
            "registration_backoff_factor": format_duration(self.registration_backoff_factor_s),
            "http_command_executor": _bool(self.http_command_executor),
            "status_update_retry_min": format_duration(self.status_update_retry_min_s),
            "status_update_retry_max": format_duration(self.status_update_retry_max_s),
        }
        if self.resources is not None:
            shown["resources"] = self.resources
        if self.attributes is not None:
            shown["attributes"] = self.attributes
        shown["logging_level"] = self.logging_level
        shown["gc_delay"] = format_duration(self.gc_delay_s)
        shown["gc_disk_headroom"] = repr(self.gc_disk_headroom)
        shown["disk_watch_interval"] = format_duration(self.disk_watch_interval_s)
        if self.log_dir is not None:
            shown["log_dir"] = self.log_dir
        shown["quiet"] = _bool(self.quiet)
        if self.external_log_file is not None:
            shown["external_log_file"] = self.external_log_file
        if self.advertise_ip is not None:
            shown["advertise_ip"] = self.advertise_ip
        if self.executor_environment is not None:
            shown["executor_environment_variables"] = orjson.dumps(
                dict(self.executor_environment)
            ).decode()
        return dict(sorted(shown.items()))


def _ip(value: str | None) -> str | None:
    try:
        return ip_flag(value, "advertise_ip")
    except ValueError as error:
        raise FlagError(str(error)) from None


def _bool(value: bool) -> str:
    return "true" if value else "false"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--master", required=True, help="HOST:PORT[,HOST:PORT...] of the masters")
    parser.add_argument("--work_dir", type=Path, required=True, help="sandboxes and checkpoints")
    parser.add_argument("--ip", default="127.0.0.1", help="address the agent listens on")
    parser.add_argument("--port", type=int, default=5051)
    parser.add_argument("--hostname", default=None, help="address advertised (default: --ip)")
    parser.add_argument(
        "--advertise_ip", default=None, help="IP advertised to reach the agent (default: --ip)"
    )
    parser.add_argument("--resources", default=None, help="'cpus:4;mem:1024;...' or a JSON array")
    parser.add_argument("--attributes", default=None, help="'rack:r1;zone:a;cores:8'")
    parser.add_argument("--default_role", default="*")
    parser.add_argument("--recover", default="reconnect", help="reconnect | cleanup")
    parser.add_argument("--strict", default="true", help="fail on recovery errors")
    parser.add_argument("--reconfiguration_policy", default="equal", help="equal | additive")
    parser.add_argument("--executor_shutdown_grace_period", default="5secs")
    parser.add_argument("--executor_registration_timeout", default="1mins")
    parser.add_argument("--executor_reregistration_timeout", default="2secs")
    parser.add_argument("--recovery_timeout", default="15mins")
    parser.add_argument("--registration_backoff_factor", default="1secs")
    parser.add_argument("--http_command_executor", default="true")
    parser.add_argument(
        "--executor_environment_variables",
        default=None,
        help='JSON object of the environment executors get, e.g. {"PATH": "/bin:/usr/bin"}',
    )
    parser.add_argument("--status_update_retry_min", default="10secs",
                        help="first status update retry interval (doubles)")  # fmt: skip
    parser.add_argument("--status_update_retry_max", default="10mins")
    parser.add_argument("--gc_delay", default="1weeks", help="when ended sandboxes are removed")
    parser.add_argument(
        "--gc_disk_headroom",
        default="0.1",
        help="free disk share to keep: sandboxes go sooner as the disk fills (0.0 to 1.0)",
    )
    parser.add_argument("--disk_watch_interval", default="1mins")
    add_logging_arguments(parser)


def from_options(options: argparse.Namespace) -> AgentFlags:
    """Validate parsed arguments; FlagError says which flag is wrong and why."""
    masters = tuple(m.strip() for m in options.master.split(",") if m.strip())
    if not masters:
        raise FlagError("Failed to load flag 'master': no master address given")
    for master in masters:
        host, sep, port = master.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise FlagError(f"Failed to load flag 'master': '{master}' is not HOST:PORT")
    if options.recover not in RECOVER_MODES:
        raise FlagError(f"Unknown --recover value '{options.recover}' (reconnect | cleanup)")
    if options.reconfiguration_policy not in RECONFIGURATION_POLICIES:
        raise FlagError(
            f"Unknown --reconfiguration_policy '{options.reconfiguration_policy}'"
            " (equal | additive)"
        )
    reregistration = duration_s(
        options.executor_reregistration_timeout, "executor_reregistration_timeout"
    )
    if reregistration > 15:
        raise FlagError("Expected --executor_reregistration_timeout to be at most 15secs")
    retry_min = duration_s(options.status_update_retry_min, "status_update_retry_min")
    retry_max = duration_s(options.status_update_retry_max, "status_update_retry_max")
    if retry_min <= 0 or retry_max < retry_min:
        raise FlagError("Expected 0 < --status_update_retry_min <= --status_update_retry_max")
    return AgentFlags(
        masters=masters,
        work_dir=options.work_dir.resolve(),
        ip=options.ip,
        port=options.port,
        hostname=options.hostname,
        advertise_ip=_ip(options.advertise_ip),
        resources=options.resources,
        attributes=options.attributes,
        default_role=options.default_role,
        recover=options.recover,
        strict=_parse_bool(options.strict, "strict"),
        reconfiguration_policy=options.reconfiguration_policy,
        executor_shutdown_grace_period_s=duration_s(
            options.executor_shutdown_grace_period, "executor_shutdown_grace_period"
        ),
        executor_registration_timeout_s=duration_s(
            options.executor_registration_timeout, "executor_registration_timeout"
        ),
        executor_reregistration_timeout_s=reregistration,
        recovery_timeout_s=duration_s(options.recovery_timeout, "recovery_timeout"),
        registration_backoff_factor_s=duration_s(
            options.registration_backoff_factor, "registration_backoff_factor"
        ),
        http_command_executor=_parse_bool(options.http_command_executor, "http_command_executor"),
        executor_environment=_environment_object(options.executor_environment_variables),
        gc_delay_s=duration_s(options.gc_delay, "gc_delay"),
        gc_disk_headroom=_headroom(options.gc_disk_headroom),
        disk_watch_interval_s=_positive(options.disk_watch_interval, "disk_watch_interval"),
        logging_level=options.logging_level,
        log_dir=options.log_dir,
        quiet=options.quiet,
        external_log_file=options.external_log_file,
        status_update_retry_min_s=retry_min,
        status_update_retry_max_s=retry_max,
    )


def _headroom(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FlagError(
            f"Failed to load flag 'gc_disk_headroom': '{text}' is not a number"
        ) from None
    if not 0.0 <= value <= 1.0:
        raise FlagError("Invalid gc_disk_headroom: must be within [0.0, 1.0]")
    return value


def _positive(text: str, flag: str) -> float:
    value = duration_s(text, flag)
    if value <= 0:
        raise FlagError(f"Failed to load flag '{flag}': must be positive")
    return value


def _environment_object(text: str | None) -> tuple[tuple[str, str], ...] | None:
    if text is None:
        return None
    flag = "executor_environment_variables"
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise FlagError(f"Failed to load flag '{flag}': not JSON: {error}") from None
    if not isinstance(value, dict):
        raise FlagError(f"Failed to load flag '{flag}': expected a JSON object")
    if not all(isinstance(item, str) for item in value.values()):
        raise FlagError(f"`{flag}` must only contain string values")
    return tuple(value.items())


def _parse_bool(text: str, flag: str) -> bool:
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise FlagError(f"Failed to load flag '{flag}': expected true or false, got '{text}'")
