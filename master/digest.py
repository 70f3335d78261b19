"""A digest of the fold state: equal on every replica that applied the same entries.

The walk is canonical: dataclass fields in declaration order, dicts in
insertion order (which the fold makes identical everywhere), protobuf values
in deterministic serialization, and no set is ever iterated unsorted.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from typing import Any

from google.protobuf.message import Message

from meseta.master.resources import Resources
from meseta.master.state import State


def digest(state: State) -> str:
    hasher = hashlib.blake2b(digest_size=16)
    feed(hasher, state)
    return hasher.hexdigest()


def feed(hasher: Any, value: object) -> None:
    if value is None or isinstance(value, (bool, int, float, str)):
        hasher.update(repr(value).encode())
    elif isinstance(value, bytes):
        hasher.update(b"b%d:" % len(value) + value)
    elif isinstance(value, Message):
        data = value.SerializeToString(deterministic=True)
        hasher.update(b"m%d:" % len(data) + data)
    elif isinstance(value, Resources):
        # Plain keys digest as (name, role), as before keys had a shape: the digests of
        # logs without reservations or volumes stayed the same.
        feed(hasher, {key if key[2] else key[:2]: q for key, q in value.items.items()})
    elif isinstance(value, enum.Enum):
        hasher.update(value.value.encode() if isinstance(value.value, str) else b"e")
    elif isinstance(value, dict):
        hasher.update(b"{%d" % len(value))
        for key, item in value.items():
            feed(hasher, key)
            feed(hasher, item)
    elif isinstance(value, (list, tuple)):
        hasher.update(b"[%d" % len(value))
        for item in value:
            feed(hasher, item)
    elif isinstance(value, frozenset):
        feed(hasher, sorted(value))
    elif dataclasses.is_dataclass(value):
        hasher.update(type(value).__name__.encode())
        for field in dataclasses.fields(value):
            feed(hasher, getattr(value, field.name))
    else:
        raise TypeError(f"cannot digest {type(value).__name__}")
