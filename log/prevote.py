"""Pre-vote (Raft thesis 9.6), which pysyncobj lacks: a replica asks before it campaigns.

Without it, a follower that merely stopped hearing its leader for a while (its
process starved of CPU, a GC pause, a brief partition) starts an election at a
higher term the moment it runs again, and that term alone deposes a healthy
leader: every scheduler stream closes and writes stall for an election. With
it, the follower first sends a pre-vote for the term it would campaign at. A
voter grants it only if it has not heard from a leader for `lease_s` itself,
is not the leader, and the asker's log is at least as up to date as its own.
Nobody changes its term or vote for a pre-vote; only with a majority of grants
does the replica campaign for real.

This module is the bookkeeping only (no I/O, no clock): the raft adapter
(log/raft.py) passes times in, sends the messages and triggers the election.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PRE_VOTE = "meseta_pre_vote"
PRE_VOTE_REPLY = "meseta_pre_vote_reply"


@dataclass(slots=True)
class PreVote:
    """One replica's pre-vote rounds, and what it grants to others."""

    # A voter that heard from a leader less than this long ago refuses pre-votes: shorter
    # than the shortest election timeout, so the followers of a leader that died refuse
    # nobody by the time the first of them asks.
    lease_s: float
    leader_contact_at: float = float("-inf")
    # No pre-vote is granted before this time (set when the replica resumes from a pause).
    refuse_until: float = float("-inf")
    round_term: int = 0
    grants: dict[str, bool] = field(default_factory=dict)
    won: bool = False

    def heard_leader(self, now: float) -> None:
        self.leader_contact_at = now
        self.won = False  # a leader is there: a round granted before it came is moot
        self.round_term = 0

    def resumed(self, now: float, hold_s: float) -> None:
        """This replica was not running for a while (stopped, starved of CPU): that it heard
        no leader meanwhile says nothing of the leader. It closes its round and grants no
        pre-vote for `hold_s`, the time a leader needs to reach it again; otherwise a peer
        that happened to miss a heartbeat just then would win its grant and depose a healthy
        leader."""
        self.heard_leader(now)
        self.refuse_until = now + hold_s

    def start(self, self_id: str, term: int, last_log: tuple[int, int]) -> dict[str, Any]:
        """A new round for campaigning at `term`; the message to send every other voter."""
        self.round_term = term
        self.grants = {self_id: True}
        self.won = False
        last_term, last_index = last_log
        return {"type": PRE_VOTE, "term": term, "last_log_term": last_term,
                "last_log_index": last_index}  # fmt: skip

    def answer(
        self,
        message: dict[str, Any],
        *,
        current_term: int,
        last_log: tuple[int, int],
        leading: bool,
        now: float,
    ) -> dict[str, Any]:
        """The reply to another replica's pre-vote; changes nothing here."""
        asker_log = (message.get("last_log_term", 0), message.get("last_log_index", 0))
        granted = (
            message.get("term", 0) > current_term
            and not leading
            and now - self.leader_contact_at >= self.lease_s
            and now >= self.refuse_until
            and asker_log >= last_log
        )
        return {"type": PRE_VOTE_REPLY, "term": message.get("term", 0), "granted": granted}

    def take_win(self) -> bool:
        """Whether the last round won; a won round is closed (later grants count for nothing)."""
        won, self.won = self.won, False
        if won:
            self.round_term = 0
        return won

    def count(self, voter_id: str, reply: dict[str, Any], voters: int) -> bool:
        """Count a reply to the current round; True when it makes a majority of `voters`."""
        if self.won or reply.get("term") != self.round_term or not reply.get("granted"):
            return False
        self.grants[voter_id] = True
        self.won = len(self.grants) * 2 > voters
        return self.won
