"""Responses assembled from per-entity cached encodings (protobuf bytes or Mesos JSON).

A protobuf message is the concatenation of its fields, so a repeated
sub-message field is just each element's bytes behind a tag and a length;
a JSON object is likewise a join of its members. Either way a response made
of 100k cached tasks costs a join, not 100k serializations.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Generic, TypeVar

from google.protobuf.message import Message

from meseta.master.wire import SHORT_VARINTS, proto_field, varint

T = TypeVar("T", bound=Hashable)

# (field number, field name, value): a list is a repeated field (omitted when empty),
# Chunks a repeated field already encoded in runs (`Encoding.run`), bytes one encoded
# sub-message or scalar (JSON only), Parts a nested message being assembled, None an
# absent field.
Field = tuple[int, str, "list[bytes] | Chunks | bytes | Parts | None"]


class Chunks:
    """A repeated field given as runs of its elements, each run encoded once by
    `Encoding.run` and cached by its owner (e.g. a block of a framework's tasks, see
    `Blocks`), so a response with 100k elements joins a few hundred runs instead of
    framing 100k elements."""

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


# Items per block of a `Blocks` list: re-joining one block costs well under a millisecond
# in any wire form, and a 100k-item list is a join of a few hundred runs.
BLOCK_ITEMS = 500


class Block(Generic[T]):
    """Consecutive items of a `Blocks` list and their runs by wire form (`Encoding.kind`)."""

    __slots__ = ("items", "runs")

    def __init__(self) -> None:
        self.items: list[T] = []
        self.runs: dict[str, bytes] = {}


class Blocks(Generic[T]):
    """An ordered list of items cut into blocks of at most BLOCK_ITEMS consecutive items,
    each caching its items joined into one run per wire form (`Encoding.run`): changing,
    adding or removing an item re-joins only its block, and the whole list is a `Chunks`
    of the blocks' runs, in list order. Items are appended at the end and removed
    anywhere; two neighbouring blocks that fit in one are merged, so the blocks stay more
    than half full on average."""

    __slots__ = ("blocks", "where")

    def __init__(self, items: Iterable[T] = ()) -> None:
        self.blocks: list[Block[T]] = []
        self.where: dict[T, Block[T]] = {}  # item -> its block
        listed = list(items)
        for start in range(0, len(listed), BLOCK_ITEMS):
            block: Block[T] = Block()
            block.items = listed[start : start + BLOCK_ITEMS]
            self.blocks.append(block)
            self.where.update(dict.fromkeys(block.items, block))

    def __len__(self) -> int:
        return len(self.where)

    def items(self) -> Iterator[T]:
        for block in self.blocks:
            yield from block.items

    def append(self, item: T) -> None:
        blocks = self.blocks
        if not blocks or len(blocks[-1].items) >= BLOCK_ITEMS:
            blocks.append(Block())
        block = blocks[-1]
        block.items.append(item)
        block.runs.clear()
        self.where[item] = block

    def remove(self, item: T) -> None:
        block = self.where.pop(item)
        block.items.remove(item)
        block.runs.clear()
        at = self.blocks.index(block)
        if not block.items:
            del self.blocks[at]
            self._merge(at - 1)  # its neighbours are now next to each other
        elif not self._merge(at - 1):
            self._merge(at)

    def _merge(self, at: int) -> bool:
        """Blocks `at` and `at + 1` as one, if they fit in one."""
        blocks = self.blocks
        if at < 0 or at + 1 >= len(blocks):
            return False
        first, second = blocks[at], blocks[at + 1]
        if len(first.items) + len(second.items) > BLOCK_ITEMS:
            return False
        for item in second.items:
            self.where[item] = first
        first.items += second.items
        first.runs.clear()
        second.items = []  # a join in flight over the old block joins nothing
        del blocks[at + 1]
        return True

    def changed(self, item: T) -> None:
        """`item` changed: drop its block's runs (nothing if it is not listed here)."""
        block = self.where.get(item)
        if block is not None:
            block.runs.clear()

    def runs(self, kind: str, join: Callable[[list[T]], bytes]) -> list[bytes]:
        """Each block's `kind` run, in order, made by `join` where missing."""
        out = []
        for block in self.blocks:
            run = block.runs.get(kind)
            if run is None:
                run = block.runs[kind] = join(block.items)
            out.append(run)
        return out

    def join_steps(self, kind: str, join: Callable[[list[T]], bytes]) -> Iterator[None]:
        """`runs`, a missing block per step (read_cache.cooperate): the list may change
        between steps, and a block changed since it was joined drops its run."""
        for block in list(self.blocks):
            if kind not in block.runs and block.items:
                block.runs[kind] = join(block.items)
                yield

    def unjoined(self, kind: str) -> Iterator[T]:
        """The items of the blocks that have no `kind` run."""
        for block in self.blocks:
            if kind not in block.runs:
                yield from block.items


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
        short = SHORT_VARINTS
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
