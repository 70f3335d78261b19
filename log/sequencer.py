"""Turns a committed batch into indexed entries. Pure and deterministic.

Every replica runs this on the same batches in the same order, so every
replica assigns the same index to the same entry and drops the same
duplicates. Both log implementations share it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from meseta.log.codec import decode_entry
from meseta.log.v1.replication_pb2 import Batch


@dataclass(slots=True)
class Sequenced:
    """The outcome of applying one batch."""

    # (index, proposal id, encoded entry) of each entry to store, in order.
    appended: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    # Proposal id -> the index it resolved to (new or earlier copy).
    resolved: dict[bytes, int] = field(default_factory=dict)
    # Barrier tokens in this batch; they resolve to `last_index`.
    barriers: list[bytes] = field(default_factory=list)
    # Entries dropped as duplicates of an earlier proposal.
    duplicates: int = 0
    last_index: int = 0
    # Latest header timestamp among the stored entries (0 if none): a new
    # leader stamps after it, so timestamps never go back across leaders.
    max_timestamp_ns: int = 0


def sequence_batch(
    batch: Batch, last_index: int, stored_index_of: Callable[[bytes], int | None]
) -> Sequenced:
    """Assign indexes after `last_index`, skipping proposal ids already stored."""
    result = Sequenced(last_index=last_index)
    for payload in batch.entries:
        header = decode_entry(payload).header
        proposal_id = header.proposal_id
        earlier = result.resolved.get(proposal_id)
        if earlier is None:
            earlier = stored_index_of(proposal_id)
        if earlier is not None:
            result.resolved[proposal_id] = earlier
            result.duplicates += 1
            continue
        result.last_index += 1
        result.appended.append((result.last_index, proposal_id, payload))
        result.max_timestamp_ns = max(result.max_timestamp_ns, header.timestamp_ns)
        result.resolved[proposal_id] = result.last_index
    result.barriers.extend(batch.barriers)
    return result
