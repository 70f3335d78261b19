"""`--resources` / `--attributes` parsing and host resource detection."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from meseta.agent import detect
from meseta.master import resources as res
from meseta.proto.mesos.v1 import mesos_pb2


def test_text_and_json_forms_agree() -> None:
    text = detect.parse_resources("cpus:4;mem(web):1024;ports:[31000-31005,32000-32000]")
    json = detect.parse_resources(
        '[{"name":"cpus","type":"SCALAR","scalar":{"value":4}},'
        '{"name":"mem","type":"SCALAR","scalar":{"value":1024},"role":"web"},'
        '{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":31005},'
        '{"begin":32000,"end":32000}]}}]'
    )
    assert text == json
    assert res.format_resources(text) == "cpus:4;mem(web):1024;ports:[31000-31005,32000-32000]"


def test_default_role_applies_to_unreserved_resources() -> None:
    parsed = detect.parse_resources("cpus:1;mem(*):2", default_role="web")
    assert res.format_resources(parsed) == "cpus(web):1;mem:2"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cpus:four", "'four' is not a number"),
        ("cpus", "expected name[(role)]:value"),
        ("ports:[5-1]", "begin > end"),
        ("cpus:-1", "non-negative"),
        ('[{"name":"cpus"}]', "Missing required fields: type"),
        ("[1,", "Failed to parse --resources"),
        ('{"name":"cpus"}', "Failed to parse --resources"),
    ],
)
def test_bad_resources_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(detect.ResourceFlagError, match="Failed to parse --resources") as error:
        detect.parse_resources(text)
    assert message in str(error.value)


def test_attributes_scalar_ranges_text() -> None:
    attributes = detect.parse_attributes("rack:r7;cores:8;slots:[1-4,6-6];zone:eu-1a")
    kinds = [(a.name, a.type) for a in attributes]
    assert kinds == [
        ("rack", mesos_pb2.Value.TEXT),
        ("cores", mesos_pb2.Value.SCALAR),
        ("slots", mesos_pb2.Value.RANGES),
        ("zone", mesos_pb2.Value.TEXT),
    ]
    assert attributes[1].scalar.value == 8
    assert [(r.begin, r.end) for r in attributes[2].ranges.range] == [(1, 4), (6, 6)]
    with pytest.raises(detect.ResourceFlagError, match="'rack' is not name:value"):
        detect.parse_attributes("rack")


def test_detection_fills_what_the_flag_leaves_out(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    dev.mkdir()
    given = detect.parse_resources("cpus:3")
    found = detect.detect(tmp_path, given, dev=dev)
    names = [name for name, _role, _shape in found.items]
    assert names == ["cpus", "disk", "mem", "ports"]
    assert found.scalar("cpus") == 3000  # the flag wins
    assert found.items[("ports", "*", "")] == ((31000, 32000),)
    assert found.scalar("mem") > 0 and found.scalar("disk") > 0


def test_gpus_are_detected_from_nvidia_devices(tmp_path: Path) -> None:
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm"):
        (tmp_path / name).touch()
    found = detect.detect(tmp_path, detect.parse_resources("cpus:1;mem:1;disk:1"), dev=tmp_path)
    assert found.scalar("gpus") == 2000


def disk_json(kind: str, root: str) -> str:
    source = {"type": kind, kind.lower(): {"root": root}} if root else {"type": kind}
    return orjson.dumps(
        [{"name": "disk", "type": "SCALAR", "scalar": {"value": 512}, "disk": {"source": source}}]
    ).decode()


def test_path_and_mount_disks_are_declared_and_checked_as_mesos_checks_them(
    tmp_path: Path,
) -> None:
    """A PATH disk's root is made if missing (relative: under the work dir); a MOUNT disk's
    must be a mount point."""
    work = tmp_path / "work"
    declared = detect.agent_resources(work, disk_json("PATH", "disks/a"), "*")
    (path_disk,) = [r for r in declared if r.HasField("disk")]
    assert path_disk.disk.source.path.root == "disks/a" and (work / "disks" / "a").is_dir()
    (mount_disk,) = [
        r for r in detect.agent_resources(work, disk_json("MOUNT", "/proc"), "*")
        if r.HasField("disk")
    ]  # fmt: skip
    assert mount_disk.disk.source.type == mesos_pb2.Resource.DiskInfo.Source.MOUNT
    for text, message in [
        (disk_json("MOUNT", str(tmp_path)), f"Failed to find mount '{tmp_path}' in /proc/mounts"),
        (disk_json("MOUNT", str(tmp_path / "nope")), "Failed to determine `realpath`"),
        (disk_json("PATH", ""), "PATH disk root directory is not specified 'disk[PATH]:512'"),
        (disk_json("BLOCK", ""), "BLOCK disk sources are not supported"),
    ]:
        with pytest.raises(detect.ResourceFlagError, match=re.escape(message)):
            detect.agent_resources(work, text, "*")


def test_the_mount_table_is_read_with_its_escapes(tmp_path: Path) -> None:
    table = tmp_path / "mounts"
    table.write_text("/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 /mnt/my\\040disk ext4 rw 0 0\n")
    assert detect.mount_points(table) == {"/", "/mnt/my disk"}
