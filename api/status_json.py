"""Mesos's hand-written JSON of a TaskStatus (common/http.cpp), as the master's and the
agent's /state write it: not its protobuf JSON, but `state`, `timestamp`, `labels`,
`healthy` and a ContainerStatus cut to `container_id`, `network_infos` and `cgroup_info`
(no `executor_pid`)."""

from __future__ import annotations

from collections.abc import Callable

from meseta.api import mesos_json
from meseta.api.mesos_json import Json
from meseta.proto.mesos.v1 import mesos_pb2

# By value: a dict lookup, not the protobuf enum's slower Name() (this runs per status).
TASK_STATE_NAMES = {value: name for name, value in mesos_pb2.TaskState.items()}


def labels(message: mesos_pb2.Labels) -> list[Json]:
    """Mesos writes each Label as its protobuf JSON: `key`, and `value` when set."""
    out: list[Json] = []
    for label in message.labels:
        out.append(
            {"key": label.key, "value": label.value}
            if label.HasField("value")
            else {"key": label.key}
        )
    return out


def container_status(status: mesos_pb2.ContainerStatus) -> dict[str, Json]:
    out: dict[str, Json] = {}
    if status.HasField("container_id"):
        out["container_id"] = mesos_json.to_dict(status.container_id)
    if status.network_infos:
        networks: list[Json] = []
        for info in status.network_infos:
            network = mesos_json.to_dict(info)
            if info.HasField("labels"):
                network["labels"] = labels(info.labels)
            networks.append(network)
        out["network_infos"] = networks
    if status.HasField("cgroup_info"):
        out["cgroup_info"] = mesos_json.to_dict(status.cgroup_info)
    return out


def status_dict(
    status: mesos_pb2.TaskStatus, labels_of: Callable[[mesos_pb2.Labels], Json] = labels
) -> dict[str, Json]:
    """`labels_of` writes the status's labels (the master caches their JSON)."""
    out: dict[str, Json] = {"state": TASK_STATE_NAMES[status.state], "timestamp": status.timestamp}
    if status.HasField("labels"):
        out["labels"] = labels_of(status.labels)
    if status.HasField("container_status"):
        out["container_status"] = container_status(status.container_status)
    if status.HasField("healthy"):
        out["healthy"] = status.healthy
    return out
