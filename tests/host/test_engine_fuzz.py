"""Fuzz the real engine: three NodeHosts (real gRPC, real RocksDB) take thousands of
mutated copies of their own recorded traffic while clients write.

Each host's incoming frames are recorded as they arrive. A fuzzer picks recorded
frames, changes fields of their messages with the operators of
nodehost.testing.hostile (types, ids, terms, indexes, entries, snapshots,
memberships), and sends them to the host they were recorded at, with replays,
duplicates, reordered batches, and frames of another deployment, version or no form
at all on top. Afterwards: no host stopped and no replica failed, every shard has a
leader and serves writes and linearizable reads on every host, no acknowledged write
is lost, and the replicas of each shard have equal state hashes.

CI runs FUZZ_MESSAGES (3,000 mutated messages, about 10 s); the long form,
`uv run pytest tests/host/test_engine_fuzz.py --run-slow`, runs SLOW_FUZZ_MESSAGES
(30,000).
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from google.protobuf.message import DecodeError

from nodehost import NodeHost, RaftError
from nodehost.raft import Refusal
from nodehost.testing.hostile import Context, mutate
from nodehost.testing.wire import batch, write_frames
from protos import raft_pb2 as pb
from tests.host.cluster import Cluster, encode, propose_retrying, wait_for
from transport.frames import BATCH_METHOD, BIN_VERSION

FUZZ_MESSAGES = 3_000
SLOW_FUZZ_MESSAGES = 30_000
SHARDS = (1, 2, 3)
RECORDED_FRAMES = 3_000  # per host, the most recent
FRAMES_PER_STREAM = 60
# Each term-ahead message makes a shard elect a leader again, and writes in flight there
# wait out their timeout: one in every ELECTION_EVERY streams keeps elections in the
# mix, more would leave the writers little time to write.
ELECTION_EVERY = 3
WEIGHTS = {"entries-gap": 3.0, "entries-term-bad": 3.0, "entries-kind-bad": 3.0}
NO_ELECTION = {**WEIGHTS, "term-ahead": 0.0}


@dataclass
class Recording:
    """Frames as they reached each host, before any check."""

    frames: dict[int, deque[bytes]] = field(default_factory=dict)
    sources: set[str] = field(default_factory=set)  # the hosts' own addresses
    lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, rid: int, host: NodeHost) -> None:
        self.sources.add(host.raft_address)
        inbound = host._transport._inbound
        real = inbound.on_frame
        frames: deque[bytes] = deque(maxlen=RECORDED_FRAMES)
        self.frames[rid] = frames

        def on_frame(frame: bytes) -> None:
            with self.lock:
                frames.append(frame)
            real(frame)

        inbound.on_frame = on_frame  # type: ignore[method-assign]

    def sample(
        self, rid: int, rng: random.Random, entries: bool = False
    ) -> tuple[bytes, pb.MessageBatch] | None:
        """A recorded frame from a real peer (the fuzzer's own arrive here too), decoded;
        with `entries`, preferably one that carries log entries."""
        for attempt in range(50):
            with self.lock:
                frames = self.frames[rid]
                if not frames:
                    return None
                frame = frames[rng.randrange(len(frames))]
            try:
                decoded = pb.MessageBatch.FromString(frame)
            except DecodeError:
                continue
            if decoded.source_address not in self.sources or not decoded.requests:
                continue
            if entries and attempt < 40 and not any(m.entries for m in decoded.requests):
                continue
            return frame, decoded
        return None


class Writers:
    """Client threads writing unique keys; what was acknowledged is kept."""

    def __init__(self, cluster: Cluster, threads: int = 3) -> None:
        self.cluster = cluster
        self.acked: dict[tuple[int, str], int] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.failures: Counter[str] = Counter()
        self.threads = [
            threading.Thread(target=self._run, args=(i,), name=f"writer-{i}")
            for i in range(threads)
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)
            assert not t.is_alive(), "a writer did not stop"

    def count(self) -> int:
        with self.lock:
            return len(self.acked)

    def _run(self, index: int) -> None:
        rng = random.Random(index)
        n = 0
        hosts = list(self.cluster.live())
        while not self.stop.is_set():
            n += 1
            shard = SHARDS[n % len(SHARDS)]
            key, value = f"w{index}-{n}", n
            _, host = rng.choice(hosts)
            try:
                # Short: a write in flight when its shard elects again waits out its
                # timeout, and the fuzzer waits for the writers between streams.
                host.sync_propose(host.get_noop_session(shard), encode("put", key, value), 1)
            except RaftError as exc:
                self.failures[type(exc).__name__] += 1
                continue
            with self.lock:
                self.acked[(shard, key)] = value


class Fuzzer:
    def __init__(self, cluster: Cluster, recording: Recording, seed: int) -> None:
        self.cluster = cluster
        self.recording = recording
        self.rng = random.Random(seed)
        self.sent = 0  # mutated messages
        self.frames: Counter[str] = Counter()  # frame-level actions
        self.operators: Counter[str] = Counter()
        self.elections_left = 0  # term-ahead messages this stream may still carry

    def context(self) -> Context:
        terms = [1]
        for _, host in self.cluster.live():
            for shard in SHARDS:
                try:
                    terms.append(host.get_leader_id(shard)[1])
                except RaftError:
                    pass
        return Context(max_term=max(terms))

    def one_frame(self, rid: int, ctx: Context) -> bytes | None:
        rng = self.rng
        sampled = self.recording.sample(rid, rng, entries=rng.random() < 0.4)
        if sampled is None:
            return None
        recorded, original = sampled
        action = rng.choices(
            ("mutate", "replay", "reorder", "deployment", "version", "garbage", "cut"),
            weights=(80, 6, 4, 2, 2, 3, 3),
        )[0]
        self.frames[action] += 1
        if action == "replay":
            return recorded
        if action == "garbage":
            return os.urandom(rng.randint(1, 300))
        if action == "cut":
            return recorded[: rng.randrange(len(recorded))]
        messages = list(original.requests)
        if action == "reorder":
            messages.reverse()
            return batch(messages)
        if action in ("deployment", "version"):
            return batch(
                messages,
                deployment_id=1 if action == "deployment" else 0,
                bin_ver=BIN_VERSION + 1 if action == "version" else BIN_VERSION,
            )
        out = []
        with_entries = [m for m in messages if m.entries]
        chosen = rng.sample(messages, min(len(messages), rng.randint(1, 6)))
        if with_entries and not any(m.entries for m in chosen):
            chosen.append(rng.choice(with_entries))
        for m in chosen:
            mutated = mutate(m, rng, ctx, WEIGHTS if self.elections_left else NO_ELECTION)
            if mutated is None:
                continue
            bad, operator = mutated
            if operator == "term-ahead":
                self.elections_left -= 1
            self.operators[operator] += 1
            out.append(bad)
            if rng.random() < 0.1:
                out.append(m)  # the original, once more
        self.sent += len(out)
        return batch(out) if out else None

    def run(self, total: int, progress: Callable[[], int]) -> None:
        """Send until `total` mutated messages went out, a stream of frames at a time,
        each after the writers made progress, so fuzz and writes interleave."""
        ids = [rid for rid, _ in self.cluster.live()]
        streams = 0
        while self.sent < total:
            self.elections_left = 1 if streams % ELECTION_EVERY == 0 else 0
            streams += 1
            seen = progress()
            wait_for(lambda s=seen: progress() > s, timeout=30, what="writers making progress")
            ctx = self.context()
            rid = self.rng.choice(ids)
            frames = [f for f in (self.one_frame(rid, ctx) for _ in range(FRAMES_PER_STREAM)) if f]
            if frames:
                address = self.cluster.addresses[rid]
                asyncio.run(write_frames(address, BATCH_METHOD, frames, timeout=30))


def fuzz(tmp_path: Path, total: int, seed: int) -> None:
    cluster = Cluster(tmp_path, enable_metrics=True)
    recording = Recording()
    writers: Writers | None = None
    try:
        for rid, host in cluster.live():
            recording.attach(rid, host)
        cluster.start_shard(1)
        cluster.start_shard(2, pre_vote=True)
        cluster.start_shard(3, snapshot_entries=30, compaction_overhead=5)
        for shard in SHARDS:
            cluster.leader(shard)
        writers = Writers(cluster)
        writers.start()
        fuzzer = Fuzzer(cluster, recording, seed)
        started = time.monotonic()
        fuzzer.run(total, writers.count)
        fuzz_seconds = time.monotonic() - started
        writers.close()
        _check_after(cluster, writers)
        refused: Counter[str] = Counter()
        rejected: Counter[str] = Counter()
        for _, host in cluster.live():
            refused.update({r.value: n for r, n in host._admission.refused.items()})
            rejected.update({r.value: n for r, n in host._transport.stats.rejected.items()})
        print(
            f"\nfuzzed {fuzzer.sent} mutated messages in {fuzz_seconds:.1f} s "
            f"({sum(fuzzer.frames.values())} frames: {dict(fuzzer.frames)}), "
            f"{len(writers.acked)} writes acknowledged ({dict(writers.failures)} failed)\n"
            f"operators: {dict(fuzzer.operators)}\n"
            f"refused by admission: {dict(refused)}\nrejected by the transport: {dict(rejected)}"
        )
        # The fuzz reached the checks it is about, not only the transport's.
        assert fuzzer.sent >= total
        for reason in (Refusal.TERM_OUT_OF_RANGE, Refusal.UNEXPECTED_FIELD, Refusal.BAD_TERM):
            assert refused[reason.value] > 0, reason
        assert sum(refused.values()) > total // 10
    finally:
        if writers is not None and not writers.stop.is_set():
            writers.close()
        cluster.close()


def _check_after(cluster: Cluster, writers: Writers) -> None:
    hosts = [host for _, host in cluster.live()]
    for host in hosts:
        assert host._engine is not None and host._engine.fatal is None
        failed = [
            (s.shard_id, s.failed) for s in host.get_node_host_info().shard_info_list if s.failed
        ]
        assert not failed, failed
    for shard in SHARDS:
        cluster.leader(shard, timeout=30)
        # Every host serves a write and a linearizable read of it; after that read,
        # each host has applied everything acknowledged before.
        for i, host in enumerate(hosts):
            propose_retrying(host, shard, encode("put", f"final{i}", i), timeout=30)
        for host in hosts:
            wait_for(
                lambda h=host, s=shard: (
                    h.sync_read(s, f"final{len(hosts) - 1}", 2) == len(hosts) - 1
                ),
                timeout=30,
                what=f"a linearizable read on shard {shard}",
            )
    lost = [
        (shard, key, host.raft_address)
        for (shard, key), value in writers.acked.items()
        for host in hosts
        if host.stale_read(shard, key) != value
    ]
    assert not lost, f"{len(lost)} acknowledged writes missing, e.g. {lost[:5]}"
    for shard in SHARDS:
        wait_for(
            lambda s=shard: len({h.get_state_hash(s) for h in hosts}) == 1,
            timeout=30,
            what=f"equal state hashes in shard {shard}",
        )


def test_the_engine_survives_mutated_traffic_while_clients_write(tmp_path: Path) -> None:
    fuzz(tmp_path, FUZZ_MESSAGES, seed=1)


@pytest.mark.slow
def test_the_engine_survives_mutated_traffic_long(tmp_path: Path) -> None:
    fuzz(tmp_path, SLOW_FUZZ_MESSAGES, seed=2)
