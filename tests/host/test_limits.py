"""Sizes and bounds, part by part: what the config refuses, that the worst message the
core may build fits in a frame, and the bounded registries and receive queue."""

from __future__ import annotations

import time

import pytest

from nodehost import Config, InvalidConfig, NodeHostConfig
from nodehost.admission import FLOOR, DelayGate
from nodehost.limits import (
    CUT_FACTOR,
    DEFAULT_MAX_IN_MEM_LOG_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_PENDING_PROPOSAL_BYTES,
    DEFAULT_MAX_PENDING_PROPOSALS,
    DEFAULT_MAX_PENDING_READS,
    MIN_MAX_MESSAGE_SIZE,
    frame_overhead,
    largest_entry,
    message_size_for,
    queue_bytes,
    replicate_bytes,
)
from nodehost.raft.messages import ENTRY_OVERHEAD
from nodehost.receive import SMALL_MESSAGE, ReceiveQueue
from nodehost.request import PendingRequests, RequestResult, RequestState, ResultCode
from protos import raft_pb2 as pb
from transport.frames import batch_header, message_records

MAX = 2**64 - 1
ADDRESS = "a-rather-long-host-name.example:63001"
MiB = 1024 * 1024


def host_config(**kwargs: object) -> NodeHostConfig:
    return NodeHostConfig(node_host_dir="d", raft_address=ADDRESS, **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- config


def test_the_defaults() -> None:
    nhc = host_config()
    assert nhc.max_message_size == DEFAULT_MAX_MESSAGE_SIZE == 64 * MiB
    assert nhc.max_entry_size == 8 * MiB
    assert queue_bytes(nhc.max_send_queue_size, nhc.max_message_size) == 128 * MiB
    assert queue_bytes(nhc.max_receive_queue_size, nhc.max_message_size) == 128 * MiB
    c = Config(shard_id=1, replica_id=1)
    assert c.max_in_mem_log_size == DEFAULT_MAX_IN_MEM_LOG_SIZE == 128 * MiB
    assert c.max_pending_proposals == DEFAULT_MAX_PENDING_PROPOSALS == 2048
    assert c.max_pending_proposal_bytes == DEFAULT_MAX_PENDING_PROPOSAL_BYTES == 128 * MiB
    assert c.max_pending_reads == DEFAULT_MAX_PENDING_READS == 4096
    assert c.max_queue_delay_ms == 1000


def test_an_entry_that_cannot_fit_in_a_message_is_refused_naming_both() -> None:
    with pytest.raises(InvalidConfig, match=r"max_entry_size.*max_message_size") as raised:
        host_config(max_entry_size=128 * MiB)
    assert str(message_size_for(128 * MiB)) in str(raised.value)  # says what would do
    with pytest.raises(InvalidConfig, match=r"max_entry_size.*max_message_size"):
        host_config(max_message_size=8 * MiB)  # the default 8 MiB entry plus headers
    largest = largest_entry(DEFAULT_MAX_MESSAGE_SIZE, ADDRESS, 0)
    assert host_config(max_entry_size=largest).max_entry_size == largest
    with pytest.raises(InvalidConfig, match="max_entry_size"):
        host_config(max_entry_size=largest + 1)
    big = 128 * MiB
    assert host_config(max_entry_size=big, max_message_size=message_size_for(big))


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"max_send_queue_size": 32 * MiB}, "max_send_queue_size.*max_message_size"),
        ({"max_receive_queue_size": 1}, "max_receive_queue_size.*max_message_size"),
        ({"max_receive_queue_size": -1}, "max_receive_queue_size"),
        ({"max_message_size": MIN_MAX_MESSAGE_SIZE - 1}, "max_message_size"),
        ({"max_message_size": 2**31}, "max_message_size"),
        ({"max_message_size": 64.0 * MiB}, "max_message_size"),
        ({"max_entry_size": 0}, "max_entry_size"),
    ],
)
def test_bad_sizes_are_refused_naming_the_fields(kwargs: dict[str, object], names: str) -> None:
    with pytest.raises(InvalidConfig, match=names):
        host_config(**kwargs)


@pytest.mark.parametrize(
    "name", ["max_pending_proposals", "max_pending_proposal_bytes", "max_pending_reads"]
)
@pytest.mark.parametrize("value", [0, -1, True, 1.5])
def test_replica_bounds_must_be_positive(name: str, value: object) -> None:
    with pytest.raises(InvalidConfig, match=name):
        Config(shard_id=1, replica_id=1, **{name: value})  # type: ignore[arg-type]


# ---------------------------------------------------------------------- frames


def worst_message(entries: list[pb.Entry]) -> pb.Message:
    m = pb.Message(
        type=pb.REPLICATE,
        to=MAX,
        from_id=MAX,
        shard_id=MAX,
        term=MAX,
        log_term=MAX,
        log_index=MAX,
        commit=MAX,
        reject=True,
        hint=MAX,
        hint_high=MAX,
    )
    m.entries.extend(entries)
    return m


def worst_entry(cmd: bytes) -> pb.Entry:
    return pb.Entry(
        term=MAX,
        index=MAX,
        type=pb.METADATA,
        key=MAX,
        client_id=MAX,
        series_id=MAX,
        responded_to=MAX,
        cmd=cmd,
    )


def frame_size(message: pb.Message, deployment_id: int = MAX) -> int:
    header = batch_header(deployment_id, ADDRESS)
    return len(header) + len(message_records([message])[0])


def test_the_largest_entry_fits_in_a_frame_with_every_header_at_its_largest() -> None:
    limit = MIN_MAX_MESSAGE_SIZE
    largest = largest_entry(limit, ADDRESS, MAX)
    assert limit - largest == frame_overhead(ADDRESS, MAX) < 1024
    assert frame_size(worst_message([worst_entry(b"x" * largest)])) <= limit


def test_a_cut_at_the_core_budget_fits_whatever_the_entries() -> None:
    """The core cuts in-memory entries at len(cmd) + ENTRY_OVERHEAD; entries it reads
    back from the store, at their encoded size. The worst of both must fit."""
    limit = MIN_MAX_MESSAGE_SIZE
    budget = replicate_bytes(limit, ADDRESS, MAX)
    assert 0 < budget * CUT_FACTOR < limit
    for length in (0, 1, 30, 200):
        n = budget // (length + ENTRY_OVERHEAD)  # as many as the in-memory cut takes
        message = worst_message([worst_entry(b"y" * length)] * n)
        assert frame_size(message) <= limit, length
    # From the store: the smallest encoded entries (term and index 1: four bytes).
    small = pb.Entry(term=1, index=1)
    n = budget // small.ByteSize()
    assert frame_size(worst_message([small] * n)) <= limit
    # Half and half.
    half = budget // 2
    mixed = [small] * (half // small.ByteSize()) + [worst_entry(b"")] * (half // ENTRY_OVERHEAD)
    assert frame_size(worst_message(mixed)) <= limit


def test_the_default_budget_is_the_cores_default() -> None:
    assert replicate_bytes(DEFAULT_MAX_MESSAGE_SIZE, ADDRESS, 0) == 4 * MiB


# ---------------------------------------------------------------------- registries


def request(key: int, size: int = 0, deadline: float = 1000.0) -> RequestState:
    return RequestState(key, deadline, size=size)


def test_pending_requests_refuse_past_the_count() -> None:
    pending = PendingRequests(max_count=3)
    assert all(pending.try_add(request(k)) is None for k in (1, 2, 3))
    assert "3 requests pending" in (pending.try_add(request(4)) or "")
    assert len(pending) == 3 and pending.get(4) is None
    pending.pop(2)
    assert pending.try_add(request(4)) is None
    pending.add(request(5))  # unbounded registration, for requests that are not bounded
    assert len(pending) == 4


def test_pending_requests_refuse_past_the_bytes_but_take_one_big_one_alone() -> None:
    pending = PendingRequests(max_count=100, max_bytes=1000)
    assert pending.try_add(request(1, 600)) is None
    assert "600 more would pass 1000" in (pending.try_add(request(2, 600)) or "")
    assert pending.try_add(request(3, 400)) is None
    assert pending.bytes == 1000
    pending.expire(now=2000.0)  # both time out: their bytes are free again
    assert pending.bytes == 0 and len(pending) == 0
    assert pending.try_add(request(4, 5000)) is None  # alone, though above the bound
    assert pending.try_add(request(5, 1)) is not None
    pending.fail_all(ResultCode.TERMINATED)
    assert pending.bytes == 0 and pending.try_add(request(6, 10)) is None


def test_the_gate_refuses_what_would_wait_longer_than_the_target() -> None:
    gate = DelayGate(target=1.0)  # windows of 1 s, on the clock it is given
    assert gate.rate == 0.0
    assert gate.admit(0.0, pending=5000)  # rate not known yet: only the count bounds
    for i in range(800):  # 800 finish within the first window
        gate.finished(0.1 + i * 0.001, pending=100)
    assert gate.admit(1.1, pending=700)  # rolls: 800 a second; 700 / 800 < 1 s
    assert gate.rate == pytest.approx(800)
    assert not gate.admit(1.11, pending=900)  # 900 / 800 > 1 s
    assert gate.expected_wait(900) == pytest.approx(900 / 800)
    assert gate.admit(1.12, pending=FLOOR - 1)  # a few always pass


def test_a_burst_in_a_window_is_not_taken_for_a_rate() -> None:
    gate = DelayGate(target=1.0)
    gate.admit(0.0, pending=600)  # the window opens
    for i in range(300):  # one pass finishes 300 within 10 ms, then nothing for a while
        gate.finished(0.5 + i * 0.00003, pending=600)
    gate.admit(1.2, pending=600)
    assert gate.rate == pytest.approx(300)  # over the window, not over the 10 ms


def test_a_batch_longer_than_a_window_is_measured_from_the_batch_before() -> None:
    """A state machine applying 200 a second in batches of 400: each batch finishes at
    once, two seconds after the one before. Within the window the 400 look instant;
    since the previous batch's finish they took 2 s."""
    gate = DelayGate(target=0.1)
    gate.admit(0.0, pending=1000)
    for i in range(400):
        gate.finished(2.0, pending=1000 - i)
    gate.admit(2.05, pending=600)  # first batch: only its window is known
    for i in range(400):
        gate.finished(4.0, pending=600 - i)
    assert not gate.admit(4.2, pending=200)  # 200 at 200 a second: 1 s > 0.1 s
    assert gate.rate == pytest.approx(200)


def test_after_an_empty_queue_the_span_starts_with_the_window() -> None:
    gate = DelayGate(target=1.0)
    for i in range(100):
        gate.finished(0.5 + i * 0.001, pending=100 - i - 1)  # drains to empty
    gate.admit(1.2, pending=0)
    gate.admit(10.0, pending=0)  # idle, then a new window
    for i in range(100):
        gate.finished(10.5 + i * 0.001, pending=99 - i)
    gate.admit(11.2, pending=0)
    assert gate.rate == pytest.approx(100)  # over its own window, not since 0.6


def test_a_stall_halves_the_rate_and_idleness_keeps_it() -> None:
    gate = DelayGate(target=1.0)
    for i in range(400):
        gate.finished(i * 0.002, pending=10)
    assert gate.admit(1.2, pending=10) and gate.rate == pytest.approx(400)
    assert gate.admit(2.4, pending=100)  # nothing finished, 100 wait: a stall
    assert gate.rate == pytest.approx(200)
    assert not gate.admit(2.41, pending=300)
    assert gate.admit(30.0, pending=0)  # idle for long, nothing waits: unchanged
    assert gate.rate == pytest.approx(200)
    gate.finished(30.01, pending=0)  # one after a long idle spell: over its window
    assert gate.admit(31.2, pending=0) and gate.rate == pytest.approx(1)


def test_requests_that_never_finish_do_not_count_in_the_rate() -> None:
    gate = DelayGate(target=1.0)
    pending = PendingRequests(gate=gate)
    now = time.monotonic()
    for key in range(1, 101):
        assert pending.try_add(RequestState(key, now + 1, started=now)) is None
    for key in range(1, 51):
        pending.complete(key, RequestResult(ResultCode.DROPPED))  # dropped: not counted
    pending.expire(now=now + 2)  # the rest time out: not counted either
    gate.admit(time.monotonic() + 1, pending=0)
    assert gate.rate == 0.0
    assert pending.try_add(RequestState(200, now + 9, started=now)) is None
    pending.pop(200)  # finished: counted
    gate.admit(time.monotonic() + 5, pending=0)  # past the window it finished in
    assert gate.rate > 0


def test_a_refusal_by_the_gate_says_so() -> None:
    gate = DelayGate(target=0.5)  # windows of 0.5 s
    pending = PendingRequests(gate=gate)
    now = time.monotonic()
    for key in range(80):
        pending.add(RequestState(key, now + 9, started=now))
    for i in range(40):  # 40 in the first window: 80 a second
        gate.finished(now + i * 0.01, pending=80)
    refused = pending.try_add(RequestState(99, now + 9, started=now + 0.6))
    assert refused is not None and "about 1.0 s, more than 0.5 s" in refused


# ---------------------------------------------------------------------- receive queue


def replicate(size: int) -> pb.Message:
    m = pb.Message(type=pb.REPLICATE, shard_id=1, to=2, from_id=1, term=1)
    m.entries.add(cmd=b"r" * size)
    return m


def test_the_receive_queue_drops_bulk_first_and_keeps_a_reserve_for_the_rest() -> None:
    q = ReceiveQueue(10_000)
    sizes = [q.admit(replicate(3000)) for _ in range(5)]
    assert all(sizes[:4]) and sizes[4] == 0  # 4 x ~3 KB pass the 10,000 mark
    assert q.dropped == 1 and q.dropped_bytes == sizes[0]
    heartbeat = pb.Message(type=pb.HEARTBEAT, shard_id=1, to=2, from_id=1, term=1)
    before = q.queued
    admitted = 0
    while q.admit(heartbeat):  # the reserve: a quarter more, for small messages only
        admitted += 1
    assert admitted == -(-(q.hard_limit - before) // SMALL_MESSAGE)
    assert q.dropped == 2 and not q.admit(replicate(10))
    q.release(q.queued)
    assert q.admit(replicate(50_000)) > 50_000  # empty: one message passes, whatever size
    assert q.peak > 50_000
    assert q.as_dict()["dropped"] == q.dropped


# ---------------------------------------------------------------------- log cache


def test_the_log_cache_is_bounded_in_memory_not_in_encoded_bytes() -> None:
    """Small entries once filled the 16 MiB cache only by their ~25 encoded bytes each,
    so a replica kept about 650,000 of them (over 300 MiB of objects); now an entry
    counts its memory, and the newest stay."""
    from logdb import MemoryLogDB
    from nodehost.logreader import DEFAULT_CACHE_BYTES, CachedLogReader
    from nodehost.raft.messages import ENTRY_MEMORY_OVERHEAD

    reader = CachedLogReader(MemoryLogDB(), 1, 1)
    last = 0
    for _ in range(100):
        batch = [pb.Entry(term=1, index=last + i + 1, cmd=b"c" * 16) for i in range(1000)]
        reader.append(batch)
        last += 1000
    cached = len(reader._cache)
    per_entry = batch[0].ByteSize() + ENTRY_MEMORY_OVERHEAD
    assert DEFAULT_CACHE_BYTES // per_entry - 1 <= cached <= DEFAULT_CACHE_BYTES // per_entry
    # The newest are served from memory (the store under it holds nothing).
    assert [e.index for e in reader.entries(last - 9, last + 1, 1 << 20)] == list(
        range(last - 9, last + 1)
    )
    # One entry above the bound stays: the newest is always there.
    reader.append([pb.Entry(term=1, index=last + 1, cmd=b"x" * (DEFAULT_CACHE_BYTES + 1))])
    assert len(reader._cache) == 1
