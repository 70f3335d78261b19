"""The agent's resources and attributes: parsed from the flags, detected on the host.

`--resources` takes Mesos's text form (`cpus:4;mem(role):1024;ports:[31000-32000]`)
or a JSON array of `mesos.v1.Resource`; whatever it leaves out of cpus, mem,
disk and ports is detected as the Mesos agent does (contract 5.5), and gpus
when NVIDIA devices exist. `--attributes` is `name:value;...`: numbers become
SCALAR, `[a-b,...]` RANGES, anything else TEXT.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import cast

import orjson

from meseta.api import mesos_json
from meseta.master import resources as res
from meseta.proto.mesos.v1 import mesos_pb2

MB = 1 << 20
GB = 1 << 30
DEFAULT_PORTS = "[31000-32000]"
_NVIDIA_DEVICE = re.compile(r"^nvidia[0-9]+$")
_NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


class ResourceFlagError(ValueError):
    """A `--resources` or `--attributes` value that cannot be used."""


def parse_resources(text: str, default_role: str = res.UNRESERVED) -> res.Resources:
    """`--resources` in text or JSON form; ResourceFlagError says what is wrong."""
    try:
        if text.lstrip().startswith("["):
            given = res.from_protos(_json_resources(text, default_role))
            if given.shaped():  # Mesos's agent refuses them in its flag too
                raise res.ResourceError(
                    "dynamic reservations and persistent volumes cannot be declared"
                )
            return given
        return res.parse(text, default_role=default_role)
    except (res.ResourceError, mesos_json.MesosJsonError, orjson.JSONDecodeError) as error:
        raise ResourceFlagError(f"Failed to parse --resources '{text}': {error}") from None


def _json_resources(text: str, default_role: str) -> list[mesos_pb2.Resource]:
    items = orjson.loads(text)
    if not isinstance(items, list):
        raise res.ResourceError("expected a JSON array of resources")
    out = []
    for item in items:
        resource = mesos_json.from_dict(item, mesos_pb2.Resource)
        if not resource.HasField("type"):
            raise res.ResourceError(f"resource '{resource.name}' has no type")
        if not resource.reservations and not resource.HasField("role") and default_role != "*":
            resource.role = default_role
        out.append(resource)
    return out


def parse_attributes(text: str) -> list[mesos_pb2.Attribute]:
    attributes = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, sep, value = part.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise ResourceFlagError(f"Failed to parse --attributes: '{part}' is not name:value")
        attribute = mesos_pb2.Attribute(name=name)
        if _NUMBER.match(value):
            attribute.type = mesos_pb2.Value.SCALAR
            attribute.scalar.value = float(value)
        elif value.startswith("[") and value.endswith("]"):
            try:
                ranges = res.parse_value(name, value)
            except res.ResourceError as error:
                raise ResourceFlagError(f"Failed to parse --attributes: {error}") from None
            attribute.type = mesos_pb2.Value.RANGES
            for begin, end in cast(res.Ranges, ranges):
                attribute.ranges.range.add(begin=begin, end=end)
        else:
            attribute.type = mesos_pb2.Value.TEXT
            attribute.text.value = value
        attributes.append(attribute)
    return attributes


def detect(work_dir: Path, given: res.Resources, default_role: str = res.UNRESERVED,
           dev: Path = Path("/dev")) -> res.Resources:  # fmt: skip
    """`given` plus the detected standard resources it does not name."""
    named = {name for (name, _role, _shape) in given.items}
    detected: list[str] = []
    if "cpus" not in named:
        detected.append(f"cpus:{os.cpu_count() or 1}")
    if "mem" not in named:
        detected.append(f"mem:{_mem_mb()}")
    if "disk" not in named:
        detected.append(f"disk:{_disk_mb(work_dir)}")
    if "ports" not in named:
        detected.append(f"ports:{DEFAULT_PORTS}")
    if "gpus" not in named:
        gpus = _nvidia_gpus(dev)
        if gpus:
            detected.append(f"gpus:{gpus}")
    if not detected:
        return given
    return given + res.parse(";".join(detected), default_role=default_role)


def _mem_mb() -> int:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 1024
    usable = total - GB if total >= 2 * GB else total // 2
    return usable // MB


def _disk_mb(work_dir: Path) -> int:
    probe = work_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        total = shutil.disk_usage(probe).total
    except OSError:
        return 10 * 1024
    usable = total - 5 * GB if total >= 10 * GB else total // 2
    return usable // MB


def _nvidia_gpus(dev: Path) -> int:
    try:
        return sum(1 for entry in sorted(os.listdir(dev)) if _NVIDIA_DEVICE.match(entry))
    except OSError:
        return 0


def agent_resources(
    work_dir: Path, text: str | None, default_role: str
) -> list[mesos_pb2.Resource]:
    """The AgentInfo resources for these flags (pre-refinement form, as agents send)."""
    given = parse_resources(text, default_role) if text else res.Resources()
    prepare_disks(work_dir, given)
    return res.to_protos(detect(work_dir, given, default_role), refined=False)


def prepare_disks(work_dir: Path, given: res.Resources) -> None:
    """What Mesos's agent checks of its PATH and MOUNT disks before it starts: a PATH disk's
    root is made if missing, a MOUNT disk's must be a mount point. A relative root is under
    the work dir (where the agent puts its volumes too)."""
    for key, quantity in given:
        source = res.key_source(key)
        if source is None:
            continue
        kind = "MOUNT" if source.type == res.MOUNT else "PATH"
        named = source.mount.root if source.type == res.MOUNT else source.path.root
        label = res.format_resources(res.Resources({key: quantity}))
        if not named:
            raise ResourceFlagError(f"{kind} disk root directory is not specified '{label}'")
        root = work_dir / named
        if source.type == res.PATH:
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise ResourceFlagError(
                    f"Failed to create DiskInfo path directory '{named}': {error}"
                ) from None
            continue
        if not root.exists():
            raise ResourceFlagError(
                f"Failed to determine `realpath` for DiskInfo mount in resource '{label}'"
                f" with path '{named}': no such path"
            )
        real = os.path.realpath(root)
        if real not in mount_points():
            raise ResourceFlagError(f"Failed to find mount '{real}' in /proc/mounts")


def mount_points(table: Path = Path("/proc/mounts")) -> set[str]:
    """The mount points the mount table lists (its octal escapes, e.g. \\040, undone)."""
    try:
        lines = table.read_text().splitlines()
    except OSError:
        return set()
    points: set[str] = set()
    for line in lines:
        fields = line.split()
        if len(fields) > 1:
            points.add(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1]))
    return points
