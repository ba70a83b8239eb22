"""The small parts: config checks, the registry, the wire records, faults, back-off."""

from __future__ import annotations

import logging
import random

import pytest
from google.protobuf.internal.encoder import _VarintBytes
from hypothesis import given, settings
from hypothesis import strategies as st

from protos import raft_pb2 as pb
from transport import FaultHook, Registry, TransportConfig, TransportConfigError
from transport.breaker import Breaker
from transport.config import DEFAULT_SEND_QUEUE_BYTES
from transport.frames import BIN_VERSION, batch_header, message_records, varint

# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"raft_address": "localhost"}, "raft_address"),
        ({"raft_address": "h:70000"}, "65535"),
        ({"raft_address": ":1"}, "raft_address"),
        ({"listen_address": "0.0.0.0:x"}, "listen_address"),
        ({"deployment_id": -1}, "deployment_id"),
        ({"max_message_size": 1000}, "max_message_size"),
        ({"snapshot_chunk_size": 40 * 1024 * 1024}, "half of max_message_size"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"backoff_min": 2.0, "backoff_max": 1.0}, "backoff_min"),
        ({"mutual_tls": True}, "ca_file"),
        (
            {"mutual_tls": True, "ca_file": "/no/such", "cert_file": "x", "key_file": "y"},
            "/no/such",
        ),
    ],
)
def test_config_rejects_bad_fields(fields: dict[str, object], complaint: str) -> None:
    base: dict[str, object] = {
        "raft_address": "127.0.0.1:1",
        "listen_address": "",
        "deployment_id": 1,
    }
    with pytest.raises(TransportConfigError, match=complaint):
        TransportConfig(**{**base, **fields})  # type: ignore[arg-type]


def test_config_defaults_bound_everything() -> None:
    c = TransportConfig("[::1]:5000", "", 3)
    assert c.bind_address == "[::1]:5000"
    assert c.send_queue_bytes == 2 * c.max_message_size  # two of the largest frames
    small = TransportConfig("h:1", "", 3, max_message_size=64 * 1024, snapshot_chunk_size=1024)
    assert small.send_queue_bytes == DEFAULT_SEND_QUEUE_BYTES
    assert TransportConfig("h:1", "0.0.0.0:2", 3, max_send_queue_size=10).send_queue_bytes == 10


# ---------------------------------------------------------------- registry


def test_registry_resolves_moves_and_forgets() -> None:
    r = Registry()
    r.add(1, 1, "a:1")
    r.add(1, 2, "b:1")
    r.add(2, 1, "a:1")
    assert r.resolve(1, 2) == "b:1"
    r.add(1, 2, "c:1")  # a membership change moved it
    assert r.resolve(1, 2) == "c:1"
    assert sorted(r.replicas_at("a:1")) == [(1, 1), (2, 1)]
    r.remove(1, 1)
    assert r.resolve(1, 1) is None
    r.remove_shard(1)
    assert r.resolve(1, 2) is None
    assert r.replicas_at("a:1") == [(2, 1)]
    r.remove(9, 9)  # unknown: nothing to do


def test_registry_rejects_bad_entries() -> None:
    r = Registry()
    with pytest.raises(ValueError, match="ids are >= 1"):
        r.add(1, 0, "a:1")
    with pytest.raises(ValueError, match="host:port"):
        r.add(1, 1, "nowhere")
    assert r.resolve(1, 1) is None


# ---------------------------------------------------------------- frames

messages = st.builds(
    pb.Message,
    type=st.sampled_from([pb.REPLICATE, pb.HEARTBEAT, pb.REQUEST_VOTE]),
    to=st.integers(0, 2**64 - 1),
    from_id=st.integers(0, 2**64 - 1),
    shard_id=st.integers(0, 2**64 - 1),
    term=st.integers(0, 2**64 - 1),
    entries=st.lists(
        st.builds(pb.Entry, index=st.integers(0, 2**64 - 1), cmd=st.binary(max_size=300)),
        max_size=3,
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(messages, max_size=20), st.integers(0, 2**64 - 1), st.text(max_size=40))
def test_concatenated_records_decode_as_one_batch(
    batch: list[pb.Message], deployment_id: int, source: str
) -> None:
    frame = batch_header(deployment_id, source) + b"".join(message_records(batch))
    expected = pb.MessageBatch(
        deployment_id=deployment_id, source_address=source, bin_ver=BIN_VERSION, requests=batch
    )
    assert pb.MessageBatch.FromString(frame) == expected


@given(st.integers(0, 2**64 - 1))
def test_varint_matches_protobuf(n: int) -> None:
    assert varint(n) == _VarintBytes(n)


# ---------------------------------------------------------------- faults


def test_cuts_are_one_way_and_heal() -> None:
    hook = FaultHook()
    hook.cut("a", "b")
    assert hook.blocks("a", "b") and not hook.blocks("b", "a")
    assert hook.plan("a", "b") == [] and hook.plan("b", "a") == [0.0]
    hook.partition(["a"], ["c", "d"])
    assert all(hook.blocks(x, y) for x, y in [("a", "c"), ("c", "a"), ("d", "a")])
    hook.heal(dst="a")
    assert not hook.blocks("c", "a") and hook.blocks("a", "c")
    hook.heal()
    assert hook.cuts == frozenset()


def test_random_faults_replay_with_the_seed() -> None:
    def plans(seed: int) -> list[list[float]]:
        hook = FaultHook(seed, drop=0.3, duplicate=0.3, delay=(0.01, 0.05), delay_rate=0.5)
        return [hook.plan("a", "b") for _ in range(500)]

    first = plans(11)
    assert first == plans(11) and first != plans(12)
    assert any(p == [] for p in first)
    assert any(len(p) == 2 for p in first)
    assert any(0.01 <= d <= 0.05 for p in first for d in p)


def test_fault_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="probability"):
        FaultHook(drop=1.5)
    with pytest.raises(ValueError, match="delay"):
        FaultHook(delay=(0.5, 0.1))


# ---------------------------------------------------------------- breaker


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    b = Breaker(0.1, 1.0, random.Random(3))
    delays = [b.failure() for _ in range(8)]
    ceilings = [min(1.0, 0.1 * 2**i) for i in range(8)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays) <= 1.0
    b.success()
    assert b.failures == 0 and b.failure() <= 0.1


def test_not_hosted_is_a_note_unless_it_keeps_coming(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A membership change makes peers send to a replica not (or no longer) hosted here
    for a moment: INFO. Refusals that go on for PERSISTS seconds warn; a malformed
    frame warns at once."""
    from transport import stats as stats_module

    clock = [100.0]
    monkeypatch.setattr(stats_module.time, "monotonic", lambda: clock[0])
    caplog.set_level(logging.INFO, logger="transport")
    stats = stats_module.TransportStats()
    stats.reject(stats_module.Reject.NOT_HOSTED, "HEARTBEAT (shard 1, 3 -> 4)")
    stats.reject(stats_module.Reject.MALFORMED, "junk")
    for _ in range(int(stats_module.PERSISTS / stats_module.LOG_EVERY) + 1):
        clock[0] += stats_module.LOG_EVERY
        stats.reject(stats_module.Reject.NOT_HOSTED, "HEARTBEAT (shard 1, 3 -> 4)")
    levels = [(r.levelno, r.getMessage().split(":")[0]) for r in caplog.records]
    assert levels[0] == (logging.INFO, "rejected (not-hosted)")
    assert levels[1] == (logging.WARNING, "rejected (malformed)")
    assert levels[-1] == (logging.WARNING, "rejected (not-hosted)")
    clock[0] += 10 * stats_module.LOG_EVERY  # quiet, then a new run starts as a note
    stats.reject(stats_module.Reject.NOT_HOSTED, "HEARTBEAT (shard 1, 3 -> 4)")
    assert caplog.records[-1].levelno == logging.INFO
    assert stats.rejected[stats_module.Reject.NOT_HOSTED] == int(stats_module.PERSISTS) + 3
