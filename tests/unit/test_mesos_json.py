"""meseta.api.mesos_json: protobuf <-> JSON the way Mesos (stout) maps them.

Goldens are the shapes in the API contract (section 2.7) and what stout's emitter and
parser do (section 1.2; design B.6). Byte-level comparisons use orjson with sorted keys so
that `4` and `4.0` stay distinct.
"""

from __future__ import annotations

import base64
import math
import re
from typing import Any

import orjson
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message
from hypothesis import given
from hypothesis import strategies as st

from meseta.api import mesos_json
from meseta.api.mesos_json import (
    MesosJsonError,
    from_dict,
    from_json,
    from_protobuf,
    to_dict,
    to_json,
)
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.scheduler import scheduler_pb2


def canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def assert_json_equal(actual: Any, expected: Any) -> None:
    assert canonical(actual) == canonical(expected)


# --- Contract samples (section 2.7), with the elided ids filled in --------------------------

SUBSCRIBE = {
    "type": "SUBSCRIBE",
    "subscribe": {
        "framework_info": {
            "user": "svc-batch",
            "name": "batch-runner",
            "roles": ["batch"],
            "capabilities": [{"type": "MULTI_ROLE"}, {"type": "PARTITION_AWARE"}],
            "checkpoint": True,
            "failover_timeout": 604800,
        }
    },
}

OFFERS = {
    "type": "OFFERS",
    "offers": {
        "offers": [
            {
                "id": {"value": "8d2c-O17"},
                "framework_id": {"value": "8d2c-0003"},
                "agent_id": {"value": "8d2c-S2"},
                "hostname": "a2.example",
                "url": {
                    "scheme": "http",
                    "address": {"hostname": "a2.example", "ip": "10.1.0.12", "port": 5051},
                    "path": "/slave(1)",
                },
                "allocation_info": {"role": "batch"},
                "resources": [
                    {
                        "name": "cpus",
                        "type": "SCALAR",
                        "scalar": {"value": 4.0},
                        "allocation_info": {"role": "batch"},
                    },
                    {
                        "name": "mem",
                        "type": "SCALAR",
                        "scalar": {"value": 7680.0},
                        "allocation_info": {"role": "batch"},
                    },
                    {
                        "name": "ports",
                        "type": "RANGES",
                        "ranges": {"range": [{"begin": 31000, "end": 32000}]},
                        "allocation_info": {"role": "batch"},
                    },
                ],
                "attributes": [{"name": "rack", "type": "TEXT", "text": {"value": "r7"}}],
            }
        ]
    },
}

UPDATE = {
    "type": "UPDATE",
    "update": {
        "status": {
            "task_id": {"value": "job-42"},
            "state": "TASK_RUNNING",
            "source": "SOURCE_EXECUTOR",
            "agent_id": {"value": "8d2c-S2"},
            "executor_id": {"value": "job-42"},
            "timestamp": 1724430000.12,
            "uuid": "q83vEjRWR8C9Xy5mYn0Qjw==",
        }
    },
}

ACKNOWLEDGE = {
    "type": "ACKNOWLEDGE",
    "framework_id": {"value": "8d2c-0003"},
    "acknowledge": {
        "agent_id": {"value": "8d2c-S2"},
        "task_id": {"value": "job-42"},
        "uuid": "q83vEjRWR8C9Xy5mYn0Qjw==",
    },
}

# As pymesos sends it: integers where doubles are declared.
PYMESOS_ACCEPT = (
    b'{"type":"ACCEPT","framework_id":{"value":"x"},"accept":{"offer_ids":[{"value":"o"}],'
    b'"operations":[{"type":"LAUNCH","launch":{"task_infos":[{"name":"t","task_id":{"value":"t"},'
    b'"agent_id":{"value":"a"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.5}}],'
    b'"command":{"value":"echo hi"}}]}}],"filters":{"refuse_seconds":10}}}'
)


# --- Output ---------------------------------------------------------------------------------


def test_subscribed_event_golden_bytes() -> None:
    event = scheduler_pb2.Event(type=scheduler_pb2.Event.SUBSCRIBED)
    event.subscribed.framework_id.value = "6f1c-0000"
    event.subscribed.heartbeat_interval_seconds = 15.0
    # Byte for byte the record of the contract's RecordIO example (section 1.3).
    assert to_json(event) == (
        b'{"type":"SUBSCRIBED","subscribed":{"framework_id":{"value":"6f1c-0000"},'
        b'"heartbeat_interval_seconds":15.0}}'
    )


def test_error_event_nests_the_message() -> None:
    event = scheduler_pb2.Event(type=scheduler_pb2.Event.ERROR)
    event.error.message = "Framework has been removed"
    assert to_json(event) == b'{"type":"ERROR","error":{"message":"Framework has been removed"}}'


def test_heartbeat_event() -> None:
    assert to_json(scheduler_pb2.Event(type=scheduler_pb2.Event.HEARTBEAT)) == (
        b'{"type":"HEARTBEAT"}'
    )


def test_offers_event_round_trips_exactly() -> None:
    event = from_dict(OFFERS, scheduler_pb2.Event)
    offer = event.offers.offers[0]
    assert offer.resources[2].ranges.range[0].end == 32000
    assert offer.attributes[0].type == mesos_pb2.Value.TEXT
    # Resource.role has a default ("*") but is deprecated: not emitted.
    assert_json_equal(to_dict(event), OFFERS)


def test_update_event_round_trips_with_base64_uuid() -> None:
    event = from_dict(UPDATE, scheduler_pb2.Event)
    status = event.update.status
    assert status.uuid == base64.b64decode("q83vEjRWR8C9Xy5mYn0Qjw==")
    assert len(status.uuid) == 16
    assert status.state == mesos_pb2.TASK_RUNNING
    assert status.timestamp == 1724430000.12
    assert_json_equal(to_dict(event), UPDATE)


def test_acknowledge_call_round_trips() -> None:
    call = from_dict(ACKNOWLEDGE, scheduler_pb2.Call)
    assert call.acknowledge.uuid == base64.b64decode("q83vEjRWR8C9Xy5mYn0Qjw==")
    assert_json_equal(to_dict(call), ACKNOWLEDGE)


def test_subscribe_call_round_trips_with_doubles_as_doubles() -> None:
    call = from_dict(SUBSCRIBE, scheduler_pb2.Call)
    info = call.subscribe.framework_info
    assert info.failover_timeout == 604800.0
    assert [c.type for c in info.capabilities] == [
        mesos_pb2.FrameworkInfo.Capability.MULTI_ROLE,
        mesos_pb2.FrameworkInfo.Capability.PARTITION_AWARE,
    ]
    expected = orjson.loads(orjson.dumps(SUBSCRIBE))
    expected["subscribe"]["framework_info"]["failover_timeout"] = 604800.0
    assert_json_equal(to_dict(call), expected)


def test_defaults_are_emitted_unless_deprecated() -> None:
    info = mesos_pb2.FrameworkInfo(user="u", name="n")
    # failover_timeout and checkpoint declare defaults; role ("*") is deprecated.
    assert to_json(info) == b'{"user":"u","name":"n","failover_timeout":0.0,"checkpoint":false}'
    assert to_dict(mesos_pb2.Filters()) == {"refuse_seconds": 5.0}
    assert to_dict(mesos_pb2.CommandInfo(value="ls")) == {"shell": True, "value": "ls"}
    # An enum default is emitted by name.
    assert to_dict(mesos_pb2.HealthCheck.HTTPCheckInfo(port=80)) == {
        "protocol": "IPv4",
        "port": 80,
    }
    # A set value wins over the default, and a set deprecated field is emitted.
    info.checkpoint = True
    info.role = "batch"
    assert to_dict(info)["checkpoint"] is True
    assert to_dict(info)["role"] == "batch"


def test_required_fields_with_defaults_are_emitted_too() -> None:
    # stout does not look at the label: MasterInfo.port is `required ... [default = 5050]`.
    assert to_dict(mesos_pb2.MasterInfo(id="m", ip=1))["port"] == 5050


def test_fields_come_in_declaration_order() -> None:
    info = mesos_pb2.FrameworkInfo(
        user="u", name="n", hostname="h", roles=["a"], role="r", checkpoint=True
    )
    # roles (12) is declared between role (6) and hostname (7), as Mesos emits it.
    assert list(to_dict(info)) == [
        "user", "name", "failover_timeout", "checkpoint", "role", "roles", "hostname",
    ]  # fmt: skip
    # A default (shell = 6) declared before a set field (value = 3) goes before it.
    assert to_json(mesos_pb2.CommandInfo(value="ls", user="u")) == (
        b'{"shell":true,"value":"ls","user":"u"}'
    )


def test_64_bit_integers_are_numbers() -> None:
    assert to_json(mesos_pb2.DurationInfo(nanoseconds=2**62)) == (
        b'{"nanoseconds":4611686018427387904}'
    )
    assert to_json(mesos_pb2.TimeInfo(nanoseconds=-(2**63))) == (
        b'{"nanoseconds":-9223372036854775808}'
    )
    ranges = mesos_pb2.Value.Range(begin=0, end=2**64 - 1)
    assert to_json(ranges) == b'{"begin":0,"end":18446744073709551615}'
    assert from_json(to_json(ranges), mesos_pb2.Value.Range) == ranges


def test_empty_repeated_and_unset_optional_fields_are_omitted() -> None:
    assert to_dict(mesos_pb2.Resource(name="cpus", type=mesos_pb2.Value.SCALAR)) == {
        "name": "cpus",
        "type": "SCALAR",
    }
    assert to_dict(mesos_pb2.Labels()) == {}


def test_set_but_empty_message_is_an_empty_object() -> None:
    call = scheduler_pb2.Call(type=scheduler_pb2.Call.REVIVE)
    call.revive.SetInParent()
    assert to_dict(call) == {"type": "REVIVE", "revive": {}}


def test_non_finite_doubles_are_strings() -> None:
    assert to_dict(mesos_pb2.Value.Scalar(value=math.inf)) == {"value": "Infinity"}
    assert to_dict(mesos_pb2.Value.Scalar(value=-math.inf)) == {"value": "-Infinity"}
    assert to_dict(mesos_pb2.Value.Scalar(value=math.nan)) == {"value": "NaN"}


def test_map_fields_are_objects() -> None:
    task = mesos_pb2.TaskInfo(name="t")
    task.limits["cpus"].value = math.inf
    task.limits["mem"].value = 128.0
    assert to_dict(task)["limits"] == {"cpus": {"value": "Infinity"}, "mem": {"value": 128.0}}
    parsed = from_dict(
        {
            "name": "t",
            "task_id": {"value": "t"},
            "agent_id": {"value": "a"},
            "limits": {"cpus": {"value": "Infinity"}, "mem": {"value": 128}},
        },
        mesos_pb2.TaskInfo,
    )
    assert math.isinf(parsed.limits["cpus"].value)
    assert parsed.limits["mem"].value == 128.0


def test_set_oneof_member_is_emitted() -> None:
    selector = scheduler_pb2.AttributeConstraint.Selector(attribute_name="rack")
    assert to_dict(selector) == {"attribute_name": "rack"}
    selector.pseudoattribute_type = scheduler_pb2.AttributeConstraint.Selector.HOSTNAME
    assert to_dict(selector) == {"pseudoattribute_type": "HOSTNAME"}
    assert from_dict(to_dict(selector), type(selector)) == selector


def test_plans_are_cached_and_a_large_offer_converts() -> None:
    offer = mesos_pb2.Offer(hostname="h")
    offer.id.value = "o"
    offer.framework_id.value = "f"
    offer.agent_id.value = "a"
    for index in range(1000):
        resource = offer.resources.add(name=f"r{index}", type=mesos_pb2.Value.SCALAR)
        resource.scalar.value = index + 0.5
        resource.allocation_info.role = "batch"
    rendered = to_dict(offer)
    resources = rendered["resources"]
    assert isinstance(resources, list)
    assert len(resources) == 1000
    assert resources[999] == {
        "name": "r999",
        "type": "SCALAR",
        "scalar": {"value": 999.5},
        "allocation_info": {"role": "batch"},
    }
    assert mesos_pb2.Resource.DESCRIPTOR in mesos_json._OUT_PLANS
    assert from_json(to_json(offer), mesos_pb2.Offer) == offer
    assert mesos_pb2.Resource.DESCRIPTOR in mesos_json._IN_PLANS


# --- Input ----------------------------------------------------------------------------------


def test_parses_a_pymesos_accept() -> None:
    call = from_json(PYMESOS_ACCEPT, scheduler_pb2.Call)
    assert call.type == scheduler_pb2.Call.ACCEPT
    operation = call.accept.operations[0]
    assert operation.type == mesos_pb2.Offer.Operation.LAUNCH
    task = operation.launch.task_infos[0]
    assert task.resources[0].scalar.value == 0.5
    assert task.command.value == "echo hi"
    assert not task.command.HasField("shell")
    assert call.accept.filters.refuse_seconds == 10.0
    # Back out: doubles as doubles, and the declared default `shell: true` appears.
    expected = orjson.loads(PYMESOS_ACCEPT)
    expected["accept"]["filters"]["refuse_seconds"] = 10.0
    expected["accept"]["operations"][0]["launch"]["task_infos"][0]["command"]["shell"] = True
    assert_json_equal(to_dict(call), expected)


def test_unknown_fields_are_ignored_at_any_depth() -> None:
    call = from_dict(
        {
            "type": "REVIVE",
            "future_field": {"a": [1, 2]},
            "framework_id": {"value": "f", "extra": True},
            "frameworkId": {"value": "camelCase is not a field name to Mesos"},
        },
        scheduler_pb2.Call,
    )
    assert call.framework_id.value == "f"
    assert to_dict(call) == {"framework_id": {"value": "f"}, "type": "REVIVE"}


def test_nulls_mean_unset() -> None:
    call = from_dict(
        {"type": "REVIVE", "framework_id": None, "revive": {"roles": [None, "a", None]}},
        scheduler_pb2.Call,
    )
    assert not call.HasField("framework_id")
    assert list(call.revive.roles) == ["a"]


def test_unknown_optional_enum_name_is_dropped() -> None:
    call = from_dict({"type": "NOT_A_CALL_TYPE"}, scheduler_pb2.Call)
    assert not call.HasField("type")
    info = from_dict(
        {"user": "u", "name": "n", "capabilities": [{"type": "FUTURE"}, {"type": "MULTI_ROLE"}]},
        mesos_pb2.FrameworkInfo,
    )
    assert not info.capabilities[0].HasField("type")
    assert info.capabilities[1].type == mesos_pb2.FrameworkInfo.Capability.MULTI_ROLE


def test_unknown_names_in_a_repeated_enum_are_dropped() -> None:
    info = from_dict({"capabilities": ["CHOWN", "NOT_A_CAP", "KILL"]}, mesos_pb2.CapabilityInfo)
    assert list(info.capabilities) == [
        mesos_pb2.CapabilityInfo.CHOWN,
        mesos_pb2.CapabilityInfo.KILL,
    ]


def test_unknown_required_enum_name_is_an_error() -> None:
    with pytest.raises(
        MesosJsonError,
        match=r"^request\.requests\[0\]\.resources\[0\]\.type: unknown value 'BOGUS'",
    ):
        from_dict(
            {"type": "REQUEST", "request": {"requests": [{"resources": [{"type": "BOGUS"}]}]}},
            scheduler_pb2.Call,
        )


def test_missing_required_fields_name_their_path() -> None:
    with pytest.raises(MesosJsonError) as caught:
        from_dict({"type": "SUBSCRIBE", "subscribe": {"framework_info": {"name": "x"}}},
                  scheduler_pb2.Call)  # fmt: skip
    assert str(caught.value) == "Missing required fields: subscribe.framework_info.user"
    with pytest.raises(MesosJsonError) as caught:
        from_dict({"type": "ACCEPT", "accept": {"operations": [{"launch": {"task_infos": [{}]}}]}},
                  scheduler_pb2.Call)  # fmt: skip
    message = str(caught.value)
    assert message.startswith("Missing required fields: ")
    assert "accept.operations[0].launch.task_infos[0].task_id" in message
    assert "accept.operations[0].launch.task_infos[0].agent_id" in message


def test_integers_accept_numeric_strings_and_integral_floats() -> None:
    duration = from_dict({"nanoseconds": "4611686018427387904"}, mesos_pb2.DurationInfo)
    assert duration.nanoseconds == 2**62
    assert from_dict({"nanoseconds": "-5"}, mesos_pb2.DurationInfo).nanoseconds == -5
    assert from_dict({"nanoseconds": "1e3"}, mesos_pb2.DurationInfo).nanoseconds == 1000
    assert from_dict({"nanoseconds": 7.0}, mesos_pb2.DurationInfo).nanoseconds == 7
    ranges = from_dict({"begin": "18446744073709551615", "end": 1}, mesos_pb2.Value.Range)
    assert ranges.begin == 2**64 - 1


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (1.5, "1.5 is not an integer"),
        ("1.5", "1.5 is not an integer"),
        ("12abc", "expected an integer, got string '12abc'"),
        (" 12", "expected an integer, got string"),
        ("", "expected an integer, got string"),
        (True, "expected an integer, got boolean"),
        ([1], "expected an integer, got array"),
        ({"n": 1}, "expected an integer, got object"),
        (2**63, "out of range"),
        ("-9223372036854775809", "out of range"),
        ("Infinity", "expected an integer"),
    ],
)
def test_bad_integers_are_rejected(value: object, error: str) -> None:
    with pytest.raises(MesosJsonError, match="^nanoseconds: .*" + re.escape(error)):
        from_dict({"nanoseconds": value}, mesos_pb2.DurationInfo)


def test_uint_rejects_negative() -> None:
    with pytest.raises(
        MesosJsonError, match=r"begin: -1 is out of range \[0, 18446744073709551615\]"
    ):
        from_dict({"begin": -1, "end": 1}, mesos_pb2.Value.Range)


def test_doubles_accept_numbers_and_strings() -> None:
    def parse(value: object) -> float:
        return from_dict({"value": value}, mesos_pb2.Value.Scalar).value

    assert parse(3) == 3.0
    assert parse(2.5) == 2.5
    assert parse("2.5") == 2.5
    assert parse("Infinity") == math.inf
    assert parse("-Infinity") == -math.inf
    assert math.isnan(parse("NaN"))
    for bad, kind in [("inf", "string 'inf'"), (True, "boolean"), ({}, "object"), ([1.0], "array")]:
        with pytest.raises(MesosJsonError, match=f"value: expected a number, got {kind}"):
            parse(bad)
    with pytest.raises(MesosJsonError, match="too large for a double"):
        parse(10**400)


def test_non_finite_doubles_round_trip_through_json() -> None:
    scalar = mesos_pb2.Value.Scalar(value=-math.inf)
    assert to_json(scalar) == b'{"value":"-Infinity"}'
    assert from_json(to_json(scalar), mesos_pb2.Value.Scalar) == scalar


def test_bools_accept_true_and_false_strings_only() -> None:
    base = {"user": "u", "name": "n"}
    assert from_dict({**base, "checkpoint": True}, mesos_pb2.FrameworkInfo).checkpoint is True
    assert from_dict({**base, "checkpoint": "true"}, mesos_pb2.FrameworkInfo).checkpoint is True
    assert from_dict({**base, "checkpoint": "false"}, mesos_pb2.FrameworkInfo).checkpoint is False
    for bad, kind in [(1, "number"), ("yes", "string"), ("True", "string")]:
        with pytest.raises(MesosJsonError, match=f"checkpoint: expected a boolean, got {kind}"):
            from_dict({**base, "checkpoint": bad}, mesos_pb2.FrameworkInfo)


def test_bytes_accept_standard_urlsafe_and_unpadded_base64() -> None:
    raw = bytes([0xFB, 0xFF, 0xFE, 0x01])
    for text in ["+//+AQ==", "+//+AQ", "-__-AQ==", "-__-AQ"]:
        parsed = from_dict({"data": text}, mesos_pb2.Secret.Value)
        assert parsed.data == raw, text
    assert to_dict(mesos_pb2.Secret.Value(data=raw))["data"] == "+//+AQ=="
    assert from_dict({"data": ""}, mesos_pb2.Secret.Value).HasField("data")
    for bad in ["a", "ab=c", "abc===", "ab c", "@@@@"]:
        with pytest.raises(MesosJsonError, match="data: invalid base64"):
            from_dict({"data": bad}, mesos_pb2.Secret.Value)
    with pytest.raises(MesosJsonError, match="data: expected a base64 string, got number"):
        from_dict({"data": 12}, mesos_pb2.Secret.Value)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"type": 1}, "type: expected an enum value name, got number"),
        ({"framework_id": "f"}, "framework_id: expected an object, got string"),
        ({"framework_id": {"value": 5}}, "framework_id.value: expected a string, got number"),
        ({"framework_id": [{"value": "f"}]}, "framework_id: expected an object, got array"),
        ({"revive": {"roles": [["a"]]}}, r"revive\.roles\[0\]: expected a string, got array"),
        ({"revive": {"roles": [{}]}}, r"revive\.roles\[0\]: expected a string, got object"),
        (
            {"accept": {"offer_ids": ["o"]}},
            r"accept\.offer_ids\[0\]: expected an object, got string",
        ),
    ],
)
def test_wrong_json_types_are_rejected_with_a_path(body: dict[str, object], error: str) -> None:
    with pytest.raises(MesosJsonError, match="^" + error):
        from_dict(body, scheduler_pb2.Call)


def test_a_lone_value_for_a_repeated_field_is_one_element() -> None:
    # stout applies the element parser to a non-array value of a repeated field.
    call = from_dict({"revive": {"roles": "batch"}}, scheduler_pb2.Call)
    assert list(call.revive.roles) == ["batch"]
    call = from_dict({"accept": {"offer_ids": {"value": "o"}}}, scheduler_pb2.Call)
    assert [offer.value for offer in call.accept.offer_ids] == ["o"]


@pytest.mark.parametrize("body", [[], "x", 1, None, True])
def test_the_top_level_must_be_an_object(body: object) -> None:
    with pytest.raises(MesosJsonError, match="top level: expected an object"):
        from_dict(body, scheduler_pb2.Call)
    with pytest.raises(MesosJsonError, match="top level: expected an object"):
        from_json(orjson.dumps(body), scheduler_pb2.Call)


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b'{"type": "REVIVE",}', b'{"type": NaN}', b'{"type": "\xff"}', b"\xff\xfe{}"],
)
def test_invalid_json_is_rejected(raw: bytes) -> None:
    with pytest.raises(MesosJsonError, match="invalid JSON"):
        from_json(raw, scheduler_pb2.Call)


def test_strings_that_cannot_be_utf8_are_rejected() -> None:
    with pytest.raises(MesosJsonError, match="value:"):
        from_dict({"value": "\ud800"}, mesos_pb2.FrameworkID)


def test_from_json_accepts_str_and_buffers() -> None:
    text = '{"value": "f"}'
    for raw in (text, text.encode(), bytearray(text.encode()), memoryview(text.encode())):
        assert from_json(raw, mesos_pb2.FrameworkID).value == "f"


def test_nesting_is_limited() -> None:
    def nested(depth: int) -> dict[str, object]:
        body: dict[str, object] = {"value": "c0"}
        for index in range(1, depth + 1):
            body = {"value": f"c{index}", "parent": body}
        return body

    assert from_dict(nested(50), mesos_pb2.ContainerID).parent.parent.value == "c48"
    with pytest.raises(MesosJsonError, match="nested deeper than 100"):
        from_dict(nested(150), mesos_pb2.ContainerID)


def test_errors_are_value_errors() -> None:
    assert issubclass(MesosJsonError, ValueError)


# --- Binary protobuf input ------------------------------------------------------------------


def test_from_protobuf_round_trips() -> None:
    call = from_json(PYMESOS_ACCEPT, scheduler_pb2.Call)
    assert from_protobuf(call.SerializeToString(), scheduler_pb2.Call) == call


def test_from_protobuf_rejects_garbage() -> None:
    with pytest.raises(MesosJsonError, match=r"invalid mesos\.v1\.scheduler\.Call"):
        from_protobuf(b"\xff\xff\xff", scheduler_pb2.Call)


def test_from_protobuf_rejects_missing_required_fields() -> None:
    call = scheduler_pb2.Call(type=scheduler_pb2.Call.SUBSCRIBE)
    call.subscribe.framework_info.name = "x"
    raw = call.SerializePartialToString()
    with pytest.raises(
        MesosJsonError, match=r"^Missing required fields: subscribe\.framework_info\.user$"
    ):
        from_protobuf(raw, scheduler_pb2.Call)


# --- Property: JSON -> proto -> JSON for Mesos shapes ----------------------------------------

_int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_uint64 = st.integers(min_value=0, max_value=2**64 - 1)
_double = st.floats(allow_nan=False)


@given(
    nanoseconds=_int64,
    begin=_uint64,
    end=_uint64,
    uuid=st.binary(max_size=32),
    scalar=_double,
    name=st.text(),
)
def test_round_trip_property(
    nanoseconds: int, begin: int, end: int, uuid: bytes, scalar: float, name: str
) -> None:
    status = mesos_pb2.TaskStatus(state=mesos_pb2.TASK_LOST, uuid=uuid, message=name)
    status.task_id.value = name
    status.unreachable_time.nanoseconds = nanoseconds
    resource = mesos_pb2.Resource(name=name, type=mesos_pb2.Value.RANGES)
    resource.ranges.range.add(begin=begin, end=end)
    resource.scalar.value = scalar
    for message in (status, resource):
        text = to_json(message)
        parsed = from_json(text, type(message))
        assert parsed == message
        assert to_json(parsed) == text
    assert to_dict(status)["unreachable_time"] == {"nanoseconds": nanoseconds}


# --- Field kinds Mesos's own protos do not use ----------------------------------------------


def _sample_types() -> tuple[type[Message], type[Message]]:
    FD = descriptor_pb2.FieldDescriptorProto
    optional, required, repeated = FD.LABEL_OPTIONAL, FD.LABEL_REQUIRED, FD.LABEL_REPEATED
    proto2 = descriptor_pb2.FileDescriptorProto(
        name="meseta_test/sample.proto", package="meseta.test", syntax="proto2"
    )
    color = proto2.enum_type.add(name="Color")
    for number, name in enumerate(["RED", "GREEN", "BLUE"]):
        color.value.add(name=name, number=number)
    sample = proto2.message_type.add(name="Sample")

    def add_map(name: str, number: int, key: int, value: int, value_type: str = "") -> None:
        entry = sample.nested_type.add(name=f"{name.title().replace('_', '')}Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=key, label=optional)
        entry_value = entry.field.add(name="value", number=2, type=value, label=optional)
        if value_type:
            entry_value.type_name = value_type
        sample.field.add(
            name=name,
            number=number,
            type=FD.TYPE_MESSAGE,
            label=repeated,
            type_name=f".meseta.test.Sample.{entry.name}",
        )

    sample.field.add(
        name="ratio", number=1, type=FD.TYPE_FLOAT, label=optional, default_value="0.5"
    )
    sample.field.add(
        name="blob", number=2, type=FD.TYPE_BYTES, label=optional, default_value="\\001\\002"
    )
    old = sample.field.add(
        name="old", number=3, type=FD.TYPE_INT32, label=optional, default_value="7"
    )
    old.options.deprecated = True
    sample.field.add(
        name="color", number=4, type=FD.TYPE_ENUM, label=required, type_name=".meseta.test.Color"
    )
    sample.field.add(
        name="colors", number=5, type=FD.TYPE_ENUM, label=repeated, type_name=".meseta.test.Color"
    )
    add_map("by_id", 6, FD.TYPE_INT64, FD.TYPE_STRING)
    add_map("by_flag", 7, FD.TYPE_BOOL, FD.TYPE_INT32)
    add_map("by_name", 8, FD.TYPE_STRING, FD.TYPE_ENUM, ".meseta.test.Color")
    sample.field.add(name="samples", number=9, type=FD.TYPE_DOUBLE, label=repeated)
    sample.field.add(
        name="shade",
        number=10,
        type=FD.TYPE_ENUM,
        label=optional,
        type_name=".meseta.test.Color",
        default_value="GREEN",
    )
    sample.field.add(name="delta", number=11, type=FD.TYPE_SINT64, label=optional)
    sample.field.add(name="mask", number=12, type=FD.TYPE_FIXED64, label=optional)

    proto3 = descriptor_pb2.FileDescriptorProto(
        name="meseta_test/open.proto", package="meseta.test", syntax="proto3"
    )
    level = proto3.enum_type.add(name="Level")
    level.value.add(name="LOW", number=0)
    level.value.add(name="HIGH", number=1)
    proto3.message_type.add(name="Open").field.add(
        name="level", number=1, type=FD.TYPE_ENUM, label=optional, type_name=".meseta.test.Level"
    )

    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto2)
    pool.Add(proto3)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("meseta.test.Sample")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("meseta.test.Open")),
    )


Sample, Open = _sample_types()


def test_defaults_of_every_kind() -> None:
    # float, bytes and enum defaults are rendered like values; the deprecated one is not.
    assert to_dict(Sample()) == {"ratio": 0.5, "blob": "AQI=", "shade": "GREEN"}


def test_float_fields_widen_like_stout() -> None:
    sample = from_dict({"color": "RED", "ratio": 0.1}, Sample)
    assert to_dict(sample)["ratio"] == 0.10000000149011612  # float32 0.1 as a double


def test_map_keys_are_stringified_and_parsed_back() -> None:
    body = {
        "color": "BLUE",
        "by_id": {"-5": "minus five", "9223372036854775807": "max"},
        "by_flag": {"true": 1, "false": 0},
        "by_name": {"a": "RED", "b": "NOT_A_COLOR"},
    }
    sample = from_dict(body, Sample)
    assert dict(sample.by_id) == {-5: "minus five", 2**63 - 1: "max"}
    assert dict(sample.by_flag) == {True: 1, False: 0}
    assert dict(sample.by_name) == {"a": 0}  # an unknown enum value drops the entry
    rendered = to_dict(sample)
    assert rendered["by_id"] == body["by_id"]
    assert rendered["by_flag"] == body["by_flag"]
    assert rendered["by_name"] == {"a": "RED"}
    with pytest.raises(MesosJsonError, match=r"by_id\['x'\]: expected an integer"):
        from_dict({"color": "RED", "by_id": {"x": "y"}}, Sample)
    with pytest.raises(MesosJsonError, match=r"by_flag\['yes'\]: expected a boolean"):
        from_dict({"color": "RED", "by_flag": {"yes": 1}}, Sample)
    with pytest.raises(MesosJsonError, match="by_id: expected an object, got array"):
        from_dict({"color": "RED", "by_id": [{"key": 1, "value": "a"}]}, Sample)


def test_required_enum_at_top_level() -> None:
    with pytest.raises(MesosJsonError, match=r"^color: unknown value 'PINK' for a required enum"):
        from_dict({"color": "PINK"}, Sample)
    with pytest.raises(MesosJsonError, match=r"^Missing required fields: color$"):
        from_dict({"shade": "BLUE"}, Sample)


def test_repeated_doubles_and_other_integer_encodings() -> None:
    body = {
        "color": "RED",
        "samples": [1, "Infinity", -0.5],
        "delta": "-9223372036854775808",
        "mask": 2**64 - 1,
    }
    sample = from_dict(body, Sample)
    rendered = to_dict(sample)
    assert rendered["samples"] == [1.0, "Infinity", -0.5]
    assert rendered["delta"] == -(2**63)
    assert rendered["mask"] == 2**64 - 1


def test_unknown_enum_numbers_are_emitted_as_numbers() -> None:
    # Only open (proto3) enums can hold a number without a name.
    message = Open()
    message.level = 5  # type: ignore[attr-defined]
    assert to_dict(message) == {"level": 5}
