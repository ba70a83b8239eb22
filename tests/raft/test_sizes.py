"""Messages are cut by bytes: what a follower forwards in one pass and what a leader
replicates each fit in `max_replicate_bytes` (commands plus ENTRY_OVERHEAD each), an
entry bigger than that travels alone, and the order of the entries survives the cut."""

from __future__ import annotations

import random

from nodehost.raft.messages import ENTRY_OVERHEAD
from protos import raft_pb2 as pb

from .network import Network

LIMIT = 130  # two 40-byte commands (64 bytes each with the overhead) fit, three do not


def propose_batch(net: Network, rid: int, commands: list[bytes]) -> list[int]:
    """Propose `commands` on `rid` in one call, as the engine does with a pass's queue."""
    keys = []
    for _ in commands:
        keys.append(net.next_key)
        net.nodes[rid].proposals.add(net.next_key)
        net.next_key += 1
    net.peer(rid).propose([pb.Entry(key=k, cmd=c) for k, c in zip(keys, commands, strict=True)])
    return keys


def recorded(net: Network, kind: pb.MessageType) -> list[pb.Message]:
    """Every message of `kind` sent from now on (a filter that records and lets pass)."""
    seen: list[pb.Message] = []

    def record(m: pb.Message) -> bool:
        if m.type == kind:
            seen.append(m)
        return False

    net.filters.append(record)
    return seen


def size(m: pb.Message) -> int:
    return sum(len(e.cmd) + ENTRY_OVERHEAD for e in m.entries)


def test_a_follower_forwards_a_big_batch_in_messages_cut_by_bytes() -> None:
    net = Network.of(3, seed=21, max_replicate_bytes=LIMIT)
    net.elect(1)
    forwards = recorded(net, pb.PROPOSE_FORWARD)
    keys = propose_batch(net, 2, [b"%040d" % i for i in range(10)])
    net.stabilize()
    assert [len(m.entries) for m in forwards] == [2, 2, 2, 2, 2]
    assert all(m.to == 1 and m.from_id == 2 for m in forwards)
    # Every one was applied, in the order proposed.
    indexes = [net.acked[k] for k in keys]
    assert indexes == sorted(indexes) and len(set(indexes)) == len(keys)
    assert net.applied(3) == net.peer(1).raft.log.last_index()


def test_an_entry_above_the_limit_travels_alone_both_ways() -> None:
    net = Network.of(3, seed=22, max_replicate_bytes=LIMIT)
    net.elect(1)
    forwards = recorded(net, pb.PROPOSE_FORWARD)
    replicates = recorded(net, pb.REPLICATE)
    big = b"B" * 1000
    keys = propose_batch(net, 3, [b"a" * 40, big, b"c" * 40, b"d" * 40])
    net.stabilize()
    assert [[e.cmd[:1] for e in m.entries] for m in forwards] == [[b"a"], [b"B"], [b"c", b"d"]]
    to_two = [[e.cmd[:1] for e in m.entries] for m in replicates if m.to == 2 and m.entries]
    assert to_two == [[b"a"], [b"B"], [b"c", b"d"]]
    assert all(k in net.acked for k in keys)
    assert net.applied(2) == net.applied(1) == net.peer(1).raft.log.last_index()


def test_a_small_batch_is_forwarded_in_one_message() -> None:
    net = Network.of(3, seed=23, max_replicate_bytes=LIMIT)
    net.elect(1)
    forwards = recorded(net, pb.PROPOSE_FORWARD)
    propose_batch(net, 2, [b"x" * 40, b"y" * 40])
    net.stabilize()
    assert [len(m.entries) for m in forwards] == [2]


def test_no_message_carries_more_than_the_budget_unless_one_entry() -> None:
    rng = random.Random(24)
    net = Network.of(3, seed=24, max_replicate_bytes=400, max_inflight=4)
    net.elect(1)
    forwards = recorded(net, pb.PROPOSE_FORWARD)
    replicates = recorded(net, pb.REPLICATE)
    keys: list[int] = []
    for round_ in range(30):
        rid = rng.choice((1, 2, 3))
        commands = [b"z" * rng.choice((0, 1, 30, 200, 390, 900)) for _ in range(rng.randint(1, 12))]
        keys += propose_batch(net, rid, commands)
        if round_ % 3 == 0:
            net.stabilize()
    net.stabilize()
    assert sum(len(m.entries) > 1 for m in forwards) > 5
    checked = [m for m in forwards + replicates if m.entries]
    for m in checked:
        assert len(m.entries) == 1 or size(m) <= 400, f"{len(m.entries)} entries, {size(m)} bytes"
    assert all(k in net.acked for k in keys)
    assert net.applied(3) == net.applied(2) == net.peer(1).raft.log.last_index()
