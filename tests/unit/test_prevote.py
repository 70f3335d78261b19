"""Pre-vote bookkeeping (log/prevote.py): who grants, and when a round is won."""

from __future__ import annotations

from meseta.log.prevote import PRE_VOTE, PRE_VOTE_REPLY, PreVote


def ask(term: int = 5, log: tuple[int, int] = (4, 100)) -> dict[str, object]:
    return {"type": PRE_VOTE, "term": term, "last_log_term": log[0], "last_log_index": log[1]}


def answer(voter: PreVote, message: dict[str, object], **overrides: object) -> bool:
    context: dict[str, object] = {
        "current_term": 4, "last_log": (4, 100), "leading": False, "now": 10.0,
    }  # fmt: skip
    context.update(overrides)
    reply = voter.answer(message, **context)  # type: ignore[arg-type]
    assert reply["type"] == PRE_VOTE_REPLY and reply["term"] == message["term"]
    return bool(reply["granted"])


def test_a_voter_without_a_leader_grants_an_up_to_date_asker() -> None:
    voter = PreVote(lease_s=0.4)
    assert answer(voter, ask())
    voter.heard_leader(9.5)
    assert answer(voter, ask(), now=9.9)  # exactly the lease ago
    assert answer(voter, ask(log=(4, 101)))
    assert answer(voter, ask(log=(5, 1)))  # a later last term outranks a longer log


def test_refusals_change_nothing() -> None:
    voter = PreVote(lease_s=0.4)
    voter.heard_leader(9.8)
    assert not answer(voter, ask())  # heard a leader 0.2 s ago
    voter = PreVote(lease_s=0.4)
    assert not answer(voter, ask(), leading=True)
    assert not answer(voter, ask(term=4))  # not past this voter's term
    assert not answer(voter, ask(log=(4, 99)))  # shorter log, same last term
    assert not answer(voter, ask(log=(3, 500)))  # older last term
    assert voter.leader_contact_at == float("-inf") and voter.round_term == 0


def test_a_round_is_won_by_a_majority_once() -> None:
    asker = PreVote(lease_s=0.4)
    message = asker.start("a", 7, (6, 50))
    assert message == {"type": PRE_VOTE, "term": 7, "last_log_term": 6, "last_log_index": 50}
    granted = {"type": PRE_VOTE_REPLY, "term": 7, "granted": True}
    refused = {"type": PRE_VOTE_REPLY, "term": 7, "granted": False}
    assert not asker.count("b", refused, voters=5)
    assert not asker.count("c", {**granted, "term": 6}, voters=5)  # an older round's reply
    assert not asker.count("c", granted, voters=5)
    assert not asker.count("c", granted, voters=5)  # the same voter twice counts once
    assert asker.count("d", granted, voters=5)  # a, c, d: 3 of 5
    assert asker.take_win()
    assert not asker.take_win()
    assert not asker.count("e", granted, voters=5)  # the round is closed: one campaign only


def test_hearing_a_leader_ends_a_round() -> None:
    asker = PreVote(lease_s=0.4)
    asker.start("a", 7, (6, 50))
    assert asker.count("b", {"type": PRE_VOTE_REPLY, "term": 7, "granted": True}, voters=3)
    asker.heard_leader(1.0)
    assert not asker.take_win()
    assert not asker.count("c", {"type": PRE_VOTE_REPLY, "term": 7, "granted": True}, voters=3)


def test_a_replica_that_resumes_grants_nothing_for_a_while() -> None:
    voter = PreVote(lease_s=0.4)
    assert answer(voter, ask())  # no leader heard: it would grant
    voter.start("v", 5, (4, 100))
    voter.resumed(10.0, hold_s=0.5)  # it was stopped: its silence says nothing of the leader
    assert not voter.take_win() and voter.round_term == 0
    assert not answer(voter, ask(), now=10.45)  # past the lease, not past the hold
    assert answer(voter, ask(), now=10.5)
