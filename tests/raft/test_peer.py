"""The Peer contract the engine relies on (update.py's Update docstring)."""

from __future__ import annotations

import random

import pytest

from nodehost.raft import (
    LeaderInfo,
    MemoryLogReader,
    Peer,
    RaftConfig,
    Role,
    describe_message,
    describe_update,
)
from protos import raft_pb2 as pb


def make(
    rid: int = 1, members: dict[int, str] | None = None, **kw: object
) -> tuple[Peer, MemoryLogReader]:
    log = MemoryLogReader()
    peer = Peer(RaftConfig(shard_id=7, replica_id=rid), log, random.Random(rid), members, **kw)  # type: ignore[arg-type]
    return peer, log


def save(peer: Peer, log: MemoryLogReader) -> None:
    u = peer.get_update()
    if u.snapshot is not None:
        log.apply_snapshot(u.snapshot)
    log.append(u.entries)
    if u.state is not None:
        log.set_state(u.state)
    if u.must_sync:
        log.sync()
    peer.commit_update(u)


def test_a_new_replica_starts_with_the_bootstrap_entries() -> None:
    peer, _ = make(2, {1: "a", 2: "b", 3: "c"})
    u = peer.get_update()
    assert u.shard_id == 7 and u.replica_id == 2
    assert u.state == pb.State(term=1, vote=0, commit=3)
    assert [e.index for e in u.entries] == [1, 2, 3]
    assert all(e.type == pb.CONFIG_CHANGE and e.term == 1 for e in u.entries)
    assert u.committed == u.entries
    assert u.must_sync
    assert sorted(peer.membership.addresses) == [1, 2, 3]
    assert peer.role is Role.FOLLOWER


def test_a_new_replica_needs_members_or_join() -> None:
    with pytest.raises(ValueError, match="initial_members"):
        make(1, None)
    with pytest.raises(ValueError, match="not among the initial members"):
        make(4, {1: "a"})


def test_a_joining_replica_starts_empty_and_quiet() -> None:
    peer, _ = make(4, None, join=True)
    assert not peer.has_update()
    assert peer.membership == pb.Membership()
    peer.step(pb.Message(type=pb.ELECTION))
    assert not peer.has_update()  # not a voter it knows of: no campaign


def test_one_update_at_a_time() -> None:
    peer, log = make(1, {1: "a"})
    u = peer.get_update()
    assert not peer.has_update()
    with pytest.raises(RuntimeError, match="commit_update"):
        peer.get_update()
    with pytest.raises(RuntimeError, match="not the outstanding one"):
        peer.commit_update(pb.Entry())  # type: ignore[arg-type]
    log.append(u.entries)
    peer.commit_update(u)


def test_inputs_between_get_and_commit_wait_for_the_next_update() -> None:
    peer, log = make(1, {1: "a"})
    save(peer, log)
    peer.step(pb.Message(type=pb.ELECTION))
    u = peer.get_update()
    assert peer.is_leader()
    peer.propose([pb.Entry(key=5, cmd=b"later")])
    assert [e.key for e in u.entries] == [0]  # the no-op only
    log.append(u.entries)
    log.set_state(u.state)  # type: ignore[arg-type]
    peer.commit_update(u)
    u = peer.get_update()
    assert [e.key for e in u.entries] == [5]


def test_proposed_entries_get_their_term_and_index_in_place() -> None:
    peer, log = make(1, {1: "a"})
    save(peer, log)
    peer.step(pb.Message(type=pb.ELECTION))
    save(peer, log)
    e = pb.Entry(key=9, cmd=b"c")
    peer.propose([e])
    assert (e.term, e.index) == (2, 3)


def test_a_commit_alone_is_saved_without_fsync() -> None:
    peer, log = make(1, {1: "a"})
    save(peer, log)
    peer.step(pb.Message(type=pb.ELECTION))
    save(peer, log)
    u = peer.get_update()  # the no-op committed: only the commit index changed
    assert u.state is not None and u.state.commit == 2
    assert not u.entries and not u.must_sync
    peer.commit_update(u)


def test_leader_changes_are_reported_once() -> None:
    peer, log = make(1, {1: "a"})
    save(peer, log)
    peer.step(pb.Message(type=pb.ELECTION))
    u = peer.get_update()
    assert u.leader == LeaderInfo(1, 2)
    log.append(u.entries)
    log.set_state(u.state)  # type: ignore[arg-type]
    peer.commit_update(u)
    u = peer.get_update()
    assert u.leader is None
    peer.commit_update(u)


def test_a_restart_resumes_term_vote_commit_and_membership() -> None:
    peer, log = make(1, {1: "a", 2: "b"})
    save(peer, log)
    peer.step(pb.Message(type=pb.ELECTION))
    save(peer, log)
    again = Peer(RaftConfig(shard_id=7, replica_id=1), log, random.Random(9))
    assert again.term == 2 and again.raft.vote == 1
    assert again.role is Role.FOLLOWER
    assert again.membership == peer.membership


def test_a_config_change_proposal_is_an_entry() -> None:
    peer, log = make(1, {1: "a"})
    save(peer, log)
    peer.step(pb.Message(type=pb.ELECTION))
    save(peer, log)
    save(peer, log)
    cc = pb.ConfigChange(type=pb.ADD_NODE, replica_id=2, address="b")
    peer.propose_config_change(cc, key=77)
    u = peer.get_update()
    (e,) = u.entries
    assert e.type == pb.CONFIG_CHANGE and e.key == 77
    assert pb.ConfigChange.FromString(e.cmd) == cc


def test_descriptions() -> None:
    m = pb.Message(
        type=pb.REPLICATE,
        from_id=1,
        to=2,
        term=3,
        log_index=5,
        log_term=2,
        commit=5,
        entries=[pb.Entry(term=3, index=6, cmd=b"hello"), pb.Entry(term=3, index=7)],
    )
    assert describe_message(m) == "1->2 REPLICATE t=3 log=2/5 commit=5 [3/6 'hello', 3/7 noop]"
    reject = pb.Message(
        type=pb.REPLICATE_RESP, from_id=2, to=1, term=3, log_index=5, reject=True, hint=4
    )
    assert describe_message(reject) == "2->1 REPLICATE_RESP t=3 index=5 reject hint=0/4"
    peer, _ = make(1, {1: "a"})
    text = describe_update(peer.get_update())
    assert text.splitlines()[0] == "update 7/1 sync"
    assert "save [1/1 cc:add(1)]" in text


def test_propose_says_what_it_did() -> None:
    from nodehost.raft import ProposalResult

    from .network import Network

    net = Network.of(3, seed=3)
    assert net.peer(2).propose([pb.Entry(key=1)]) is ProposalResult.DROPPED  # no leader
    net.elect(1)
    assert net.peer(1).propose([pb.Entry(key=2)]) is ProposalResult.APPENDED
    assert net.peer(2).propose([pb.Entry(key=3)]) is ProposalResult.FORWARDED
    cc = pb.ConfigChange(type=pb.ADD_NON_VOTING, replica_id=4, address="d")
    assert net.peer(1).propose_config_change(cc, key=4) is ProposalResult.APPENDED
    # A second change while the first is pending is refused.
    cc2 = pb.ConfigChange(type=pb.ADD_NON_VOTING, replica_id=5, address="e")
    assert net.peer(1).propose_config_change(cc2, key=5) is ProposalResult.DROPPED
