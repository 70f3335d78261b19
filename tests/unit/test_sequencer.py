"""meseta.log.sequencer: dense indexes, duplicate proposal ids, barriers, determinism."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from meseta.log.codec import encode_batch, encode_entry
from meseta.log.sequencer import Sequenced, sequence_batch
from meseta.log.v1.entries_pb2 import Entry
from meseta.log.v1.replication_pb2 import Batch


def payload(proposal_id: bytes, events: bytes = b"") -> bytes:
    entry = Entry(events=events or b"body of " + proposal_id)
    entry.header.proposal_id = proposal_id
    return encode_entry(entry)


def batch_of(ids: list[bytes], barriers: list[bytes] | None = None) -> Batch:
    batch = Batch()
    batch.ParseFromString(encode_batch([payload(i) for i in ids], barriers or []))
    return batch


def nothing_stored(_proposal_id: bytes) -> int | None:
    return None


def test_indexes_are_dense_after_last_index() -> None:
    result = sequence_batch(batch_of([b"a", b"b", b"c"]), 41, nothing_stored)
    assert [(index, pid) for index, pid, _ in result.appended] == [
        (42, b"a"),
        (43, b"b"),
        (44, b"c"),
    ]
    assert [p for _, _, p in result.appended] == [payload(b"a"), payload(b"b"), payload(b"c")]
    assert result.resolved == {b"a": 42, b"b": 43, b"c": 44}
    assert result.last_index == 44
    assert result.duplicates == 0
    assert result.barriers == []


def test_empty_batch_keeps_last_index() -> None:
    result = sequence_batch(batch_of([]), 7, nothing_stored)
    assert result == Sequenced(last_index=7)


def test_duplicates_within_a_batch_resolve_to_the_first_copy() -> None:
    result = sequence_batch(batch_of([b"a", b"b", b"a", b"c", b"b", b"a"]), 0, nothing_stored)
    assert [(index, pid) for index, pid, _ in result.appended] == [(1, b"a"), (2, b"b"), (3, b"c")]
    assert result.resolved == {b"a": 1, b"b": 2, b"c": 3}
    assert result.duplicates == 3
    assert result.last_index == 3


def test_duplicates_of_stored_ids_resolve_to_the_stored_index() -> None:
    stored = {b"old-1": 3, b"old-2": 9}
    lookups: list[bytes] = []

    def index_of(proposal_id: bytes) -> int | None:
        lookups.append(proposal_id)
        return stored.get(proposal_id)

    result = sequence_batch(batch_of([b"old-2", b"new", b"old-1", b"new", b"old-2"]), 10, index_of)
    assert [(index, pid) for index, pid, _ in result.appended] == [(11, b"new")]
    assert result.resolved == {b"old-2": 9, b"new": 11, b"old-1": 3}
    assert result.duplicates == 4
    assert result.last_index == 11
    assert b"new" in lookups  # a new id is looked up in the store before it is appended


def test_barriers_are_carried_in_order() -> None:
    result = sequence_batch(batch_of([b"a"], [b"t2", b"t1", b"t3"]), 0, nothing_stored)
    assert result.barriers == [b"t2", b"t1", b"t3"]
    assert result.last_index == 1
    only_barriers = sequence_batch(batch_of([], [b"t"]), 5, nothing_stored)
    assert only_barriers.barriers == [b"t"]
    assert only_barriers.appended == [] and only_barriers.last_index == 5


def reference(batches: list[list[bytes]]) -> list[list[tuple[int, bytes]]]:
    """The obvious model: the first copy of an id gets the next index."""
    seen: set[bytes] = set()
    out: list[list[tuple[int, bytes]]] = []
    last = 0
    for ids in batches:
        appended = []
        for proposal_id in ids:
            if proposal_id not in seen:
                seen.add(proposal_id)
                last += 1
                appended.append((last, proposal_id))
        out.append(appended)
    return out


def run(batches: list[list[bytes]], shuffle_seed: int | None) -> list[Sequenced]:
    """Sequence the batches; the id store is rebuilt in shuffled order after each one."""
    shuffler = random.Random(shuffle_seed)
    stored: dict[bytes, int] = {}
    results = []
    last = 0
    for ids in batches:
        result = sequence_batch(batch_of(ids), last, stored.get)
        results.append(result)
        last = result.last_index
        items = [*stored.items(), *((pid, index) for index, pid, _ in result.appended)]
        if shuffle_seed is not None:
            shuffler.shuffle(items)
        stored = dict(items)
    return results


ids_strategy = st.lists(
    st.lists(
        st.sampled_from([b"a", b"b", b"c", b"d", b"e", b"f", b"\x00", b"\xff" * 3]), max_size=8
    ),
    max_size=6,
)


@settings(max_examples=150, deadline=None, database=None)
@given(batches=ids_strategy, seed=st.integers(0, 2**32 - 1))
def test_sequencing_is_deterministic_whatever_the_lookup_order(
    batches: list[list[bytes]], seed: int
) -> None:
    plain = run(batches, None)
    shuffled = run(batches, seed)
    assert [r.appended for r in plain] == [r.appended for r in shuffled]
    assert [r.resolved for r in plain] == [r.resolved for r in shuffled]
    assert [list(r.resolved) for r in plain] == [list(r.resolved) for r in shuffled]
    assert [r.duplicates for r in plain] == [r.duplicates for r in shuffled]
    assert [[(i, pid) for i, pid, _ in r.appended] for r in plain] == reference(batches)
    total = sum(len(ids) for ids in batches)
    assert sum(r.duplicates + len(r.appended) for r in plain) == total
