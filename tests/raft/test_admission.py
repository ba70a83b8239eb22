"""Admission (nodehost/raft/admission.py): what may reach the core from the network.

Scenarios first, then properties:
- no message admission lets in can make the core raise or break its own invariants,
  whatever its fields (hypothesis, arbitrary messages against replicas in many states);
- honest traffic is never refused for its form (the simulated network asserts it on
  every delivery of every test in this directory);
- with mutated copies of real traffic injected (nodehost.testing.hostile), Raft's
  safety holds after every step and the shard settles with every acknowledged
  proposal applied (randomized schedules).
"""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodehost import InvalidConfig
from nodehost.addressing import check_target
from nodehost.raft import Peer, Refusal, Role
from nodehost.raft.admission import config_change_problem, membership_problem, valid_address
from nodehost.raft.messages import INDEX_LIMIT, TERM_LIMIT, TERM_STEP_LIMIT, MessageType, is_local
from protos import raft_pb2 as pb
from tests.conftest import IN_CI
from transport.config import is_node_host_id, split_address
from transport.frames import REMOTE_TYPES

from .network import Network
from .schedule import run_schedule

MAX_UINT64 = 2**64 - 1


def heartbeat(net: Network, to: int, **fields: object) -> pb.Message:
    leader = net.peer(net.leader())
    fields.setdefault("from_id", leader.replica_id)
    fields.setdefault("term", leader.term)
    return pb.Message(type=pb.HEARTBEAT, shard_id=1, to=to, **fields)  # type: ignore[arg-type]


def replicate(net: Network, to: int, *entries: pb.Entry, **fields: object) -> pb.Message:
    leader = net.peer(net.leader())
    log = net.peer(to).raft.log
    fields.setdefault("from_id", leader.replica_id)
    fields.setdefault("term", leader.term)
    fields.setdefault("log_index", log.last_index())
    fields.setdefault("log_term", log.last_term())
    m = pb.Message(type=pb.REPLICATE, shard_id=1, to=to, **fields)  # type: ignore[arg-type]
    m.entries.extend(entries)
    return m


def elected(n: int = 3, **config: object) -> Network:
    net = Network.of(n, seed=3, **config)
    net.elect(1)
    for i in range(3):
        net.propose(1 + i % n, b"c%d" % i)
    net.stabilize()
    return net


# ---------------------------------------------------------------------- scenarios


def test_the_issue_heartbeat_a_huge_term_from_nobody_is_refused() -> None:
    net = elected()
    m = heartbeat(net, 2, from_id=9, term=2**64 - 2)
    assert net.peer(2).check(m) is Refusal.TERM_OUT_OF_RANGE
    m.term = 3
    assert net.peer(2).check(m) is Refusal.NOT_A_MEMBER


def test_the_issue_replicate_entries_that_leave_a_gap_are_refused() -> None:
    net = elected()
    log = net.peer(2).raft.log
    term = net.peer(1).term
    gap = replicate(net, 2, pb.Entry(term=term, index=log.last_index() + 2))
    assert net.peer(2).check(gap) is Refusal.ENTRY_GAP


def test_terms_stay_below_the_limit_and_move_by_a_bounded_step() -> None:
    net = elected()
    peer = net.peer(2)
    for term in (TERM_LIMIT, MAX_UINT64, peer.term + TERM_STEP_LIMIT + 1):
        assert peer.check(heartbeat(net, 2, term=term)) is Refusal.TERM_OUT_OF_RANGE
    assert peer.check(heartbeat(net, 2, term=peer.term + TERM_STEP_LIMIT)) is None


def test_a_replica_never_campaigns_past_the_term_limit() -> None:
    net = elected()
    peer = net.peer(2)
    peer.raft.term = TERM_LIMIT - 1
    peer.raft.vote = 0
    net.isolate(2)
    net.tick(2, ticks=4 * 10)
    assert peer.term == TERM_LIMIT - 1 and peer.role is Role.FOLLOWER


def test_term_zero_exactly_where_a_follower_forwards() -> None:
    net = elected()
    leader = net.peer(1)
    forward = pb.Message(type=pb.PROPOSE_FORWARD, shard_id=1, to=1, from_id=2)
    forward.entries.add(cmd=b"x")
    assert leader.check(forward) is None
    forward.term = leader.term
    assert leader.check(forward) is Refusal.BAD_TERM
    assert net.peer(2).check(heartbeat(net, 2, term=0)) is Refusal.BAD_TERM
    # A replica that never heard of a term may answer a pre-vote with term 0.
    answer = pb.Message(type=pb.REQUEST_PRE_VOTE_RESP, shard_id=1, to=1, from_id=2, reject=True)
    assert leader.check(answer) is None


def test_each_kind_carries_only_its_fields() -> None:
    net = elected()
    follower = net.peer(2)
    term = net.peer(1).term
    h = heartbeat(net, 2)
    h.entries.add(term=term, index=1)
    assert follower.check(h) is Refusal.UNEXPECTED_FIELD
    r = replicate(net, 2)
    r.reject = True
    assert follower.check(r) is Refusal.UNEXPECTED_FIELD
    r = replicate(net, 2, hint=2)
    assert follower.check(r) is Refusal.UNEXPECTED_FIELD
    r = replicate(net, 2, log_term=0)
    assert follower.check(r) is Refusal.BAD_TERM  # only index 0 has term 0
    vote = pb.Message(type=pb.REQUEST_VOTE, shard_id=1, to=2, from_id=3, term=term + 1, hint=1)
    assert follower.check(vote) is Refusal.BAD_HINT  # a transfer names the candidate itself
    for kind in (pb.READ_INDEX, pb.READ_INDEX_RESP):
        ctx = pb.Message(
            type=kind, shard_id=1, to=2, from_id=1, term=0 if kind == pb.READ_INDEX else term
        )
        assert follower.check(ctx) is Refusal.BAD_HINT  # no read context


def test_kinds_never_sent_between_replicas_are_refused() -> None:
    net = elected()
    for value in range(0, 40):
        m = heartbeat(net, 2)
        m.type = value  # type: ignore[assignment]
        refusal = net.peer(2).check(m)
        if value in REMOTE_TYPES:
            assert refusal is not Refusal.LOCAL_TYPE
        else:
            assert refusal is Refusal.LOCAL_TYPE, value
    # The core's own list of local inputs agrees with the transport's remote kinds.
    for kind in MessageType:
        assert is_local(kind) == (kind not in REMOTE_TYPES)


def test_entries_follow_log_index_with_sane_terms_and_kinds() -> None:
    net = elected()
    peer = net.peer(2)
    last = peer.raft.log.last_index()
    term = net.peer(1).term

    def e(index: int, t: int = term, **fields: object) -> pb.Entry:
        return pb.Entry(index=index, term=t, **fields)  # type: ignore[arg-type]

    assert peer.check(replicate(net, 2, e(last + 1), e(last + 2))) is None
    assert peer.check(replicate(net, 2, e(last + 2), e(last + 1))) is Refusal.ENTRY_GAP
    assert peer.check(replicate(net, 2, e(last + 1), e(last + 1))) is Refusal.ENTRY_GAP
    assert peer.check(replicate(net, 2, e(last + 1, term + 1))) is Refusal.ENTRY_TERM
    assert peer.check(replicate(net, 2, e(last + 1, 0))) is Refusal.ENTRY_TERM
    assert peer.check(replicate(net, 2, e(last + 1, type=pb.METADATA))) is Refusal.BAD_ENTRY
    assert peer.check(replicate(net, 2, e(last + 1, type=5))) is Refusal.BAD_ENTRY
    garbage = e(last + 1, type=pb.CONFIG_CHANGE, cmd=b"\xff\xff")
    assert peer.check(replicate(net, 2, garbage, hint=1)) is Refusal.BAD_ENTRY
    add = pb.ConfigChange(type=pb.ADD_NODE, replica_id=4, address="host4:1").SerializeToString()
    change = e(last + 1, type=pb.CONFIG_CHANGE, cmd=add)
    assert peer.check(replicate(net, 2, change, hint=1)) is None
    # Not flagged: the follower would not look for it, and its membership would
    # never change with it.
    assert peer.check(replicate(net, 2, change)) is Refusal.BAD_HINT
    huge = replicate(net, 2, e(INDEX_LIMIT), log_index=INDEX_LIMIT - 1)
    assert peer.check(huge) is Refusal.INDEX_OUT_OF_RANGE


def test_config_changes_that_could_not_be_applied_are_refused() -> None:
    ok = pb.ConfigChange(type=pb.ADD_NODE, replica_id=4, address="host4:1")
    assert config_change_problem(ok.SerializeToString()) is None
    remove = pb.ConfigChange(type=pb.REMOVE_NODE, replica_id=4)
    assert config_change_problem(remove.SerializeToString()) is None
    for bad in (
        b"\xff\xff",
        pb.ConfigChange(type=pb.ADD_NODE, replica_id=0, address="h:1").SerializeToString(),
        pb.ConfigChange(type=pb.ADD_NODE, replica_id=4, address="h").SerializeToString(),
        pb.ConfigChange(type=8, replica_id=4, address="h:1").SerializeToString(),  # type: ignore[arg-type]
    ):
        assert config_change_problem(bad) is not None


def test_an_acknowledgement_of_entries_the_leader_lacks_is_refused() -> None:
    net = elected()
    leader = net.peer(1)
    last = leader.raft.log.last_index()
    ack = pb.Message(
        type=pb.REPLICATE_RESP, shard_id=1, to=1, from_id=2, term=leader.term, log_index=last
    )
    assert leader.check(ack) is None
    ack.log_index = last + 1
    assert leader.check(ack) is Refusal.BAD_ACK
    # A rejection names the index the leader sent, and points below it.
    ack.reject, ack.log_index, ack.hint = True, last, last + 1
    assert leader.check(ack) is Refusal.BAD_HINT


def test_snapshots_and_memberships_must_be_coherent() -> None:
    net = elected()
    peer = net.peer(2)
    term = net.peer(1).term
    membership = net.peer(1).membership

    def install(**fields: object) -> pb.Message:
        fields.setdefault("index", 100)
        fields.setdefault("term", term)
        fields.setdefault("membership", membership)
        fields.setdefault("shard_id", 1)
        snapshot = pb.Snapshot(**fields)  # type: ignore[arg-type]
        return pb.Message(
            type=pb.INSTALL_SNAPSHOT, shard_id=1, to=2, from_id=1, term=term, snapshot=snapshot
        )

    assert peer.check(install()) is None
    assert peer.check(install(index=0)) is Refusal.BAD_SNAPSHOT
    assert peer.check(install(term=term + 1)) is Refusal.BAD_SNAPSHOT
    assert peer.check(install(witness=True)) is Refusal.BAD_SNAPSHOT
    assert peer.check(install(membership=pb.Membership())) is Refusal.BAD_MEMBERSHIP
    assert peer.check(install(shard_id=2)) is Refusal.BAD_SNAPSHOT
    two_groups = pb.Membership(addresses={1: "a:1"}, witnesses={1: "b:1"})
    assert membership_problem(two_groups) is not None
    removed_member = pb.Membership(addresses={1: "a:1"}, removed={1: True})
    assert membership_problem(removed_member) is not None


def test_a_joining_replica_learns_everything_from_its_first_leader() -> None:
    net = elected()
    net.add_node(4)
    joiner = net.peer(4)
    # It knows no membership yet: it cannot judge senders (terms and forms it can).
    assert joiner.check(heartbeat(net, 4, from_id=9, term=5)) is None
    assert joiner.check(heartbeat(net, 4, from_id=9, term=2**64 - 2)) is not None
    net.propose_config_change(1, pb.ADD_NODE, 4)
    net.stabilize()
    net.tick(ticks=2)
    assert net.peer(4).raft.log.last_index() == net.peer(1).raft.log.last_index()
    assert net.peer(4).check(heartbeat(net, 4, from_id=9, term=5)) is Refusal.NOT_A_MEMBER


def test_a_voter_that_missed_the_change_adding_the_candidate_still_votes_for_it() -> None:
    """Thesis 4.1: a server grants its vote to a candidate outside its configuration;
    the candidate presents its membership, and the vote may be needed."""
    net = Network.of(3, seed=5, pre_vote=True, check_quorum=True)
    net.elect(1)
    net.isolate(3)
    net.add_node(4)
    net.propose_config_change(1, pb.ADD_NODE, 4)
    net.stabilize()
    net.tick(ticks=2)
    assert 4 in net.peer(1).membership.addresses
    assert 4 not in net.peer(3).membership.addresses
    # 1 goes away: {2, 3, 4} is a majority of four only with 3's vote.
    net.crash(1)
    net.heal()
    net.isolate(2)
    net.cut.discard((2, 4))
    net.cut.discard((4, 2))
    net.step(4, pb.Message(type=pb.ELECTION))
    net.stabilize()
    net.tick(ticks=30)
    assert net.peer(4).role is Role.LEADER
    assert 4 in net.peer(3).membership.addresses  # it caught up from the new leader
    assert net.peer(3).raft.log.last_index() == net.peer(4).raft.log.last_index()


def test_a_replica_that_restarted_without_the_change_adding_its_leader_catches_up() -> None:
    """It had followed the new leader (knowing it from the membership it presented),
    then restarted and forgot who leads: the leader presents its membership again for
    as long as the follower may lack the change that added it."""
    net = Network.of(3, seed=7, max_replicate_bytes=40, pre_vote=True, check_quorum=True)
    net.elect(1)
    net.add_node(4)
    net.isolate(3)
    for i in range(5):  # entries 3 misses before the change
        net.propose(1, b"m%d" % i)
    net.stabilize()
    net.propose_config_change(1, pb.ADD_NODE, 4)
    net.stabilize()
    net.tick(ticks=2)
    log = net.peer(1).raft.log
    added_at = max(
        e.index
        for e in log.entries(1, log.last_index() + 1, 1 << 30)
        if e.type == pb.CONFIG_CHANGE and pb.ConfigChange.FromString(e.cmd).replica_id == 4
    )
    net.peer(1).transfer_leader(4)
    net.stabilize()
    net.tick(ticks=3)
    assert net.peer(4).role is Role.LEADER
    # 3 comes back but never receives the change: it acknowledges what comes before.
    net.filters.append(lambda m: m.to == 3 and any(e.index == added_at for e in m.entries))
    net.heal()
    net.tick(ticks=3)
    assert 0 < net.peer(4).raft.progress[3].match < added_at
    net.crash(3)
    net.restart(3)
    net.filters.clear()
    net.tick(ticks=30)
    assert 4 in net.peer(3).membership.addresses
    assert net.peer(3).raft.log.last_index() == net.peer(4).raft.log.last_index()


def test_a_heartbeat_commits_only_what_its_leader_proved() -> None:
    net = elected()
    follower = net.peer(2)
    # Entries of an older term the leader never sent: a stale suffix.
    log = follower.raft.log
    old = log.last_term()
    net.isolate(2)
    stale = [pb.Entry(term=old, index=log.last_index() + i, cmd=b"stale") for i in (1, 2)]
    log.append(stale)
    net.heal()
    leader = net.peer(1)
    # A newer leader's heartbeat (it deposed the old one) claims a commit index past
    # everything: the follower commits nothing it has not seen match that leader.
    before = log.committed
    follower.step(heartbeat(net, 2, term=leader.term + 1, commit=log.last_index()))
    assert log.committed == before


def test_a_candidate_behind_learns_the_term_from_a_refused_vote() -> None:
    net = elected()
    voter = net.peer(2)
    stale = pb.Message(
        type=pb.REQUEST_VOTE,
        shard_id=1,
        to=2,
        from_id=3,
        term=voter.term - 1,
        log_index=1,
        log_term=1,
    )
    voter.step(stale)
    answers = [m for m in voter.get_update().messages if m.type == pb.REQUEST_VOTE_RESP]
    assert answers and answers[0].reject and answers[0].term == voter.term


def _transport_takes(address: str) -> bool:
    """What the transport's registry takes as a target in one of its two modes."""
    try:
        split_address(address)
        return True
    except ValueError:
        return is_node_host_id(address)


def test_valid_address_is_the_transports_rule() -> None:
    for address in (
        "h:1",
        "[::1]:80",
        "a.b:65535",
        "h:65536",
        "h",
        ":1",
        "[::1:80",
        "h:x",
        "h:\u0661",
        str(uuid.uuid4()),
        str(uuid.uuid4()).upper(),
        str(uuid.uuid4()).replace("-", ""),
        "{" + str(uuid.uuid4()) + "}",
    ):
        assert valid_address(address) == _transport_takes(address), address


@given(st.one_of(st.text(max_size=40), st.uuids().map(str)))
def test_valid_address_agrees_with_the_transport_and_the_api(address: str) -> None:
    assert valid_address(address) == _transport_takes(address)
    # Whatever the public API accepts for a new member, in either mode, admission lets in.
    for by_node_host_id in (False, True):
        try:
            check_target(address, "target", by_node_host_id)
        except InvalidConfig:
            continue
        assert valid_address(address)


# ---------------------------------------------------------------------- properties

_INTERESTING = (
    0,
    1,
    2,
    3,
    5,
    1 << 20,
    1 << 32,
    TERM_LIMIT - 1,
    TERM_LIMIT,
    MAX_UINT64 - 1,
    MAX_UINT64,
)


def _number(data: st.DataObject, near: int) -> int:
    return data.draw(
        st.one_of(
            st.sampled_from(_INTERESTING),
            st.integers(max(near - 3, 0), min(near + 3, MAX_UINT64)),
            st.integers(0, MAX_UINT64),
        )
    )


def _membership(data: st.DataObject) -> pb.Membership:
    ids = st.sampled_from((0, 1, 2, 3, 4, 9))
    addresses = st.sampled_from(("host1:1", "host2:1", "host3:1", "h:0", "bad", "", "[::1]:9"))
    m = pb.Membership(config_change_id=data.draw(st.sampled_from((0, 1, 5, 1000, MAX_UINT64))))
    for group in (m.addresses, m.non_votings, m.witnesses):
        for rid, address in data.draw(st.dictionaries(ids, addresses, max_size=3)).items():
            group[rid] = address
    for rid in data.draw(st.lists(ids, max_size=2)):
        m.removed[rid] = True
    return m


def _entries(data: st.DataObject, first: int, term: int) -> list[pb.Entry]:
    out = []
    contiguous = data.draw(st.booleans())
    for k in range(data.draw(st.integers(0, 4))):
        kind = data.draw(
            st.sampled_from((pb.APPLICATION, pb.APPLICATION, pb.CONFIG_CHANGE, pb.METADATA, 6))
        )
        cmd = data.draw(st.binary(max_size=8))
        if kind == pb.CONFIG_CHANGE and data.draw(st.booleans()):
            cc = pb.ConfigChange(
                type=data.draw(st.sampled_from((0, 1, 2, 3, 4))),  # type: ignore[arg-type]
                replica_id=data.draw(st.sampled_from((0, 4, 5, 9))),
                address=data.draw(st.sampled_from(("host4:1", "host5:1", "x"))),
            )
            cmd = cc.SerializeToString()
        out.append(
            pb.Entry(
                index=min(first + k, MAX_UINT64) if contiguous else _number(data, first),
                term=data.draw(
                    st.sampled_from((term, term, max(term - 1, 0), min(term + 1, MAX_UINT64), 0))
                ),
                type=kind,  # type: ignore[arg-type]
                cmd=cmd,
                key=data.draw(st.integers(0, 5)),
            )
        )
    return out


def _message(data: st.DataObject, net: Network, to: int) -> pb.Message:
    receiver = net.peer(to)
    last = receiver.raft.log.last_index()
    term = max(p.term for p in (n.peer for n in net.alive()) if p is not None)
    kind = data.draw(st.one_of(st.sampled_from(sorted(REMOTE_TYPES)), st.integers(0, 40)))
    m = pb.Message(
        type=kind,
        shard_id=data.draw(st.sampled_from((1, 1, 1, 2))),
        to=data.draw(st.sampled_from((to, to, to, 0, 7))),
        from_id=data.draw(st.sampled_from((1, 2, 3, 4, 0, 9, to, MAX_UINT64))),
        term=_number(data, term),
        log_index=_number(data, last),
        log_term=_number(data, term),
        commit=_number(data, last),
        reject=data.draw(st.booleans()),
        hint=data.draw(st.one_of(st.just(0), st.just(1), st.integers(0, MAX_UINT64))),
        hint_high=data.draw(st.one_of(st.just(0), st.integers(0, MAX_UINT64))),
    )
    m.entries.extend(_entries(data, min(m.log_index + 1, MAX_UINT64), m.term))
    shape = data.draw(st.sampled_from(("none", "none", "membership", "snapshot")))
    if shape == "membership":
        m.snapshot.membership.CopyFrom(_membership(data))
    elif shape == "snapshot":
        m.snapshot.CopyFrom(
            pb.Snapshot(
                shard_id=data.draw(st.sampled_from((0, 1, 2))),
                index=_number(data, last),
                term=_number(data, term),
                membership=_membership(data) if data.draw(st.booleans()) else receiver.membership,
                witness=data.draw(st.booleans()),
            )
        )
    return m


def _drain(net: Network, rid: int) -> None:
    """Act on the replica's updates as an engine would, without the network's
    cross-replica checks (the message may be a lie no replica can spot)."""
    node = net.nodes[rid]
    peer = node.peer
    assert peer is not None
    for _ in range(5):
        if not peer.has_update():
            return
        u = peer.get_update()
        if u.snapshot is not None:
            node.log.apply_snapshot(u.snapshot)
        if u.entries:
            node.log.append(u.entries)
        if u.state is not None:
            node.log.set_state(u.state)
        peer.commit_update(u)
        peer.applied_to(peer.raft.log.committed)


def _local_invariants(peer: Peer, before: tuple[int, int, int]) -> None:
    raft = peer.raft
    log = raft.log
    term, vote, committed = before
    assert raft.term < TERM_LIMIT
    assert raft.term >= term and (raft.term > term or vote == 0 or raft.vote == vote)
    assert committed <= log.committed <= log.last_index()
    indexes = [e.index for e in log.mem]
    assert indexes == list(range(log.mem_offset, log.mem_offset + len(indexes)))
    terms = [e.term for e in log.mem]
    assert terms == sorted(terms) and all(t < TERM_LIMIT for t in terms)


_NETWORKS = {
    "follower": lambda: elected(),
    "leader": lambda: elected(),
    "witness": lambda: _with_witness(),
    "compacted": lambda: _compacted(),
    "joining": lambda: _joining(),
}


def _with_witness() -> Network:
    net = elected()
    net.add_node(4, is_witness=True)
    net.propose_config_change(1, pb.ADD_WITNESS, 4)
    net.stabilize()
    net.tick(ticks=2)
    return net


def _compacted() -> Network:
    net = elected()
    for rid in (1, 2, 3):
        net.take_snapshot(rid, overhead=1)
    net.propose(1, b"after")
    net.stabilize()
    return net


def _joining() -> Network:
    net = elected()
    net.add_node(4)
    return net


@settings(
    max_examples=150 if IN_CI else 400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.sampled_from(sorted(_NETWORKS)), st.data())
def test_no_admitted_message_makes_the_core_raise(state: str, data: st.DataObject) -> None:
    net = _NETWORKS[state]()
    to = {"leader": 1, "witness": 4, "joining": 4}.get(state, 2)
    peer = net.peer(to)
    for _ in range(data.draw(st.integers(1, 3))):
        m = _message(data, net, to)
        raft = peer.raft
        before = (raft.term, raft.vote, raft.log.committed)
        if peer.check(m) is None:
            peer.step(m)
            _drain(net, to)
        _local_invariants(peer, before)
    # Still a working replica: time passes, it campaigns or follows without raising.
    for _ in range(12):
        peer.tick()
        _drain(net, to)


def test_random_schedules_with_hostile_copies_of_real_traffic() -> None:
    """One in five messages sent is followed by a mutated copy (nodehost.testing.hostile):
    safety is checked after every delivery, the shard must settle, and every operator
    must have been refused or survived."""
    seeds = range(120) if IN_CI else range(400)
    refused: Counter[str] = Counter()
    admitted: Counter[str] = Counter()
    for seed in seeds:
        nets: list[Network] = []
        try:
            run_schedule(seed, 100, hostile=0.2, net=nets)
        except Exception as exc:
            pytest.fail(
                f"hostile schedule {seed} failed: {exc}\nreplay: "
                f"run_schedule({seed}, 100, hostile=0.2) from tests/raft/schedule.py",
                pytrace=False,
            )
        refused.update(nets[0].hostile_refused)
        admitted.update(nets[0].hostile_admitted)
    # Every way of refusing was exercised, and the survivable mutations did get in.
    for reason in Refusal:
        if reason is not Refusal.NOT_ADDRESSED:
            assert refused[reason.value] > 0, reason
    assert {"term-stale", "term-ahead", "rejected", "index-shifted", "entries-cut"} <= set(admitted)


@pytest.mark.slow
def test_random_schedules_with_hostile_copies_long() -> None:
    for seed in range(10_000, 12_000):
        run_schedule(seed, 300, hostile=0.2)


def test_random_hostile_schedules_replay_exactly() -> None:
    traces = []
    for _ in range(2):
        nets: list[Network] = []
        run_schedule(11, 60, hostile=0.3, net=nets)
        traces.append(nets[0].trace)
    assert traces[0] == traces[1]
    assert any("(hostile:" in line for line in traces[0] or [])
