"""`--resources` / `--attributes` parsing and host resource detection."""

from __future__ import annotations

from pathlib import Path

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
