"""Messages no honest peer sends, as single well-formed gRPC frames to a live NodeHost.

Each is refused before any replica sees it, counted by reason (nodehost_refused_messages),
and changes nothing: the replica's term and log stay as they were, every shard of the
host keeps committing, and the replicas' state hashes agree at the end. The first two
are the reproductions from issue 13: each used to stop every shard of the host.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nodehost import NodeHost
from nodehost.raft import Refusal
from nodehost.testing.wire import batch, send_frames, send_snapshot_frames, snapshot_frames
from protos import raft_pb2 as pb
from tests.host.cluster import Cluster, encode, propose_retrying, wait_for
from transport import Reject


@dataclass
class Replica:
    """What a test needs of one replica's core, read on its engine loop."""

    term: int
    last_index: int
    last_term: int
    committed: int
    leader_id: int
    membership: pb.Membership


class Attack:
    """A running 3-host cluster with shards 1 and 2, and a host to aim at."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        cluster.start_shard(1)
        cluster.start_shard(2)
        self.leader = cluster.leader(1)
        cluster.leader(2)
        # Commit something so that logs, terms and commit indexes are not trivial.
        propose_retrying(cluster.host(self.leader), 1, encode("put", "before", 1))
        self.target_id = next(rid for rid in cluster.addresses if rid != self.leader)
        self.target = cluster.host(self.target_id)
        wait_for(lambda: self.target.stale_read(1, "before") == 1, what="the target caught up")

    def replica(self, host: NodeHost | None = None, shard_id: int = 1) -> Replica:
        host = host or self.target
        engine = host._engine
        assert engine is not None

        def read() -> Replica:
            raft = engine.nodes[shard_id].loop.peer.raft
            m = pb.Membership()
            m.CopyFrom(raft.membership)
            return Replica(
                raft.term,
                raft.log.last_index(),
                raft.log.last_term(),
                raft.log.committed,
                raft.leader_id,
                m,
            )

        return engine.call(read)

    def send(self, *messages: pb.Message, to: int | None = None) -> None:
        address = self.cluster.addresses[to or self.target_id]
        assert send_frames(address, [batch(list(messages))]) == 1

    def refused(self, reason: Refusal, host: NodeHost | None = None) -> int:
        return (host or self.target)._admission.refused[reason]

    def wait_refused(self, reason: Refusal, count: int = 1, host: NodeHost | None = None) -> None:
        wait_for(lambda: self.refused(reason, host) >= count, what=f"{count} refused {reason}")

    def message(self, kind: int, **fields: object) -> pb.Message:
        fields.setdefault("from_id", self.leader)
        fields.setdefault("to", self.target_id)
        return pb.Message(type=kind, shard_id=1, **fields)  # type: ignore[arg-type]

    def still_commits(self, key: str) -> None:
        """Every shard commits through the attacked host, and every replica applies it;
        nobody failed and the replicas of each shard agree."""
        for shard in (1, 2):
            propose_retrying(self.target, shard, encode("put", key, shard))
            for _, h in self.cluster.live():
                wait_for(lambda h=h, s=shard: h.stale_read(s, key) == s, what=f"{key} in {shard}")
        for _, h in self.cluster.live():
            assert h._engine is not None and h._engine.fatal is None
            assert all(s.failed is None for s in h.get_node_host_info().shard_info_list)
        for shard in (1, 2):
            wait_for(
                lambda s=shard: len({h.get_state_hash(s) for _, h in self.cluster.live()}) == 1,
                what=f"equal state hashes in shard {shard}",
            )


@pytest.fixture
def attack(tmp_path: Path) -> Iterator[Attack]:
    cluster = Cluster(tmp_path, enable_metrics=True)
    try:
        yield Attack(cluster)
    finally:
        cluster.close()


def test_a_heartbeat_with_a_huge_term_from_a_non_member_stops_nothing(attack: Attack) -> None:
    before = attack.replica()
    attack.send(attack.message(pb.HEARTBEAT, from_id=9, term=2**64 - 2))
    attack.wait_refused(Refusal.TERM_OUT_OF_RANGE)
    assert attack.replica().term == before.term
    attack.still_commits("after")
    # Long after the few ticks in which it used to stop the host.
    for i in range(20):
        propose_retrying(attack.target, 1 + i % 2, encode("put", f"k{i}", i))
    assert attack.replica().term == before.term
    metrics = attack.target.write_health_metrics().decode()
    assert 'nodehost_refused_messages_total{reason="term-out-of-range"} 1.0' in metrics


def test_a_replicate_with_a_gap_is_refused(attack: Attack) -> None:
    r = attack.replica()
    gap = attack.message(
        pb.REPLICATE, term=r.term, log_index=r.last_index, log_term=r.last_term, commit=r.committed
    )
    gap.entries.add(term=r.term, index=r.last_index + 2, cmd=encode("put", "gap", 1))
    attack.send(gap)
    attack.wait_refused(Refusal.ENTRY_GAP)
    after = attack.replica()
    assert after.last_index >= r.last_index and after.term == r.term
    assert attack.target.stale_read(1, "gap") is None
    attack.still_commits("after")
    assert attack.target.stale_read(1, "gap") is None


@pytest.mark.parametrize(
    ("term", "from_member", "reason"),
    [
        (2**64 - 2, False, Refusal.TERM_OUT_OF_RANGE),
        (2**63, True, Refusal.TERM_OUT_OF_RANGE),
        (-1, True, Refusal.TERM_OUT_OF_RANGE),  # one past the largest step from ours
        (0, True, Refusal.BAD_TERM),  # a heartbeat always names a term
    ],
)
def test_terms_no_replica_may_take(
    attack: Attack, term: int, from_member: bool, reason: Refusal
) -> None:
    before = attack.replica()
    if term == -1:
        term = before.term + 2**32 + 1
    heartbeat = attack.message(
        pb.HEARTBEAT, term=term, commit=2**40, from_id=attack.leader if from_member else 9
    )
    attack.send(heartbeat)
    attack.wait_refused(reason)
    assert attack.replica().term == before.term
    attack.still_commits("after")


def test_entries_out_of_order_or_of_wrong_kinds_are_refused(attack: Attack) -> None:
    r = attack.replica()
    first = r.last_index + 1

    def replicate(*entries: pb.Entry) -> pb.Message:
        m = attack.message(
            pb.REPLICATE, term=r.term, log_index=r.last_index, log_term=r.last_term, hint=1
        )
        m.entries.extend(entries)
        return m

    def entry(index: int, term: int = r.term, **fields: object) -> pb.Entry:
        return pb.Entry(index=index, term=term, **fields)  # type: ignore[arg-type]

    garbage_change = entry(first, type=pb.CONFIG_CHANGE, cmd=b"\xff\x00not a config change")
    nowhere = pb.ConfigChange(type=pb.ADD_NODE, replica_id=7, address="nowhere")
    cases = [
        (replicate(entry(first + 1), entry(first)), Refusal.ENTRY_GAP),  # reordered
        (replicate(entry(first), entry(first)), Refusal.ENTRY_GAP),  # duplicated
        (replicate(entry(first, r.term + 1)), Refusal.ENTRY_TERM),  # newer than the sender
        (replicate(entry(first, 0)), Refusal.ENTRY_TERM),
        (replicate(entry(first, type=pb.METADATA)), Refusal.BAD_ENTRY),  # not a witness
        (replicate(entry(first, type=7)), Refusal.BAD_ENTRY),
        (replicate(garbage_change), Refusal.BAD_ENTRY),
        (
            replicate(entry(first, type=pb.CONFIG_CHANGE, cmd=nowhere.SerializeToString())),
            Refusal.BAD_ENTRY,
        ),
    ]
    for message, reason in cases:
        before = attack.refused(reason)
        attack.send(message)
        attack.wait_refused(reason, before + 1)
    # A follower forwards proposals unnumbered, and never a config change that
    # does not decode: the leader would commit it and every replica would stop.
    leader_host = attack.cluster.host(attack.leader)
    forward = pb.Message(
        type=pb.PROPOSE_FORWARD, shard_id=1, to=attack.leader, from_id=attack.target_id
    )
    forward.entries.add(type=pb.CONFIG_CHANGE, cmd=b"\xff\x00")
    numbered = pb.Message()
    numbered.CopyFrom(forward)
    del numbered.entries[:]
    numbered.entries.add(index=5, term=1, cmd=encode("put", "numbered", 1))
    attack.send(forward, numbered, to=attack.leader)
    attack.wait_refused(Refusal.BAD_ENTRY, 2, host=leader_host)
    after = attack.replica()
    assert after.membership == r.membership
    attack.still_commits("after")
    assert leader_host.stale_read(1, "numbered") is None


def test_senders_that_are_no_members_or_nobody(attack: Attack) -> None:
    r = attack.replica()
    attack.send(
        attack.message(pb.HEARTBEAT, from_id=9, term=r.term + 1),
        attack.message(
            pb.REQUEST_VOTE, from_id=9, term=r.term + 1, log_index=10**6, log_term=r.term
        ),
        attack.message(pb.HEARTBEAT, from_id=attack.target_id, term=r.term + 1),
    )
    attack.wait_refused(Refusal.NOT_A_MEMBER, 2)
    attack.wait_refused(Refusal.BAD_SENDER)
    assert attack.replica().term == r.term
    attack.still_commits("after")


def test_routes_come_from_memberships_never_from_a_batch(attack: Attack) -> None:
    registry = attack.target._transport.registry
    routes = {rid: registry.resolve(1, rid) for rid in attack.cluster.addresses}
    r = attack.replica()
    # Claims to come from replica 7 at an address of its choosing: no route is made.
    stranger = attack.message(pb.HEARTBEAT, from_id=7, term=r.term)
    frame = batch([stranger], source_address="127.0.0.1:1")
    send_frames(attack.cluster.addresses[attack.target_id], [frame])
    attack.wait_refused(Refusal.NOT_A_MEMBER)
    assert registry.resolve(1, 7) is None
    # A leader's presented membership fills in only what is unknown, and moves nothing.
    lying = pb.Membership()
    lying.CopyFrom(r.membership)
    for rid in lying.addresses:
        if rid != attack.leader:
            lying.addresses[rid] = "127.0.0.1:1"
    presented = attack.message(pb.HEARTBEAT, term=r.term)
    presented.snapshot.membership.CopyFrom(lying)
    attack.send(presented)
    attack.still_commits("after")
    assert {rid: registry.resolve(1, rid) for rid in attack.cluster.addresses} == routes


def test_forged_snapshots_in_batches_are_refused(attack: Attack) -> None:
    r = attack.replica()

    def install(**snapshot: object) -> pb.Message:
        snapshot.setdefault("index", r.last_index + 100)
        snapshot.setdefault("term", r.term)
        snapshot.setdefault("membership", r.membership)
        return attack.message(
            pb.INSTALL_SNAPSHOT,
            term=r.term,
            snapshot=pb.Snapshot(shard_id=1, **snapshot),  # type: ignore[arg-type]
        )

    cases = [
        (install(dummy=True), Refusal.BAD_SNAPSHOT),  # a regular state machine needs data
        (install(witness=True), Refusal.BAD_SNAPSHOT),  # and the target is no witness
        (install(dummy=True, index=0), Refusal.BAD_SNAPSHOT),
        (install(dummy=True, term=r.term + 1), Refusal.BAD_SNAPSHOT),
        (install(dummy=True, membership=pb.Membership()), Refusal.BAD_MEMBERSHIP),
    ]
    for message, reason in cases:
        before = attack.refused(reason)
        attack.send(message)
        attack.wait_refused(reason, before + 1)
    # One with a file never travels in a batch: the transport refuses it.
    attack.send(install(filepath="/etc/passwd"))
    stats = attack.target._transport.stats
    wait_for(lambda: stats.rejected[Reject.SNAPSHOT_IN_BATCH] == 1, what="snapshot-in-batch")
    after = attack.replica()
    assert after.committed >= r.committed and after.last_index >= r.last_index
    attack.still_commits("after")


def test_forged_snapshot_streams_are_refused_and_leave_nothing(
    attack: Attack, tmp_path: Path
) -> None:
    r = attack.replica()
    data = tmp_path / "forged.snap"
    data.write_bytes(os.urandom(10_000))
    address = attack.cluster.addresses[attack.target_id]
    node = attack.target._engine.nodes[1]  # type: ignore[union-attr]

    def stream(**fields: object) -> str:
        message = attack.message(
            pb.INSTALL_SNAPSHOT,
            term=r.term,
            snapshot=pb.Snapshot(
                shard_id=1,
                index=r.last_index + 100,
                term=r.term,
                membership=r.membership,
                filepath=str(data),
                checksum=hashlib.sha256(b"anything").digest(),
                type=pb.REGULAR_STATE_MACHINE,
            ),
        )
        for name, value in fields.items():
            setattr(message, name, value)
        return send_snapshot_frames(address, snapshot_frames(message))

    # From nobody we know: refused before its files are taken in, and removed.
    stream(from_id=9)
    attack.wait_refused(Refusal.NOT_A_MEMBER)
    # From the leader, every chunk and file checksum right, the file garbage: the
    # store's own checks refuse it before the replica could recover from it.
    stream()
    attack.wait_refused(Refusal.BAD_SNAPSHOT)
    wait_for(
        lambda: not [n for n in os.listdir(node.apply.snapshots.dir) if n.endswith(".receiving")],
        what="refused snapshots removed",
    )
    after = attack.replica()
    assert after.committed < r.last_index + 100
    attack.still_commits("after")
