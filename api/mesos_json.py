"""Protobuf <-> JSON as Mesos maps them (stout's ``protobuf.hpp``). Pure: no I/O.

Mesos does not speak proto3 canonical JSON, and ``json_format`` differs from it
where clients notice: it quotes 64-bit ints, omits unset fields that declare a
default, accepts camelCase keys and enum numbers, and never checks required
fields. So both directions are descriptor walkers here, with a plan built once
per message type.

Output, like Mesos: proto field names; enums by name; bytes as padded base64;
every integer a JSON number; fields in declaration order; unset fields omitted
except non-deprecated singular fields with a declared default, which are
emitted with it; empty repeated fields omitted; maps as objects keyed by the
stringified key. Non-finite doubles become the strings "NaN", "Infinity" and
"-Infinity" (Mesos writes bare NaN/Infinity tokens, which are not JSON).

Input, like Mesos: unknown keys and nulls are ignored; ints also as numeric
strings; doubles also as "Infinity", "-Infinity", "NaN" or numeric strings;
bools also as "true"/"false"; enums only by name, and an unknown name unsets
an optional or repeated enum but is an error for a required one; a lone value
for a repeated field is one element. Stricter than Mesos: fractional or
out-of-range numbers for integer fields and nested arrays are errors, not
silently truncated, wrapped or flattened. Missing required fields are errors.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeAlias, TypeVar, cast

import orjson
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

Json: TypeAlias = "dict[str, Json] | list[Json] | str | int | float | bool | None"
M = TypeVar("M", bound=Message)

# Nesting limit for JSON input, as protobuf's own parser applies to binary.
MAX_DEPTH = 100


class MesosJsonError(ValueError):
    """A request body is not a valid message of the expected type."""


class JsonSyntaxError(MesosJsonError):
    """A request body is not JSON at all (Mesos tells this apart from a JSON body that is
    not the message)."""


def to_dict(message: Message) -> dict[str, Json]:
    """The message as Mesos would render it, as plain JSON-ready values."""
    return _message_to_dict(message)


def to_json(message: Message) -> bytes:
    """The message as Mesos JSON text (UTF-8)."""
    return orjson.dumps(_message_to_dict(message))


def from_dict(data: object, message_type: type[M]) -> M:
    """Build a message from decoded JSON; `data` must be a JSON object."""
    message = message_type()
    _parse_object(message, data, "", 0)
    _check_initialized(message)
    return message


def from_json(raw: bytes | bytearray | memoryview | str, message_type: type[M]) -> M:
    """Build a message from JSON text."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:  # also invalid UTF-8
        raise JsonSyntaxError(f"invalid JSON: {error}") from None
    return from_dict(data, message_type)


def valid_uuid(raw: bytes) -> bool:
    """As stout's UUID::fromBytes checks a status update's or acknowledgement's `uuid`: 16
    bytes whose version (boost reads the high nibble of byte 6) is one of 1 to 5."""
    return len(raw) == 16 and 1 <= raw[6] >> 4 <= 5


def from_protobuf(raw: bytes, message_type: type[M]) -> M:
    """Decode a binary message; like Mesos, refuse one missing required fields."""
    message = message_type()
    try:
        message.ParseFromString(raw)
    except DecodeError as error:
        raise MesosJsonError(f"invalid {_descriptor(message).full_name}: {error}") from None
    _check_initialized(message)
    return message


def _check_initialized(message: Message) -> None:
    if message.IsInitialized():
        return
    missing = message.FindInitializationErrors()  # type: ignore[attr-defined]  # not in the stubs
    if missing:
        raise MesosJsonError("Missing required fields: " + ", ".join(missing))


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

_Writer: TypeAlias = Callable[[Any], Json]


class _OutField(NamedTuple):
    name: str
    order: int  # declaration index: Mesos emits fields in declaration order
    write: _Writer | None  # None when the Python value already is the JSON value


@dataclass(frozen=True, slots=True)
class _OutPlan:
    fields: dict[int, _OutField]  # by field number
    defaults: tuple[tuple[int, str, Json], ...]  # (order, name, JSON value) emitted when unset
    names: tuple[str, ...]  # in declaration order


# Keyed by the message's DESCRIPTOR object (the stubs type it as a union of the
# pure-Python and upb classes; it is the same object for every instance).
_OUT_PLANS: dict[object, _OutPlan] = {}


def _message_to_dict(message: Message) -> dict[str, Json]:
    plan = _OUT_PLANS.get(message.DESCRIPTOR) or _new_out_plan(_descriptor(message))
    fields = plan.fields
    out: dict[str, Json] = {}
    # ListFields() goes by field number, which is nearly always declaration
    # order too; reorder only when it was not.
    last, in_order = -1, True
    for field, value in message.ListFields():
        known = fields.get(field.number)  # None for an extension
        if known is not None:
            name, order, write = known
            out[name] = value if write is None else write(value)
            in_order, last = in_order and order > last, order
    for order, name, default in plan.defaults:
        if name not in out:
            out[name] = default
            in_order, last = in_order and order > last, max(order, last)
    if in_order:
        return out
    return {name: out[name] for name in plan.names if name in out}


def _new_out_plan(descriptor: Descriptor) -> _OutPlan:
    fields: dict[int, _OutField] = {}
    defaults: list[tuple[int, str, Json]] = []
    for order, field in enumerate(descriptor.fields):
        write = _field_writer(field)
        fields[field.number] = _OutField(field.name, order, write)
        if _emits_default(field):
            value = field.default_value
            defaults.append((order, field.name, value if write is None else write(value)))
    names = tuple(field.name for field in descriptor.fields)
    plan = _OUT_PLANS[descriptor] = _OutPlan(fields, tuple(defaults), names)
    return plan


def _emits_default(field: FieldDescriptor) -> bool:
    # stout: `field->has_default_value() && !field->options().deprecated()`;
    # has_default_value is true only for an explicit `[default = ...]`.
    return not field.is_repeated and field.has_default_value and not field.GetOptions().deprecated


def _field_writer(field: FieldDescriptor) -> _Writer | None:
    if _is_map(field):
        return _map_writer(field)
    element = _element_writer(field)
    if not field.is_repeated:
        return element
    if element is None:
        return list
    return lambda values: [element(value) for value in values]


def _element_writer(field: FieldDescriptor) -> _Writer | None:
    kind = field.type
    if kind in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
        return _message_to_dict
    if kind == FieldDescriptor.TYPE_ENUM:
        return _enum_writer(field)
    if kind == FieldDescriptor.TYPE_BYTES:
        return _write_bytes
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return _write_double
    return None  # ints, bools and strings are their own JSON


def _enum_writer(field: FieldDescriptor) -> _Writer:
    assert field.enum_type is not None
    names: dict[int, str] = {}
    for value in field.enum_type.values:
        names.setdefault(value.number, value.name)  # with aliases, the first name (as C++)
    # A number without a name is kept as a number rather than lost.
    return lambda number: names.get(number, number)


def _map_writer(field: FieldDescriptor) -> _Writer:
    assert field.message_type is not None
    key_field = field.message_type.fields_by_number[1]
    write_key = _write_bool_key if key_field.type == FieldDescriptor.TYPE_BOOL else str
    write_value = _element_writer(field.message_type.fields_by_number[2])
    if write_value is None:
        return lambda entries: {write_key(key): value for key, value in entries.items()}
    return lambda entries: {write_key(key): write_value(value) for key, value in entries.items()}


def _write_bool_key(key: bool) -> str:
    return "true" if key else "false"


def _write_bytes(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _write_double(value: float) -> float | str:
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _descriptor(message: Message) -> Descriptor:
    return cast(Descriptor, message.DESCRIPTOR)


def _is_map(field: FieldDescriptor) -> bool:
    entry = field.message_type
    return field.is_repeated and entry is not None and entry.GetOptions().map_entry


# ---------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------

_STRING, _BYTES, _ENUM, _BOOL, _INT, _DOUBLE, _MESSAGE = range(7)

_KINDS = {
    FieldDescriptor.TYPE_STRING: _STRING,
    FieldDescriptor.TYPE_BYTES: _BYTES,
    FieldDescriptor.TYPE_ENUM: _ENUM,
    FieldDescriptor.TYPE_BOOL: _BOOL,
    FieldDescriptor.TYPE_DOUBLE: _DOUBLE,
    FieldDescriptor.TYPE_FLOAT: _DOUBLE,
    FieldDescriptor.TYPE_MESSAGE: _MESSAGE,
    FieldDescriptor.TYPE_GROUP: _MESSAGE,
}
_INT32 = (-(2**31), 2**31 - 1)
_UINT32 = (0, 2**32 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_UINT64 = (0, 2**64 - 1)
_INT_BOUNDS = {
    FieldDescriptor.TYPE_INT32: _INT32,
    FieldDescriptor.TYPE_SINT32: _INT32,
    FieldDescriptor.TYPE_SFIXED32: _INT32,
    FieldDescriptor.TYPE_UINT32: _UINT32,
    FieldDescriptor.TYPE_FIXED32: _UINT32,
    FieldDescriptor.TYPE_INT64: _INT64,
    FieldDescriptor.TYPE_SINT64: _INT64,
    FieldDescriptor.TYPE_SFIXED64: _INT64,
    FieldDescriptor.TYPE_UINT64: _UINT64,
    FieldDescriptor.TYPE_FIXED64: _UINT64,
}
_EXPECTED = {
    _STRING: "a string",
    _BYTES: "a base64 string",
    _ENUM: "an enum value name",
    _BOOL: "a boolean",
    _INT: "an integer",
    _DOUBLE: "a number",
    _MESSAGE: "an object",
}
_NON_FINITE = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")
_FROM_URLSAFE = str.maketrans("-_", "+/")
_DROP = object()  # an unknown enum name on a field that may stay unset


@dataclass(frozen=True, slots=True)
class _InField:
    name: str
    kind: int
    repeated: bool  # and not a map
    required: bool
    enum_numbers: dict[str, int] | None
    bounds: tuple[int, int]  # for integers
    map_entry: tuple[_InField, _InField] | None  # (key, value)


_IN_PLANS: dict[object, dict[str, _InField]] = {}


def _parse_object(message: Message, data: object, path: str, depth: int) -> None:
    if not isinstance(data, dict):
        raise MesosJsonError(f"{path or 'top level'}: expected an object, got {_json_type(data)}")
    if depth > MAX_DEPTH:
        raise MesosJsonError(f"{path}: nested deeper than {MAX_DEPTH} messages")
    plan = _IN_PLANS.get(message.DESCRIPTOR)
    if plan is None:
        plan = _new_in_plan(_descriptor(message))
    for key, value in data.items():
        field = plan.get(key)
        if field is None or value is None:
            continue  # Mesos ignores unknown keys (camelCase ones too) and nulls
        where = f"{path}.{key}" if path else key
        if field.map_entry is not None:
            _parse_map(getattr(message, key), field.map_entry, value, where, depth)
        elif field.repeated:
            _parse_repeated(getattr(message, key), field, value, where, depth)
        elif field.kind == _MESSAGE:
            child = getattr(message, key)
            child.SetInParent()  # `{}` still sets the field
            _parse_object(child, value, where, depth + 1)
        else:
            scalar = _scalar(field, value, where)
            if scalar is not _DROP:
                try:
                    setattr(message, key, scalar)
                except ValueError as error:  # e.g. a string that cannot be UTF-8
                    raise MesosJsonError(f"{where}: {error}") from None


def _parse_repeated(container: Any, field: _InField, value: object, path: str, depth: int) -> None:
    items = value if isinstance(value, list) else [value]  # Mesos: a lone value is one element
    for index, item in enumerate(items):
        if item is None:
            continue  # Mesos skips null elements
        where = f"{path}[{index}]"
        if isinstance(item, list):
            raise MesosJsonError(f"{where}: expected {_EXPECTED[field.kind]}, got array")
        if field.kind == _MESSAGE:
            _parse_object(container.add(), item, where, depth + 1)
            continue
        scalar = _scalar(field, item, where)
        if scalar is not _DROP:
            try:
                container.append(scalar)
            except ValueError as error:
                raise MesosJsonError(f"{where}: {error}") from None


def _parse_map(
    container: Any, entry: tuple[_InField, _InField], value: object, path: str, depth: int
) -> None:
    if not isinstance(value, dict):
        raise MesosJsonError(f"{path}: expected an object, got {_json_type(value)}")
    key_field, value_field = entry
    for key, item in value.items():
        where = f"{path}[{key!r}]"
        map_key = _scalar(key_field, key, where)  # keys are strings, converted like values
        if item is None:
            continue
        if value_field.kind == _MESSAGE:
            _parse_object(container[map_key], item, where, depth + 1)
            continue
        scalar = _scalar(value_field, item, where)
        if scalar is not _DROP:
            try:
                container[map_key] = scalar
            except ValueError as error:
                raise MesosJsonError(f"{where}: {error}") from None


def _scalar(field: _InField, value: object, path: str) -> object:
    kind = field.kind
    if kind == _STRING:
        if isinstance(value, str):
            return value
    elif kind == _INT:
        return _integer(field, value, path)
    elif kind == _DOUBLE:
        return _double(field, value, path)
    elif kind == _BOOL:
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
    elif kind == _ENUM:
        if isinstance(value, str):
            assert field.enum_numbers is not None
            number = field.enum_numbers.get(value)
            if number is not None:
                return number
            if field.required:
                raise MesosJsonError(f"{path}: unknown value {value!r} for a required enum")
            return _DROP
    elif kind == _BYTES and isinstance(value, str):
        return _base64(value, path)
    raise _wrong_type(field, value, path)


def _integer(field: _InField, value: object, path: str) -> int:
    if isinstance(value, str):
        value = _number(value, field, path)
    if isinstance(value, float):
        if not value.is_integer():
            raise MesosJsonError(f"{path}: {value!r} is not an integer")
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _wrong_type(field, value, path)
    low, high = field.bounds
    if not low <= value <= high:
        raise MesosJsonError(f"{path}: {value} is out of range [{low}, {high}]")
    return value


def _double(field: _InField, value: object, path: str) -> float:
    if isinstance(value, str):
        special = _NON_FINITE.get(value)
        value = special if special is not None else _number(value, field, path)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _wrong_type(field, value, path)
    try:
        return float(value)
    except OverflowError:
        raise MesosJsonError(f"{path}: {value} is too large for a double") from None


def _number(text: str, field: _InField, path: str) -> int | float:
    match = _JSON_NUMBER.fullmatch(text)
    if match is None:
        raise MesosJsonError(f"{path}: expected {_EXPECTED[field.kind]}, got string {text!r}")
    try:
        return float(text) if match.group(1) or match.group(2) else int(text)
    except ValueError as error:  # more digits than int() accepts
        raise MesosJsonError(f"{path}: {error}") from None


def _base64(text: str, path: str) -> bytes:
    # Standard alphabet, but also urlsafe and unpadded, as some clients send.
    if _BASE64.fullmatch(text) is None:
        raise MesosJsonError(f"{path}: invalid base64")
    text = text.rstrip("=").translate(_FROM_URLSAFE)
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        raise MesosJsonError(f"{path}: invalid base64") from None


def _wrong_type(field: _InField, value: object, path: str) -> MesosJsonError:
    return MesosJsonError(f"{path}: expected {_EXPECTED[field.kind]}, got {_json_type(value)}")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _new_in_plan(descriptor: Descriptor) -> dict[str, _InField]:
    plan = _IN_PLANS[descriptor] = {field.name: _in_field(field) for field in descriptor.fields}
    return plan


def _in_field(field: FieldDescriptor) -> _InField:
    entry = None
    if _is_map(field):
        assert field.message_type is not None
        numbers = field.message_type.fields_by_number
        entry = (_in_field(numbers[1]), _in_field(numbers[2]))
    enum_numbers = None
    if field.enum_type is not None:
        enum_numbers = {value.name: value.number for value in field.enum_type.values}
    return _InField(
        name=field.name,
        kind=_KINDS.get(field.type, _INT),  # every other type is an integer
        repeated=field.is_repeated and entry is None,
        required=field.is_required,
        enum_numbers=enum_numbers,
        bounds=_INT_BOUNDS.get(field.type, (0, 0)),
        map_entry=entry,
    )
