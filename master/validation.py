"""Validation of what schedulers send, with Mesos's rules and messages.

Pure functions returning an error message or None. The API runs them before
proposing (to answer 400 at once); the fold runs them again when applying,
because the state may have changed in between.
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterable, Mapping

from meseta.master.ids import id_error, role_error
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.quota import quota_pb2

MULTI_ROLE = mesos_pb2.FrameworkInfo.Capability.MULTI_ROLE
MAX_FAILOVER_TIMEOUT_S = 100 * 365 * 24 * 3600  # what fits a Duration comfortably


def framework_roles(info: mesos_pb2.FrameworkInfo) -> tuple[str, ...]:
    if any(c.type == MULTI_ROLE for c in info.capabilities):
        return tuple(info.roles)
    return (info.role if info.HasField("role") else "*",)


def framework_info_error(info: mesos_pb2.FrameworkInfo) -> str | None:
    multi_role = any(c.type == MULTI_ROLE for c in info.capabilities)
    if multi_role and info.HasField("role"):
        return "'FrameworkInfo.role' must not be set when the framework is MULTI_ROLE capable"
    if not multi_role and info.roles:
        return "'FrameworkInfo.roles' must not be set when the framework is not MULTI_ROLE capable"
    roles = framework_roles(info)
    if len(set(roles)) != len(roles):
        return f"'FrameworkInfo.roles' contains duplicate items: {list(roles)}"
    for role in roles:
        error = role_error(role)
        if error:
            return error
    if info.HasField("id"):
        error = id_error(info.id.value, "'FrameworkInfo.id'")
        if error:
            return error
    timeout = info.failover_timeout
    if not math.isfinite(timeout) or timeout < 0 or timeout > MAX_FAILOVER_TIMEOUT_S:
        return f"Invalid 'FrameworkInfo.failover_timeout': {timeout} is not a valid duration"
    return None


def suppressed_roles_error(roles: tuple[str, ...], suppressed: list[str]) -> str | None:
    unknown = [role for role in suppressed if role not in roles]
    if unknown:
        return f"Suppressed roles {unknown} are not contained in the set of roles {list(roles)}"
    return None


def failover_timeout_ns(info: mesos_pb2.FrameworkInfo) -> int:
    return round(min(max(info.failover_timeout, 0.0), MAX_FAILOVER_TIMEOUT_S) * 1_000_000_000)


def task_error(
    task: mesos_pb2.TaskInfo,
    *,
    agent_id: str,
    framework_id: str,
    taken: Container[str],
    in_group: bool = False,
) -> str | None:
    """Why a task cannot launch (answered with TASK_ERROR, REASON_TASK_INVALID). A task of
    a group (`in_group`) runs on the group's executor, which the group checks itself."""
    # Runs for every launched task: each protobuf read is done once.
    task_id = task.task_id.value
    error = id_error(task_id, "Task ID")
    if error:
        return error
    if task_id in taken:
        return f"Task has duplicate ID: {task_id}"
    has_executor = task.HasField("executor") and not in_group
    if not in_group and task.HasField("command") == has_executor:
        return "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present"
    task_agent_id = task.agent_id.value
    if task_agent_id != agent_id:
        return f"Task uses agent id {task_agent_id} but the offer is on agent {agent_id}"
    if not task.resources:
        return "Task uses no resources"
    if has_executor:
        error = executor_error(task.executor, framework_id)
        if error:
            return error
    if task.HasField("kill_policy") and task.kill_policy.grace_period.nanoseconds < 0:
        return "Task's 'kill_policy.grace_period' must be non-negative"
    if task.HasField("max_completion_time") and task.max_completion_time.nanoseconds < 0:
        return "Task's 'max_completion_time' must be non-negative"
    if task.HasField("check"):
        error = check_error(task.check)
        if error:
            return f"Task uses invalid check: {error}"
    if task.HasField("health_check"):
        error = health_check_error(task.health_check)
        if error:
            return f"Task uses invalid health check: {error}"
    if not has_executor and task.command.HasField("environment"):
        error = environment_error(task.command.environment)
        if error:
            return f"Task's `CommandInfo` is invalid: {error}"
    if task.limits:
        return "Task resource limits are not supported by this agent"
    return None


def executor_error(executor: mesos_pb2.ExecutorInfo, framework_id: str) -> str | None:
    error = id_error(executor.executor_id.value, "Executor ID")
    if error:
        return error
    if executor.HasField("framework_id") and executor.framework_id.value != framework_id:
        return (
            f"ExecutorInfo has an invalid FrameworkID (Actual: {executor.framework_id.value}"
            f" vs Expected: {framework_id})"
        )
    if executor.command.HasField("environment"):
        error = environment_error(executor.command.environment)
        if error:
            return f"Executor's `CommandInfo` is invalid: {error}"
    if executor.type == mesos_pb2.ExecutorInfo.DEFAULT:
        if executor.HasField("command"):
            return "'ExecutorInfo.command' must not be set for 'DEFAULT' executor"
    elif not executor.HasField("command"):
        return "'ExecutorInfo.command' must be set for 'CUSTOM' executor"
    return None


# What a task group's executor needs at least (Mesos's MIN_CPUS and MIN_MEM).
MIN_EXECUTOR_CPUS_MILLI = 10
MIN_EXECUTOR_MEM_MB = 32


def group_executor_error(
    executor: mesos_pb2.ExecutorInfo,
    tasks: Iterable[mesos_pb2.TaskInfo],
    amounts: Mapping[str, int],
) -> str | None:
    """Mesos's task::group::internal::validateExecutor past the checks every executor gets
    (`executor_error`); `amounts`: the executor's resources, name -> milli-units."""
    name = executor.executor_id.value
    if not executor.HasField("framework_id"):
        return "'ExecutorInfo.framework_id' must be set"
    if not executor.HasField("type"):
        return "'ExecutorInfo.type' must be set"
    if executor.type == mesos_pb2.ExecutorInfo.UNKNOWN:
        return "Unknown executor type"
    for task in tasks:
        if task.HasField("executor") and task.executor != executor:
            return (f"The `ExecutorInfo` of task '{task.task_id.value}' is different from"
                    f" executor '{name}'")  # fmt: skip
    cpus = amounts.get("cpus")
    if cpus is None or cpus < MIN_EXECUTOR_CPUS_MILLI:
        shown = "None" if cpus is None else f"{cpus / 1000:g}"
        return f"Executor '{name}' uses less CPUs ({shown}) than the minimum required (0.01)"
    mem = amounts.get("mem")
    megabytes = None if mem is None else mem // 1000  # Mesos counts whole megabytes
    if megabytes is None or megabytes < MIN_EXECUTOR_MEM_MB:
        shown = "None" if megabytes is None else f"{megabytes}MB" if megabytes else "0B"
        return (f"Executor '{name}' uses less memory ({shown}) than the minimum required"
                f" ({MIN_EXECUTOR_MEM_MB}MB)")  # fmt: skip
    if "disk" not in amounts:
        return f"Executor '{name}' uses no disk"
    return None


def resource_role_error(resources: Iterable[mesos_pb2.Resource], role: str) -> str | None:
    for resource in resources:
        if resource.HasField("allocation_info") and resource.allocation_info.role != role:
            return allocation_role_error(resource.name, resource.allocation_info.role, role)
    return None


def allocation_role_error(name: str, allocation_role: str, role: str) -> str:
    return (
        f"Resource '{name}' is allocated to role '{allocation_role}'"
        f" but the offer is for role '{role}'"
    )


Variable = mesos_pb2.Environment.Variable


def environment_error(environment: mesos_pb2.Environment) -> str | None:
    for variable in environment.variables:
        name = variable.name
        if variable.type == Variable.UNKNOWN:
            return "Environment variable of type 'UNKNOWN' is not allowed"
        if variable.type == Variable.SECRET:
            if not variable.HasField("secret"):
                return f"Environment variable '{name}' of type 'SECRET' must have a secret set"
            if variable.HasField("value"):
                return f"Environment variable '{name}' of type 'SECRET' must not have a value set"
        else:
            if not variable.HasField("value"):
                return f"Environment variable '{name}' of type 'VALUE' must have a value set"
            if variable.HasField("secret"):
                return f"Environment variable '{name}' of type 'VALUE' must not have a secret set"
    return None


def _command_error(command: mesos_pb2.CommandInfo, check: str) -> str | None:
    """`check`: "check" or "health check"."""
    if not command.HasField("value"):
        kind = "'shell command'" if command.shell else "'executable path'"
        return f"Command {check} must contain {kind}"
    error = environment_error(command.environment)
    if error:
        return f"{check.capitalize()}'s `CommandInfo` is invalid: {error}"
    return None


def _timing_error(check: mesos_pb2.CheckInfo | mesos_pb2.HealthCheck) -> str | None:
    names = ["delay_seconds", "interval_seconds", "timeout_seconds"]
    if isinstance(check, mesos_pb2.HealthCheck):
        names.insert(1, "grace_period_seconds")  # Mesos checks it second
    for name in names:
        if check.HasField(name) and getattr(check, name) < 0:
            return f"Expecting '{name}' to be non-negative"
    return None


def _path_error(
    http: mesos_pb2.CheckInfo.Http | mesos_pb2.HealthCheck.HTTPCheckInfo, what: str
) -> str | None:
    if http.HasField("path") and not http.path.startswith("/"):
        return f"The path '{http.path}' of {what} must start with '/'"
    return None


def check_error(check: mesos_pb2.CheckInfo) -> str | None:
    """Why a task's CheckInfo is invalid (Mesos's common validation)."""
    return _probe_error(check, "check")


def health_check_error(check: mesos_pb2.HealthCheck) -> str | None:
    """Why a task's HealthCheck is invalid (Mesos's common validation)."""
    return _probe_error(check, "health check")


def _probe_error(check: mesos_pb2.CheckInfo | mesos_pb2.HealthCheck, what: str) -> str | None:
    """Both messages number their types alike (COMMAND 1, HTTP 2, TCP 3) and Mesos words their
    errors alike, `what` apart."""
    if not check.HasField("type"):
        return f"{type(check).__name__} must specify 'type'"
    name = type(check).Type.Name(check.type)
    field = name.lower()  # the body the type needs: command, http or tcp
    if check.type == mesos_pb2.CheckInfo.UNKNOWN:
        return f"'{name}' is not a valid {what} type"
    if not check.HasField(field):
        return f"Expecting '{field}' to be set for {name} {what}"
    error = None
    if isinstance(check, mesos_pb2.CheckInfo) and check.type == mesos_pb2.CheckInfo.COMMAND:
        error = _command_error(check.command.command, what)
    elif isinstance(check, mesos_pb2.HealthCheck) and check.type == mesos_pb2.HealthCheck.COMMAND:
        error = _command_error(check.command, what)
    elif check.type == mesos_pb2.CheckInfo.HTTP:
        # Only health checks name a scheme; one set explicitly, even empty, must be valid.
        if isinstance(check, mesos_pb2.HealthCheck) and check.http.HasField("scheme"):
            scheme = check.http.scheme
            if scheme not in ("http", "https"):
                return f"Unsupported HTTP {what} scheme: '{scheme}'"
        error = _path_error(check.http, f"HTTP {what}")
    return error or _timing_error(check)


WEIGHTS_INVALID = "Failed to validate update weights request JSON"


def weights_error(infos: Iterable[mesos_pb2.WeightInfo]) -> str | None:
    """Why an UPDATE_WEIGHTS is refused (Mesos's weights handler, its messages)."""
    for info in infos:
        role = info.role.strip()
        error = role_error(role)
        if error:
            return f"{WEIGHTS_INVALID}: Invalid role '{role}': {error}"
        if not info.weight > 0 or not math.isfinite(info.weight):
            return (
                f"{WEIGHTS_INVALID} for role '{role}': Invalid weight '{info.weight:g}':"
                " Weights must be positive"
            )
    return None


def weight_milli(weight: float) -> int:
    """A positive weight in the fold's milli-units; the smallest is 0.001."""
    return max(1, round(weight * 1000))


QUOTA_INVALID = "Invalid QuotaConfig"
MIN_NORMAL_FLOAT = 2.2250738585072014e-308  # below it (but not zero) a double is subnormal
EXABYTE_IN_MB = 1024**4
TRILLION = 1000**4


def quota_configs_error(configs: Iterable[quota_pb2.QuotaConfig]) -> str | None:
    """Why an UPDATE_QUOTA is refused before looking at the cluster (Mesos's
    quota::validate and its nested-role check, their messages)."""
    for config in configs:
        role = config.role
        if "/" in role:
            return f"Updating quota on nested role '{role}' is not supported yet"
        error = _quota_config_error(config)
        if error is not None:
            return f"{QUOTA_INVALID}: {error}"
    return None


def _quota_config_error(config: quota_pb2.QuotaConfig) -> str | None:
    if not config.HasField("role"):
        return "'QuotaConfig.role' must be set"
    error = role_error(config.role)
    if error:
        return f"Invalid 'QuotaConfig.role': {error}"
    for field, scalars in (("guarantees", config.guarantees), ("limits", config.limits)):
        for name in sorted(scalars):
            value = scalars[name].value
            bound, words = (
                (EXABYTE_IN_MB, "1 exabyte")
                if name in ("mem", "disk")
                else (TRILLION, "1 trillion")
            )
            if value > bound:
                return (
                    f"Invalid 'QuotaConfig.{field}': {{'{name}': {value:g}}} is invalid:"
                    f" values greater than {words} ({bound}) are not supported"
                )
    for field, scalars in (("guarantee", config.guarantees), ("limit", config.limits)):
        for name in sorted(scalars):
            value = scalars[name].value
            problem = scalar_value_error(value)
            if problem:
                return f"Invalid {field} configuration {{'{name}': {value:g}}}: {problem}"
    for name in sorted(config.guarantees):
        limit = config.limits.get(name)
        if limit is not None and config.guarantees[name].value > limit.value:
            return (
                f"'QuotaConfig.guarantees' {_scalar_map(config.guarantees)} is not contained"
                f" within the 'QuotaConfig.limits' {_scalar_map(config.limits)}"
            )
    return None


def scalar_value_error(value: float) -> str | None:
    """Mesos's validateInputScalarValue."""
    if math.isinf(value):
        return "Infinite values not supported"
    if math.isnan(value):
        return "NaN not supported"
    if value != 0 and abs(value) < MIN_NORMAL_FLOAT:
        return "Subnormal values not supported"
    if value < 0:
        return "Negative values not supported"
    return None


def _scalar_map(scalars: Mapping[str, mesos_pb2.Value.Scalar]) -> str:
    return "{ " + ", ".join(f"{name}: {scalars[name].value:g}" for name in sorted(scalars)) + " }"
