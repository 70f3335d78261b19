"""Responses assembled from per-entity cached encodings (protobuf bytes or Mesos JSON).

A protobuf message is the concatenation of its fields, so a repeated
sub-message field is just each element's bytes behind a tag and a length;
a JSON object is likewise a join of its members. Either way a response made
of 100k cached tasks costs a join, not 100k serializations.
"""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf.message import Message

# (field number, field name, value): a list is a repeated field (omitted when empty),
# Chunks a repeated field already encoded in runs (`Encoding.run`), bytes one encoded
# sub-message or scalar (JSON only), Parts a nested message being assembled, None an
# absent field.
Field = tuple[int, str, "list[bytes] | Chunks | bytes | Parts | None"]


class Chunks:
    """A repeated field given as runs of its elements, each run encoded once by
    `Encoding.run` and cached by its owner (e.g. one framework's tasks), so a response
    with 100k elements joins a few runs instead of framing 100k elements."""

    __slots__ = ("runs",)

    def __init__(self, runs: list[bytes]) -> None:
        self.runs = [run for run in runs if run]


class Cached:
    """An entity's encodings by kind; `changed()` drops them all."""

    __slots__ = ("encodings",)

    def __init__(self) -> None:
        self.encodings: dict[str, bytes] = {}

    def changed(self) -> None:
        self.encodings.clear()

    def encoded(self, kind: str, encode: Callable[[], bytes]) -> bytes:
        data = self.encodings.get(kind)
        if data is None:
            data = self.encodings[kind] = encode()
        return data


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Varints of the lengths most entities have, precomputed: framing is on the hot path.
_SHORT_VARINTS = [varint(n) for n in range(1 << 14)]


def proto_field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (wire type 2)."""
    size = len(payload)
    length = _SHORT_VARINTS[size] if size < 1 << 14 else varint(size)
    return _SHORT_VARINTS[number << 3 | 2] + length + payload


class Parts:
    """Encoded pieces of one message, joined once at the end (nesting copies nothing)."""

    __slots__ = ("items", "size")

    def __init__(self) -> None:
        self.items: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> None:
        self.items.append(data)
        self.size += len(data)

    def splice(self, other: Parts) -> None:
        self.items += other.items
        self.size += other.size

    def join(self) -> bytes:
        return b"".join(self.items)


class Encoding:
    """One wire form: `kind` names its cache slot, `encode` serializes one message."""

    def __init__(self, kind: str, encode: Callable[[Message], bytes], *, json: bool) -> None:
        self.kind = kind
        self.encode = encode
        self.json = json

    def entity(self, record: Cached, message: Callable[[], Message]) -> bytes:
        data = record.encodings.get(self.kind)  # inlined `encoded`: this runs per entity
        if data is None:
            data = record.encodings[self.kind] = self.encode(message())
        return data

    def message(self, fields: list[Field]) -> Parts:
        return self._json(fields) if self.json else self._protobuf(fields)

    def run(self, number: int, items: list[bytes]) -> bytes:
        """Elements of repeated field `number` as one run (see `Chunks`): protobuf, each
        element framed; JSON, the elements comma-separated."""
        if self.json:
            return b",".join(items)
        parts = self._protobuf([(number, "", items)])
        return parts.join()

    @staticmethod
    def _protobuf(fields: list[Field]) -> Parts:
        out = Parts()
        short = _SHORT_VARINTS
        for number, _name, value in fields:
            if value is None:
                continue
            tag = short[number << 3 | 2]
            if isinstance(value, list):
                items, size = out.items, 0
                for item in value:
                    length = len(item)
                    prefix = short[length] if length < 1 << 14 else varint(length)
                    items += (tag, prefix, item)
                    size += len(tag) + len(prefix) + length
                out.size += size
            elif isinstance(value, Chunks):
                for run in value.runs:
                    out.add(run)
            elif isinstance(value, Parts):
                out.add(tag)
                out.add(varint(value.size))
                out.splice(value)
            else:
                out.add(proto_field(number, value))
        return out

    @staticmethod
    def _json(fields: list[Field]) -> Parts:
        out = Parts()
        out.add(b"{")
        first = True
        for _number, name, value in fields:
            if value is None or _empty(value):
                continue
            out.add((b'"' if first else b',"') + name.encode() + b'":')
            first = False
            if isinstance(value, Chunks):  # runs as they are: no copy before the final join
                out.add(b"[")
                for number, run in enumerate(value.runs):
                    if number:
                        out.add(b",")
                    out.add(run)
                out.add(b"]")
            elif isinstance(value, list):
                out.add(b"[")
                out.add(b",".join(value))
                out.add(b"]")
            elif isinstance(value, Parts):
                out.splice(value)
            else:
                out.add(value)
        out.add(b"}")
        return out


def _empty(value: list[bytes] | Chunks | bytes | Parts) -> bool:
    """An empty repeated field (JSON omits it, as Mesos's protobuf JSON does)."""
    if isinstance(value, Chunks):
        return not value.runs
    return isinstance(value, list) and not value


PROTOBUF = Encoding("pb", lambda message: message.SerializeToString(), json=False)
