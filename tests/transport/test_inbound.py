"""Every batch is checked before the engine sees it (transport/inbound.py).

Each hostile input is refused, counted under its reason, and changes nothing: the
engine is not called, and the next good batch is delivered as usual.
"""

from __future__ import annotations

import pytest
from transport_kit import DEPLOYMENT, Recorder, config, heartbeat

from protos import raft_pb2 as pb
from transport import FaultHook, Reject, TransportStats
from transport.frames import BIN_VERSION
from transport.inbound import Inbound

LOCAL = "127.0.0.1:9000"


def inbound(hook: FaultHook | None = None) -> tuple[Inbound, Recorder, TransportStats]:
    handler = Recorder(hosted={(1, 2), (3, 2)})
    stats = TransportStats()
    return Inbound(config(LOCAL), handler, stats, lambda: hook), handler, stats


def frame(
    *messages: pb.Message, deployment_id: int = DEPLOYMENT, bin_ver: int = BIN_VERSION
) -> bytes:
    return pb.MessageBatch(
        deployment_id=deployment_id,
        source_address="127.0.0.1:9001",
        bin_ver=bin_ver,
        requests=messages,
    ).SerializeToString()


def still_serves(inb: Inbound, handler: Recorder) -> None:
    before = len(handler.messages)
    inb.on_frame(frame(heartbeat()))
    assert len(handler.messages) == before + 1


def test_good_batch_is_delivered_whole() -> None:
    inb, handler, stats = inbound()
    inb.on_frame(frame(heartbeat(), heartbeat(shard_id=3)))
    assert [m.shard_id for m in handler.messages] == [1, 3]
    assert handler.sources == ["127.0.0.1:9001"]
    assert stats.batches_received == 1 and stats.messages_received == 2
    assert not stats.rejected


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (frame(heartbeat(), deployment_id=DEPLOYMENT + 1), Reject.WRONG_DEPLOYMENT),
        (frame(heartbeat(), bin_ver=BIN_VERSION + 1), Reject.WRONG_VERSION),
        (b"\xff\xff\xff\xff garbage", Reject.MALFORMED),
        (frame(heartbeat())[:-3], Reject.MALFORMED),  # truncated
        (b"\x0a" * (64 * 1024 * 1024 + 1), Reject.OVERSIZED),
    ],
    ids=["wrong-deployment", "wrong-version", "garbage", "truncated", "oversized"],
)
def test_bad_batches_are_refused_whole(bad: bytes, reason: Reject) -> None:
    inb, handler, stats = inbound()
    inb.on_frame(bad)
    assert handler.messages == []
    assert stats.rejected == {reason: 1}
    assert stats.batches_received == 0
    still_serves(inb, handler)


LOCAL_ONLY = [
    pb.INVALID,
    pb.LOCAL_TICK,
    pb.ELECTION,
    pb.LEADER_HEARTBEAT,
    pb.CHECK_QUORUM,
    pb.PROPOSE,
    pb.CONFIG_CHANGE_EVENT,
    pb.SNAPSHOT_STATUS,
    pb.UNREACHABLE,
    pb.BATCHED_READ_INDEX,
    pb.SNAPSHOT_RECEIVED,
    999,  # not a type at all
]


@pytest.mark.parametrize("kind", LOCAL_ONLY)
def test_local_only_types_from_the_wire_are_refused(kind: int) -> None:
    inb, handler, stats = inbound()
    bad = heartbeat()
    bad.type = kind  # type: ignore[assignment]
    inb.on_frame(frame(heartbeat(), bad, heartbeat(shard_id=3)))
    assert [m.shard_id for m in handler.messages] == [1, 3]  # the good ones still go
    assert all(m.type == pb.HEARTBEAT for m in handler.messages)
    assert stats.rejected == {Reject.LOCAL_TYPE: 1}


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (heartbeat(shard_id=99), Reject.NOT_HOSTED),  # unknown shard
        (heartbeat(to=5), Reject.NOT_HOSTED),  # a replica not hosted here
        (heartbeat(to=0), Reject.NOT_HOSTED),
        (heartbeat(from_id=0), Reject.BAD_FIELD),
        (heartbeat(term=2**64 - 1), Reject.BAD_FIELD),
        (
            pb.Message(
                type=pb.INSTALL_SNAPSHOT,
                shard_id=1,
                to=2,
                from_id=1,
                term=3,
                snapshot=pb.Snapshot(index=9, filepath="/etc/passwd"),
            ),
            Reject.SNAPSHOT_IN_BATCH,
        ),
        (
            pb.Message(
                type=pb.INSTALL_SNAPSHOT,
                shard_id=1,
                to=2,
                from_id=1,
                term=3,
                snapshot=pb.Snapshot(index=9, dummy=True, files=[pb.SnapshotFile(filepath="../x")]),
            ),
            Reject.SNAPSHOT_IN_BATCH,
        ),
    ],
    ids=[
        "unknown-shard",
        "not-hosted",
        "to-zero",
        "from-zero",
        "max-term",
        "file-snapshot",
        "file-in-dummy",
    ],
)
def test_bad_messages_are_sifted_out(bad: pb.Message, reason: Reject) -> None:
    inb, handler, stats = inbound()
    inb.on_frame(frame(bad, heartbeat(term=6)))
    assert [m.term for m in handler.messages] == [6]
    assert stats.rejected == {reason: 1}


def test_metadata_only_snapshots_travel_in_batches() -> None:
    inb, handler, stats = inbound()
    witness = pb.Message(
        type=pb.INSTALL_SNAPSHOT,
        shard_id=1,
        to=2,
        from_id=1,
        term=3,
        snapshot=pb.Snapshot(index=9, witness=True),
    )
    inb.on_frame(frame(witness))
    assert handler.messages == [witness] and not stats.rejected


def test_a_batch_of_only_bad_messages_reaches_nobody() -> None:
    inb, handler, stats = inbound()
    inb.on_frame(frame(heartbeat(shard_id=50), heartbeat(from_id=0)))
    assert handler.messages == [] and handler.sources == []
    assert stats.rejected == {Reject.NOT_HOSTED: 1, Reject.BAD_FIELD: 1}


def test_an_engine_failure_is_counted_and_the_next_batch_still_goes() -> None:
    inb, handler, stats = inbound()
    calls = []

    def explode(source: str, messages: object) -> None:
        calls.append(source)
        raise RuntimeError("engine bug")

    handler.on_messages = explode  # type: ignore[method-assign]
    inb.on_frame(frame(heartbeat()))
    inb.on_frame(frame(heartbeat()))
    assert len(calls) == 2 and stats.handler_errors == 2


def test_a_cut_source_is_dropped_on_arrival() -> None:
    hook = FaultHook()
    inb, handler, stats = inbound(hook)
    hook.cut("127.0.0.1:9001", LOCAL)
    inb.on_frame(frame(heartbeat()))
    assert handler.messages == [] and stats.fault_dropped == 1 and not stats.rejected
    hook.heal()
    still_serves(inb, handler)


def test_rejections_are_logged_but_throttled(caplog: pytest.LogCaptureFixture) -> None:
    inb, _, stats = inbound()
    with caplog.at_level("WARNING", logger="transport"):
        for _ in range(100):
            inb.on_frame(b"\xff garbage")
    assert stats.rejected[Reject.MALFORMED] == 100
    lines = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert 1 <= len(lines) <= 2
