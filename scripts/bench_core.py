"""Throughput of the Raft core alone: no IO, no network, one thread.

A 3-replica shard runs in memory: each pass proposes on the leader, then every replica
acts on its Update exactly as the engine would (send replicate, save to a
MemoryLogReader, send the rest, commit_update, apply, applied_to), and the messages
are delivered in process, each passing admission first as in a NodeHost
(`--no-admission` steps them unchecked, to show what the checks cost). An entry counts
once all three replicas handed it out as committed. Also: ticks per second over 10,000
idle replicas.

    uv run python scripts/bench_core.py [--seconds 3] [--profile] [--no-admission]

Rates are per CPU-second of this process (time.process_time), so that other work on a
shared machine does not count against the core; "one core" in the targets means this.
Prints figures beside the raw ceilings of this machine kind (docs/limits.md).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import time
from collections.abc import Callable

from nodehost.bench.report import machine, machine_line
from nodehost.raft import MemoryLogReader, Peer, RaftConfig, Role
from protos import raft_pb2 as pb

PAYLOAD = b"x" * 16


class Cluster:
    def __init__(self, size: int = 3, admission: bool = True, **config: object) -> None:
        self.admission = admission
        members = {i: f"h{i}:1" for i in range(1, size + 1)}
        self.logs = {i: MemoryLogReader() for i in members}
        self.peers = {
            i: Peer(
                RaftConfig(shard_id=1, replica_id=i, **config),  # type: ignore[arg-type]
                self.logs[i],
                random.Random(i),
                members,
            )
            for i in members
        }
        self.applied = dict.fromkeys(members, 0)
        self.inbox: list[pb.Message] = []
        self.run()
        self.peers[1].step(pb.Message(type=pb.ELECTION))
        self.run()
        assert self.peers[1].role is Role.LEADER

    def pass_(self) -> bool:
        """One engine pass over every replica, then deliver what they sent."""
        busy = False
        inbox = self.inbox
        for rid, peer in self.peers.items():
            if not peer.has_update():
                continue
            busy = True
            u = peer.get_update()
            inbox.extend(u.replicate)
            log = self.logs[rid]
            if u.snapshot is not None:
                log.apply_snapshot(u.snapshot)
            if u.entries:
                log.append(u.entries)
            if u.state is not None:
                log.set_state(u.state)
            inbox.extend(u.messages)
            peer.commit_update(u)
            if u.committed:
                applied = self.applied[rid] = u.committed[-1].index
                peer.applied_to(applied)
                if applied - log.first_index() > 4096:
                    # A real log store keeps entries on disk, not as Python objects:
                    # drop old ones so the heap (and the garbage collector's work)
                    # stays at a steady size instead of growing with the run.
                    log.compact(applied - 1024)
        if inbox:
            busy = True
            self.inbox = []
            peers = self.peers
            if self.admission:
                for m in inbox:
                    peer = peers[m.to]
                    if peer.check(m) is None:
                        peer.step(m)
                    else:
                        raise AssertionError(f"admission refused {m}")
            else:
                for m in inbox:
                    peers[m.to].step(m)
        return busy

    def run(self) -> None:
        while self.pass_():
            pass

    def all_applied(self) -> int:
        return min(self.applied.values())


def bench_proposals(
    seconds: float, per_call: int, calls_per_pass: int, admission: bool = True
) -> tuple[float, int]:
    """Entries/s committed and applied on all three replicas."""
    c = Cluster(admission=admission, max_inflight=256)
    leader = c.peers[1]
    start_applied = c.all_applied()
    proposed = 0
    key = 0
    elapsed = 0.0
    while elapsed < seconds:
        # Entries are made by the engine from user commands, not by the core: build
        # them outside the timed part (make_entries prints what that costs).
        batches = []
        for _ in range(100 * calls_per_pass):
            batches.append([pb.Entry(key=key + i, cmd=PAYLOAD) for i in range(per_call)])
            key += per_call
        t0 = time.process_time()
        it = iter(batches)
        for _ in range(100):
            for _ in range(calls_per_pass):
                leader.propose(next(it))
            c.pass_()
        elapsed += time.process_time() - t0
        proposed += 100 * calls_per_pass * per_call
    t0 = time.process_time()
    c.run()
    elapsed += time.process_time() - t0
    done = c.all_applied() - start_applied
    # Every leader entry of this term is ours but the no-op, which start_applied covers.
    assert done == proposed, (done, proposed)
    return done / elapsed, done


def small_message_codec(count: int = 200_000) -> tuple[float, float]:
    """The raw ceiling limits.md gives for this machine kind, measured now: small
    protobuf Message encodes and decodes per second (limits.md: 4.2 M / 2.3 M)."""
    m = pb.Message(type=pb.REPLICATE_RESP, to=1, from_id=2, shard_id=1, term=3, log_index=10)
    t0 = time.process_time()
    for _ in range(count):
        data = m.SerializeToString()
    encode = count / (time.process_time() - t0)
    t0 = time.process_time()
    for _ in range(count):
        pb.Message.FromString(data)
    return encode, count / (time.process_time() - t0)


def make_entries(count: int = 100_000) -> float:
    """Entries per second the caller can build (for scale: the core sees them built)."""
    t0 = time.process_time()
    for i in range(count):
        pb.Entry(key=i, cmd=PAYLOAD)
    return count / (time.process_time() - t0)


def bench_idle_ticks(replicas: int, rounds: int, quiesce: bool) -> float:
    """Ticks per second over `replicas` single-replica shards that have nothing to do."""
    peers = []
    for i in range(replicas):
        log = MemoryLogReader()
        p = Peer(
            RaftConfig(shard_id=i + 1, replica_id=1, quiesce=quiesce),
            log,
            random.Random(i),
            {1: "h1"},
        )
        peers.append((p, log))
    # Elect, settle, and (with quiesce) let every shard fall idle.
    for _ in range(150 if quiesce else 30):
        for p, log in peers:
            p.tick()
            if p.has_update():
                u = p.get_update()
                log.append(u.entries)
                if u.state is not None:
                    log.set_state(u.state)
                p.commit_update(u)
                if u.committed:
                    p.applied_to(u.committed[-1].index)
    if quiesce:
        assert all(p.quiesced for p, _ in peers)
    only = [p for p, _ in peers]
    t0 = time.process_time()
    for _ in range(rounds):
        for p in only:
            # As the engine would: has_update only for replicas whose tick made work.
            if p.tick() and p.has_update():
                p.commit_update(p.get_update())
    elapsed = time.process_time() - t0
    return replicas * rounds / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--profile", action="store_true", help="cProfile the 64-entry run")
    parser.add_argument(
        "--no-admission", action="store_true", help="step messages without admission's checks"
    )
    args = parser.parse_args()
    checked = not args.no_admission

    def run(name: str, fn: Callable[[], tuple[float, int]]) -> None:
        rate, n = fn()
        print(f"  {name:<58} {rate:>10,.0f} entries/s  ({n:,} entries)")

    print(machine_line(machine()))
    encode, decode = small_message_codec()
    print("3 replicas, in memory, one thread; counted when applied on all three; per CPU-second")
    print(
        f"raw ceiling now: small protobuf Message encode {encode / 1e6:.2f} M/s, decode "
        f"{decode / 1e6:.2f} M/s (limits.md: 4.2 M / 2.3 M; a slower figure means a busy machine)"
    )
    print("raw ceilings (limits.md): protobuf Message with 64 entries encode+decode 169 k/s;")
    print("  building a 64-entry message field by field in Python, then walking it: 12 k/s")
    print(f"  (building pb.Entry objects, outside the timed part: {make_entries():,.0f}/s)")
    print(f"  messages {'pass admission' if checked else 'are stepped unchecked'}")
    run("single-entry propose(), 1 per pass", lambda: bench_proposals(args.seconds, 1, 1, checked))
    run(
        "single-entry propose(), 16 per pass", lambda: bench_proposals(args.seconds, 1, 16, checked)
    )
    run("64-entry propose(), 1 per pass", lambda: bench_proposals(args.seconds, 64, 1, checked))
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        bench_proposals(args.seconds, 64, 1, checked)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    for quiesce in (False, True):
        rate = bench_idle_ticks(10_000, 20, quiesce)
        state = "quiesced" if quiesce else "not quiesced (election timers run)"
        print(f"  10,000 idle single-replica shards, {state:<34} {rate:>10,.0f} ticks/s")


if __name__ == "__main__":
    main()
