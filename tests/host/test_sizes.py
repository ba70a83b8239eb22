"""Large proposals end to end: nine 8 MiB commands at once through a follower (one
forwarded message would be 72 MiB, above the 64 MiB frame limit) all complete, on real
NodeHosts over gRPC, and no frame is refused or message dropped on the way."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from nodehost import NodeHost, PayloadTooBig
from statemachine import (
    Entry,
    IHash,
    IStateMachine,
    Result,
    SnapshotFile,
    SnapshotFileCollection,
)
from tests.host.cluster import Cluster, wait_for
from transport import Reject

MiB = 1024 * 1024


class Digests(IStateMachine, IHash):
    """Keeps each command's length and checksum, not the command: nine 8 MiB values on
    three replicas in one test process would cost more memory than the test is about."""

    def __init__(self, shard_id: int = 0, replica_id: int = 0) -> None:
        self.seen: list[tuple[int, int, int]] = []

    def update(self, entry: Entry) -> Result:
        self.seen.append((entry.index, len(entry.cmd), zlib.crc32(entry.cmd)))
        return Result(len(entry.cmd))

    def lookup(self, query: Any) -> Any:
        return list(self.seen)

    def save_snapshot(
        self, writer: BinaryIO, files: SnapshotFileCollection, stopped: Callable[[], bool]
    ) -> None:
        writer.write(repr(self.seen).encode())

    def recover_from_snapshot(
        self, reader: BinaryIO, files: list[SnapshotFile], stopped: Callable[[], bool]
    ) -> None:
        raise NotImplementedError("no snapshots in this test")

    def get_hash(self) -> int:
        return int.from_bytes(hashlib.sha256(repr(self.seen).encode()).digest()[:8], "big")


@pytest.fixture
def slow_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Ticks of 100 ms and an election timeout of 2 s: 72 MiB through each stream of a
    busy shared machine may hold a heartbeat up for longer than the suite's usual
    200 ms, and a new leader would lose the forwarded proposals it never saw."""
    c = Cluster(tmp_path, rtt_millisecond=100)
    try:
        yield c
    finally:
        c.close()


def test_nine_8_mib_proposals_through_a_follower_all_complete(slow_cluster: Cluster) -> None:
    cluster = slow_cluster
    cluster.start_shard(1, create=Digests, election_rtt=20)
    leader = cluster.leader(1)
    follower = next(rid for rid in cluster.addresses if rid != leader)
    host = cluster.host(follower)
    session = host.get_noop_session(1)
    size = host.config.max_entry_size
    assert size == 8 * MiB
    commands = [bytes([65 + i]) * size for i in range(9)]
    # Proposed from the engine's own loop, so that no pass runs between them: all nine
    # wait in one pass's queue, which the follower forwards at once (as concurrent
    # clients' proposals often do), 72 MiB in one message before they were cut.
    engine = host._engine
    assert engine is not None
    states = engine.call(lambda: [host.propose(session, cmd, timeout=60) for cmd in commands])
    outcomes = [rs.wait(70) for rs in states]
    assert [o.code.name for o in outcomes] == ["COMPLETED"] * 9
    assert [o.result.value for o in outcomes] == [size] * 9
    expected = sorted(zlib.crc32(c) for c in commands)
    for rid, h in cluster.live():

        def applied(h: NodeHost = h) -> bool:
            return len(h.stale_read(1, None)) == 9

        wait_for(applied, timeout=30, what=f"replica {rid} applied")
        assert sorted(crc for _, _, crc in h.stale_read(1, None)) == expected
    assert len({h.get_state_hash(1) for _, h in cluster.live()}) == 1
    for _, h in cluster.live():
        stats = h._transport.stats
        assert stats.dropped == 0, "a message was dropped on the way"
        assert not stats.rejected[Reject.OVERSIZED], "a frame was refused as too big"
        assert h._engine is not None and h._engine.receive_queue.dropped == 0
    # One byte more is refused at once, on the follower as on the leader.
    for rid in (follower, leader):
        with pytest.raises(PayloadTooBig, match="max_entry_size"):
            cluster.host(rid).propose(session, b"x" * (size + 1), timeout=5)
