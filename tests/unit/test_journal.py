"""meseta.log.journal.LmdbJournal: pysyncobj's journal protocol, persisted in LMDB."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from pysyncobj.journal import MemoryJournal

from meseta.log.disk import LogDisk
from meseta.log.journal import LmdbJournal

MAP_SIZE = 256 * 1024**2


class Replica:
    """A journal on its own LogDisk that can be committed, closed and reopened."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.disk = LogDisk(path, map_size=MAP_SIZE)
        self.journal = LmdbJournal(self.disk)

    def commit(self) -> None:
        self.disk.commit()

    def reopen(self) -> LmdbJournal:
        """Close without committing (a crash loses staged writes) and open again."""
        self.disk.close()
        self.disk = LogDisk(self.path, map_size=MAP_SIZE)
        self.journal = LmdbJournal(self.disk)
        return self.journal

    def close(self) -> None:
        self.disk.close()


@pytest.fixture
def replica(tmp_path: Path) -> Iterator[Replica]:
    replica = Replica(tmp_path / "store")
    try:
        yield replica
    finally:
        replica.close()


def test_fresh_journal(replica: Replica) -> None:
    journal = replica.journal
    assert len(journal) == 0
    assert list(journal) == []
    assert journal.getCurrentTerm() == 0
    assert journal.getVotedForNodeId() is None
    assert journal.getRaftCommitIndex() == MemoryJournal().getRaftCommitIndex() == 1


def test_add_len_getitem_and_slices(replica: Replica) -> None:
    journal = replica.journal
    for idx in range(1, 6):
        journal.add(b"cmd-%d" % idx, idx, 1 + idx // 3)
    assert len(journal) == 5
    assert journal[0] == (b"cmd-1", 1, 1)
    assert journal[-1] == (b"cmd-5", 5, 2)
    assert journal[1:3] == [(b"cmd-2", 2, 1), (b"cmd-3", 3, 2)]
    assert journal[3:] == [(b"cmd-4", 4, 2), (b"cmd-5", 5, 2)]
    assert [entry[1] for entry in journal] == [1, 2, 3, 4, 5]
    with pytest.raises(IndexError):
        journal[5]
    assert journal.entry_at(3) == (b"cmd-3", 3, 2)
    assert journal.entry_at(6) is None
    assert journal.entry_at(0) is None


def test_a_gap_in_add_is_refused(replica: Replica) -> None:
    journal = replica.journal
    journal.add(b"a", 10, 1)
    journal.add(b"b", 11, 1)
    with pytest.raises(AssertionError, match="gap"):
        journal.add(b"c", 13, 1)
    with pytest.raises(AssertionError):
        journal.add(b"again", 11, 1)
    assert list(journal) == [(b"a", 10, 1), (b"b", 11, 1)]


REGULAR, NO_OP, MEMBERSHIP = b"\x00", b"\x01", b"\x02"  # pysyncobj's command type byte


def fill(journal: LmdbJournal, last: int, term: int = 1, first: int = 1) -> None:
    for idx in range(first, last + 1):
        journal.add(REGULAR + b"%d" % idx, idx, term)


def conflicts_of(journal: LmdbJournal) -> list[int]:
    seen: list[int] = []
    journal.on_conflict = seen.append
    return seen


def test_delete_entries_to_compacts(replica: Replica) -> None:
    journal = replica.journal
    fill(journal, 10)
    journal.deleteEntriesTo(3)  # a position, not a raft index
    assert [e[1] for e in journal] == [4, 5, 6, 7, 8, 9, 10]
    journal.deleteEntriesTo(0)  # nothing
    assert [e[1] for e in journal] == [4, 5, 6, 7, 8, 9, 10]
    assert journal.entry_at(4) == (REGULAR + b"4", 4, 1)
    assert journal.entry_at(3) is None
    replica.commit()
    journal = replica.reopen()
    assert [e[1] for e in journal] == [4, 5, 6, 7, 8, 9, 10]
    journal.deleteEntriesTo(len(journal))  # everything
    journal.add(REGULAR, 20, 3)  # an empty journal accepts any next index
    replica.commit()
    assert list(replica.reopen()) == [(REGULAR, 20, 3)]


def test_a_conflicting_entry_replaces_the_rest_for_good(replica: Replica) -> None:
    journal = replica.journal
    fill(journal, 10)
    replica.commit()
    conflicts = conflicts_of(journal)
    journal.deleteEntriesFrom(7)  # a position: raft indexes 8.. go
    assert [e[1] for e in journal] == [1, 2, 3, 4, 5, 6, 7]
    journal.deleteEntriesFrom(10)  # past the end: nothing
    journal.add(REGULAR + b"new", 8, 2)  # another term at index 8: a real conflict
    assert conflicts == [8]
    journal.settle()
    assert [e[1:] for e in journal] == [(i, 1) for i in range(1, 8)] + [(8, 2)]
    assert journal[-1] == (REGULAR + b"new", 8, 2)
    replica.commit()
    assert list(replica.reopen()) == [*((REGULAR + b"%d" % i, i, 1) for i in range(1, 8)),
                                      (REGULAR + b"new", 8, 2)]  # fmt: skip


def test_resent_entries_do_not_lose_the_tail(replica: Replica) -> None:
    """pysyncobj truncates on any overlap; entries nobody contradicted must survive."""
    journal = replica.journal
    fill(journal, 10)
    replica.commit()
    before = list(journal)
    conflicts = conflicts_of(journal)
    journal.deleteEntriesFrom(4)  # raft indexes 5..10 set aside
    journal.add(REGULAR + b"5", 5, 1)  # the leader re-sent 5 and 6 only
    journal.add(REGULAR + b"6", 6, 1)
    assert [e[1] for e in journal] == [1, 2, 3, 4, 5, 6]
    journal.settle()
    assert list(journal) == before
    assert conflicts == []
    replica.commit()
    assert list(replica.reopen()) == before


def test_a_truncation_nothing_contradicted_is_undone(replica: Replica) -> None:
    journal = replica.journal
    fill(journal, 6)
    replica.commit()
    before = list(journal)
    journal.deleteEntriesFrom(2)  # e.g. a heartbeat with an old prevLogIdx and no entries
    assert len(journal) == 2
    assert list(replica.reopen()) == before  # a crash right now loses nothing
    journal = replica.journal
    journal.deleteEntriesFrom(0)
    journal.flush()  # settles, then commits
    assert list(journal) == before
    assert list(replica.reopen()) == before


def test_a_truncated_membership_change_goes_at_once(replica: Replica) -> None:
    """pysyncobj rolls membership changes back itself when it truncates them."""
    journal = replica.journal
    fill(journal, 3)
    journal.add(MEMBERSHIP + b"add 127.0.0.1:7004", 4, 1)
    fill(journal, 5, first=5)
    replica.commit()
    journal.deleteEntriesFrom(3)
    journal.settle()
    assert [e[1] for e in journal] == [1, 2, 3]
    replica.commit()
    assert [e[1] for e in replica.reopen()] == [1, 2, 3]


def test_a_resent_membership_change_is_not_a_conflict(replica: Replica) -> None:
    journal = replica.journal
    journal.add(NO_OP, 1, 1)
    journal.add(REGULAR + b"a", 2, 1)
    journal.add(MEMBERSHIP + b"add 127.0.0.1:7004", 3, 1)
    journal.add(REGULAR + b"b", 4, 1)
    replica.commit()
    before = list(journal)
    conflicts = conflicts_of(journal)
    # The leader re-sends 2..4 after prevLogIdx 1, exactly as they are.
    journal.deleteEntriesFrom(1)
    for entry in before[1:]:
        journal.add(*entry)
    journal.settle()
    assert list(journal) == before
    assert conflicts == []


def test_clear(replica: Replica) -> None:
    journal = replica.journal
    for idx in range(1, 4):
        journal.add(b"x", idx, 1)
    replica.commit()
    journal.clear()
    assert len(journal) == 0
    journal.add(b"after", 100, 4)
    replica.commit()
    assert list(replica.reopen()) == [(b"after", 100, 4)]


def test_term_and_vote_survive_reopen(replica: Replica) -> None:
    replica.journal.setCurrentTerm(7, "127.0.0.1:7001")
    assert replica.journal.getCurrentTerm() == 7
    assert replica.journal.getVotedForNodeId() == "127.0.0.1:7001"
    replica.commit()
    journal = replica.reopen()
    assert journal.getCurrentTerm() == 7
    assert journal.getVotedForNodeId() == "127.0.0.1:7001"
    journal.setCurrentTerm(8, None)
    replica.commit()
    journal = replica.reopen()
    assert journal.getCurrentTerm() == 8
    assert journal.getVotedForNodeId() is None


def test_uncommitted_changes_are_lost_on_crash(replica: Replica) -> None:
    journal = replica.journal
    journal.add(b"durable", 1, 1)
    journal.setCurrentTerm(1, "a")
    replica.commit()
    journal.add(b"lost", 2, 1)
    journal.setCurrentTerm(2, "b")
    journal = replica.reopen()
    assert list(journal) == [(b"durable", 1, 1)]
    assert (journal.getCurrentTerm(), journal.getVotedForNodeId()) == (1, "a")


def test_commit_index_rides_along_with_the_next_write(replica: Replica) -> None:
    journal = replica.journal
    journal.add(b"a", 1, 1)
    replica.commit()
    journal.setRaftCommitIndex(5)
    assert journal.getRaftCommitIndex() == 5
    replica.commit()  # nothing staged: no transaction, so not persisted
    journal = replica.reopen()
    assert journal.getRaftCommitIndex() == 1

    journal.setRaftCommitIndex(6)
    journal.add(b"b", 2, 1)
    replica.commit()  # a non-empty commit carries it
    journal = replica.reopen()
    assert journal.getRaftCommitIndex() == 6

    journal.setRaftCommitIndex(9)
    journal.onOneSecondTimer()  # stages it on its own
    replica.commit()
    journal = replica.reopen()
    assert journal.getRaftCommitIndex() == 9
    assert list(journal) == [(b"a", 1, 1), (b"b", 2, 1)]


def test_flush_commits(replica: Replica) -> None:
    replica.journal.add(b"a", 1, 1)
    replica.journal.flush()
    assert list(replica.reopen()) == [(b"a", 1, 1)]


def test_delete_entries_to_on_an_empty_journal_is_a_no_op(replica: Replica) -> None:
    memory = MemoryJournal()
    memory.deleteEntriesTo(1)
    replica.journal.deleteEntriesTo(1)
    assert list(replica.journal) == list(memory) == []


# -- against pysyncobj's own MemoryJournal -----------------------------------------------------


def snapshot(journal: MemoryJournal) -> tuple[list[tuple[bytes, int, int]], int, str | None]:
    return list(journal), journal.getCurrentTerm(), journal.getVotedForNodeId()


def restore(state: tuple[list[tuple[bytes, int, int]], int, str | None]) -> MemoryJournal:
    entries, term, voted = state
    journal = MemoryJournal()
    for entry in entries:
        journal.add(*entry)
    journal.setCurrentTerm(term, voted)
    return journal


@pytest.mark.parametrize("seed", range(12))
def test_behaves_like_pysyncobj_memory_journal(tmp_path: Path, seed: int) -> None:
    """Random pysyncobj-shaped operations; compared with MemoryJournal after each one.

    A follower's truncation is followed by the entries the leader sent: a real conflict (a
    newer term) behaves exactly like MemoryJournal; a re-send of the same entries does too
    until the journal settles, after which the entries nobody contradicted are back (where
    MemoryJournal would have lost them), so the model gets them back as well.
    """
    rng = random.Random(seed)
    replica = Replica(tmp_path / "store")
    model = MemoryJournal()
    durable = snapshot(model)  # the model's state at the last commit
    term = 1
    counts: dict[str, int] = {}

    def add_both(entry: tuple[bytes, int, int]) -> None:
        replica.journal.add(*entry)
        model.add(*entry)

    def check(where: str) -> None:
        ours = replica.journal
        assert list(ours) == list(model), where
        assert len(ours) == len(model), where
        assert ours[:] == model[:], where
        if len(model):
            assert ours[-1] == model[-1], where
            assert ours[0] == model[0], where
            assert ours[len(model) // 2 :] == model[len(model) // 2 :], where
        assert ours.getCurrentTerm() == model.getCurrentTerm(), where
        assert ours.getVotedForNodeId() == model.getVotedForNodeId(), where

    try:
        for step in range(250):
            ours = replica.journal
            op = rng.choices(
                ["add", "conflict", "resend", "to", "clear", "term", "commit", "crash"],
                weights=[35, 8, 10, 8, 2, 6, 12, 4],
            )[0]
            if op in ("conflict", "resend", "to") and not len(model):
                op = "add"
            counts[op] = counts.get(op, 0) + 1
            where = f"seed {seed}, step {step}, {op}"
            if op == "add":
                for _ in range(rng.randint(1, 20)):
                    idx = model[-1][1] + 1 if len(model) else rng.randint(1, 50)
                    add_both((REGULAR + rng.randbytes(rng.randint(0, 30)), idx, term))
            elif op == "conflict":
                position = rng.randrange(len(model))
                idx = model[position][1]
                term += 1
                ours.deleteEntriesFrom(position)
                model.deleteEntriesFrom(position)
                for offset in range(rng.randint(1, 5)):
                    add_both((REGULAR + b"term %d" % term, idx + offset, term))
            elif op == "resend":
                position = rng.randrange(len(model))
                tail = model[position:]
                resent = rng.randint(0, len(tail))
                ours.deleteEntriesFrom(position)
                model.deleteEntriesFrom(position)
                for entry in tail[:resent]:
                    add_both(entry)
                check(where + " (before settling)")
                ours.settle()
                for entry in tail[resent:]:
                    model.add(*entry)
            elif op == "to":
                position = rng.randint(0, len(model))
                ours.deleteEntriesTo(position)
                model.deleteEntriesTo(position)
            elif op == "clear":
                ours.clear()
                model.clear()
            elif op == "term":
                term += 1
                voted = rng.choice([None, "127.0.0.1:7001", "127.0.0.1:7002"])
                ours.setCurrentTerm(term, voted)
                model.setCurrentTerm(term, voted)
            elif op == "commit":
                replica.commit()
                durable = snapshot(model)
                if rng.random() < 0.5:
                    replica.reopen()
            elif op == "crash":
                replica.reopen()
                model = restore(durable)
            check(where)
        assert all(counts.get(op, 0) > 0 for op in ("conflict", "resend", "to", "crash"))
        replica.commit()
        journal = replica.reopen()
        assert list(journal) == list(model)
        assert journal.getCurrentTerm() == model.getCurrentTerm()
        assert journal.getVotedForNodeId() == model.getVotedForNodeId()
    finally:
        replica.close()
