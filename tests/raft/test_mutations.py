"""Known bugs of the core (tests/mutants.py: subclasses of Raft with one rule taken out)
and proof that the network's checks catch them.

Each scenario runs twice: with the real rules it is safe; with the broken protocol, the
network's safety checks raise. A checker that never fires proves nothing.
"""

from __future__ import annotations

import pytest

from nodehost.raft import Raft, Role
from protos import raft_pb2 as pb
from tests.mutants import CommitEarlierTermByCount, ReadIndexBeforeFirstCommit

from .network import Network, SafetyViolation

ELECTION = pb.Message(type=pb.ELECTION)


def figure_8(protocol: type[Raft]) -> Network:
    """Thesis figure 3.7 on five replicas (bootstrap entries are 1..5, term 1).

    (a) 1 leads term 2 and gets entry 2/7 onto 2 only.
    (b) 5 leads term 3 with votes from 3 and 4, saves its own 3/7 and sends nothing.
    (c) 1 leads term 4 and copies 2/7 onto 3 and 4 before its term-4 no-op leaves:
        2/7 is on a majority, but it is not of term 4, so it must not commit.
    (d) 1 is cut off; 5 wins term 5 (its 3/7 is newer than everyone's 2/7) and
        overwrites index 7. Had (c) committed 2/7, a committed entry is now lost.
    """
    net = Network.of(5, seed=8, max_replicate_bytes=1, max_inflight=1, protocol=protocol)
    net.elect(1)
    assert net.peer(1).committed == 6
    net.partition([1, 2], [3, 4, 5])
    net.propose(1, b"x")
    net.stabilize()
    assert net.peer(2).raft.log.last_index() == 7

    net.heal()
    net.isolate(1)
    net.filters.append(lambda m: m.from_id == 5 and m.type in (pb.REPLICATE, pb.HEARTBEAT))
    net.elect(5)
    assert net.peer(5).raft.log.term(7) == 3
    net.filters.clear()

    net.heal()
    net.isolate(5)
    # The term-4 no-op never reaches anyone who could store it (a probe that will be
    # rejected may pass).
    net.filters.append(
        lambda m: (
            m.from_id == 1
            and any(e.term == 4 for e in m.entries)
            and net.peer(m.to).raft.log.last_index() >= 7
        )
    )
    net.tick(1)  # its heartbeat is answered with term 3: 1 steps down
    assert net.peer(1).role is Role.FOLLOWER
    net.step(1, ELECTION)
    net.stabilize()
    assert net.peer(1).role is Role.LEADER and net.peer(1).term == 4
    assert [net.peer(r).raft.log.term(7) for r in (1, 2, 3, 4)] == [2, 2, 2, 2]

    net.filters.clear()
    net.heal()
    net.isolate(1)
    net.tick(5)  # still leading term 3 alone: the answers to its heartbeat depose it
    net.step(5, ELECTION)
    net.stabilize()
    return net


def test_figure_8_is_safe_when_only_current_term_entries_are_counted() -> None:
    net = figure_8(Raft)
    assert net.peer(5).role is Role.LEADER
    assert net.peer(5).raft.log.term(7) == 3
    assert net.checker.committed[7] == 3


def test_figure_8_committing_an_old_term_entry_by_count_is_caught() -> None:
    with pytest.raises(SafetyViolation, match=r"lacks committed entry 2/7|committed 3/7"):
        figure_8(CommitEarlierTermByCount)


def stale_read(protocol: type[Raft]) -> tuple[Network, tuple[int, int]]:
    """1 commits entry 5 but nobody learns it; 2 takes over and is asked to read
    before an entry of its own term commits. Its commit index (4) is stale."""
    net = Network.of(3, seed=9, protocol=protocol)
    net.elect(1)
    # Followers store entry 6 and acknowledge it, but never hear that it committed.
    net.filters.append(lambda m: m.from_id == 1 and not m.entries)
    net.propose(1, b"acknowledged")
    net.stabilize()
    assert net.peer(1).committed == 5 and net.peer(2).committed == 4
    net.filters.clear()
    net.isolate(1)
    net.filters.append(lambda m: m.from_id == 2 and m.type == pb.REPLICATE)
    net.elect(2)
    ctx = net.read(2)
    net.stabilize()
    return net, ctx


def test_read_before_the_first_commit_of_the_term_is_refused() -> None:
    net, ctx = stale_read(Raft)
    assert net.read_served(2, ctx)  # answered: dropped, so the client retries
    assert net.checker.reads_served == 0


def test_serving_a_read_before_the_first_commit_of_the_term_is_caught() -> None:
    with pytest.raises(SafetyViolation, match="stale read"):
        stale_read(ReadIndexBeforeFirstCommit)
