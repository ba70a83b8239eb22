"""Overload: offer several times what a cluster can take, then see it recover.

    uv run python scripts/bench_overload.py                  # 3 hosts, 16 shards, 4x, 30 s
    uv run python scripts/bench_overload.py --factor 8 --seconds 60
    uv run python scripts/bench_overload.py --unbounded      # the same with the bounds off

Three NodeHost processes (real gRPC on 127.0.0.1, RocksDB in a temp dir, fsync on) each
host a replica of every shard, with the library's default bounds. In each process an
open-loop generator proposes at a fixed rate through the public API, over every shard
(followers forward), whatever happened to earlier proposals: as many independent
clients would. The run:

1. measures the sustainable rate T with closed-loop clients (`--clients` per host),
2. offers 0.5 T for `--warm` seconds (the latency of a healthy cluster),
3. offers `--factor` x T for `--seconds` (the overload),
4. offers 0.5 T again for `--recover` seconds.

Every second it prints, per phase: what was offered, the share refused with
SystemBusy, what completed, what timed out, the latency of that second's proposals,
and each host process's RSS (read by this process from /proc). At the end: the RSS
range of each process over the overload, the share of SystemBusy, whether any process
died, and the recovery time: from the moment the load dropped to the first of three
seconds in a row where nothing offered was refused or timed out and the p99 latency
was back under max(0.5 s, 3x the warm p99).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from multiprocessing.connection import Connection
from typing import Any, BinaryIO, TypeVar

from nodehost import (
    Config,
    NodeHost,
    NodeHostConfig,
    RaftError,
    RequestState,
    SystemBusy,
)
from nodehost.bench import free_ports, rss_mib, stop_children
from nodehost.bench.report import machine, machine_line
from statemachine import (
    Entry,
    IStateMachine,
    Result,
    SnapshotFile,
    SnapshotFileCollection,
)

HUGE = 2**40
T = TypeVar("T")


class Counter(IStateMachine):
    def __init__(self, shard_id: int, replica_id: int) -> None:
        self.count = 0

    def update(self, entry: Entry) -> Result:
        self.count += 1
        return Result(self.count)

    def lookup(self, query: Any) -> Any:
        return self.count

    def save_snapshot(
        self, writer: BinaryIO, files: SnapshotFileCollection, stopped: Callable[[], bool]
    ) -> None:
        writer.write(self.count.to_bytes(8, "big"))

    def recover_from_snapshot(
        self, reader: BinaryIO, files: list[SnapshotFile], stopped: Callable[[], bool]
    ) -> None:
        self.count = int.from_bytes(reader.read(), "big")


# ---------------------------------------------------------------------- one host process


class Load:
    """The open-loop generator of one host: proposes on a schedule, never waits for an
    answer before the next proposal; one asyncio task per proposal waits for its
    outcome. It runs on an event loop of its own thread, across phases, so proposals
    made in one phase are counted when they finish in the next."""

    def __init__(self, nh: NodeHost, shards: list[int], payload: int, timeout: float) -> None:
        self.nh = nh
        self.sessions = [nh.get_noop_session(s) for s in shards]
        self.command = b"p" * payload
        self.timeout = timeout
        self.outstanding = 0
        self.i = 0
        self.current = Second()
        self.tasks: set[asyncio.Task[None]] = set()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="load", daemon=True).start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def phase(
        self, rate: float, seconds: float, report: Callable[[dict[str, Any]], None]
    ) -> None:
        """Offer `rate` proposals a second for `seconds`; report each second's figures.
        When this process cannot keep up with the schedule, what it missed is counted
        as missed, not offered later in a burst."""
        started = time.monotonic()
        next_row = started + 1.0
        issued = 0
        burst = int(rate * 0.1) + 1  # at most 100 ms of the schedule at once
        while True:
            now = time.monotonic()
            if now >= next_row:
                report(self.current.close(self.outstanding))
                self.current = Second()
                next_row += 1.0
                if next_row - started > seconds + 0.5:
                    return
            due = int((now - started) * rate) - issued
            if due > burst:
                self.current.missed += due - burst
                issued += due - burst
                due = burst
            for _ in range(due):
                self.issue(now)
            issued += max(due, 0)
            await asyncio.sleep(0.005)

    def issue(self, now: float) -> None:
        second = self.current
        second.offered += 1
        session = self.sessions[self.i % len(self.sessions)]
        self.i += 1
        try:
            rs = self.nh.propose(session, self.command, self.timeout)
        except SystemBusy:
            second.busy += 1
            return
        except RaftError as exc:
            second.errors[type(exc).__name__] = second.errors.get(type(exc).__name__, 0) + 1
            return
        self.outstanding += 1
        task = self.loop.create_task(self.track(rs, now))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def track(self, rs: RequestState, issued_at: float) -> None:
        outcome = await rs
        self.outstanding -= 1
        second = self.current  # counted in the second it finished in
        code = outcome.code.name
        if code == "COMPLETED":
            second.completed += 1
            second.latencies.append(time.monotonic() - issued_at)
        elif code == "TIMEOUT":
            second.timeouts += 1
        else:
            second.errors[code] = second.errors.get(code, 0) + 1


class Second:
    """One second of one host: what was offered in it, what finished in it."""

    def __init__(self) -> None:
        self.offered = 0
        self.missed = 0
        self.busy = 0
        self.completed = 0
        self.timeouts = 0
        self.errors: dict[str, int] = {}
        self.latencies: list[float] = []

    def close(self, outstanding: int) -> dict[str, Any]:
        lat = sorted(self.latencies)
        return {
            "offered": self.offered,
            "missed": self.missed,
            "busy": self.busy,
            "completed": self.completed,
            "timeouts": self.timeouts,
            "errors": self.errors,
            "p50": lat[len(lat) // 2] if lat else None,
            "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None,
            "outstanding": outstanding,
        }


async def closed_loop(nh: NodeHost, shards: list[int], clients: int, seconds: float) -> int:
    sessions = [nh.get_noop_session(s) for s in shards]
    done = 0
    deadline = time.monotonic() + seconds

    async def client(k: int) -> None:
        nonlocal done
        i = k
        while time.monotonic() < deadline:
            try:
                await nh.aio_propose(sessions[i % len(sessions)], b"p" * 16, 5.0)
                done += 1
            except RaftError:
                await asyncio.sleep(0.05)
            i += 1

    await asyncio.gather(*(client(k) for k in range(clients)))
    return done


def host_main(
    rid: int,
    addresses: dict[int, str],
    directory: str,
    shards: int,
    unbounded: bool,
    payload: int,
    timeout: float,
    conn: Connection,
) -> None:
    logging.basicConfig(level=logging.ERROR)
    extra: dict[str, Any] = {}
    replica_extra: dict[str, Any] = {}
    if unbounded:
        extra = {"max_send_queue_size": HUGE, "max_receive_queue_size": HUGE}
        replica_extra = {
            "max_in_mem_log_size": 0,
            "max_pending_proposals": HUGE,
            "max_pending_proposal_bytes": HUGE,
            "max_pending_reads": HUGE,
            "max_queue_delay_ms": 0,
        }
    nh = NodeHost(
        NodeHostConfig(
            node_host_dir=directory, raft_address=addresses[rid], rtt_millisecond=100, **extra
        )
    )
    ids = list(range(1, shards + 1))
    for shard in ids:
        nh.start_replica(
            addresses,
            False,
            Counter,
            Config(
                shard_id=shard,
                replica_id=rid,
                check_quorum=True,
                pre_vote=True,
                snapshot_entries=100_000,
                compaction_overhead=10_000,
                **replica_extra,
            ),
        )
    lock = threading.Lock()

    def send(message: Any) -> None:
        with lock:
            conn.send(message)

    send(("started", os.getpid()))
    load = Load(nh, ids, payload, timeout)
    while True:
        command, arg = conn.recv()
        if command == "leaders":
            send(("leaders", sum(1 for s in ids if _has_leader(nh, s))))
        elif command == "closed":
            clients, seconds = arg
            send(("closed", load.call(closed_loop(nh, ids, clients, seconds))))
        elif command == "open":
            rate, seconds = arg
            load.call(load.phase(rate, seconds, lambda sample: send(("sample", sample))))
            send(("open-done", load.outstanding))
        elif command == "stop":
            nh.close()
            send(("stopped", None))
            return


def _has_leader(nh: NodeHost, shard: int) -> bool:
    try:
        return nh.get_leader_id(shard)[2]
    except RaftError:
        return False


# ---------------------------------------------------------------------- the driver


class Hosts:
    """The host processes and their pipes; each is stopped by its PID at the end."""

    def __init__(self, args: argparse.Namespace, root: str) -> None:
        ctx = mp.get_context("spawn")
        addresses = {i + 1: f"127.0.0.1:{p}" for i, p in enumerate(free_ports(3))}
        self.conns: dict[int, Connection] = {}
        self.procs: dict[int, Any] = {}
        for rid in addresses:
            ours, theirs = ctx.Pipe()
            p = ctx.Process(
                target=host_main,
                args=(
                    rid,
                    addresses,
                    os.path.join(root, f"nh{rid}"),
                    args.shards,
                    args.unbounded,
                    args.payload,
                    args.timeout,
                    theirs,
                ),
                name=f"host-{rid}",
            )
            p.start()
            self.conns[rid], self.procs[rid] = ours, p
        self.pids = {rid: self.expect(rid, "started", 120) for rid in self.conns}

    def expect(self, rid: int, kind: str, timeout: float) -> Any:
        conn = self.conns[rid]
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not conn.poll(left):
                raise SystemExit(f"host {rid} sent no {kind!r} within {timeout:.0f}s")
            got, value = conn.recv()
            if got == kind:
                return value

    def ask(self, command: str, arg: Any = None, timeout: float = 120) -> dict[int, Any]:
        for conn in self.conns.values():
            conn.send((command, arg))
        return {rid: self.expect(rid, command, timeout) for rid in self.conns}

    def rss(self) -> dict[int, float]:
        return {rid: rss_mib(pid) for rid, pid in self.pids.items()}

    def alive(self) -> dict[int, bool]:
        return {rid: p.is_alive() for rid, p in self.procs.items()}

    def stop(self) -> dict[int, int | None]:
        by_process = {p: self.conns[rid] for rid, p in self.procs.items()}
        stop_children(
            list(self.procs.values()), polite=lambda p: by_process[p].send(("stop", None)), grace=30
        )
        return {rid: p.exitcode for rid, p in self.procs.items()}


def run_phase(
    hosts: Hosts, name: str, rate: float, seconds: float, rows: list[dict[str, Any]]
) -> None:
    """Offer `rate` per second in total for `seconds`; print and keep one row a second."""
    per_host = rate / len(hosts.conns)
    for conn in hosts.conns.values():
        conn.send(("open", (per_host, seconds)))
    pending: dict[int, list[dict[str, Any]]] = {rid: [] for rid in hosts.conns}
    finished: set[int] = set()
    deadline = time.monotonic() + seconds + 60
    while len(finished) < len(hosts.conns):
        for rid, conn in hosts.conns.items():
            while rid not in finished and conn.poll(0.01):
                kind, value = conn.recv()
                if kind == "sample":
                    pending[rid].append(value)
                elif kind == "open-done":
                    finished.add(rid)
        while all(pending[rid] for rid in hosts.conns):
            samples = {rid: pending[rid].pop(0) for rid in hosts.conns}
            rows.append(print_row(name, len(rows), samples, hosts.rss()))
        if time.monotonic() > deadline:
            raise SystemExit(f"phase {name} did not end: hosts alive {hosts.alive()}")
    while all(pending[rid] for rid in hosts.conns):
        samples = {rid: pending[rid].pop(0) for rid in hosts.conns}
        rows.append(print_row(name, len(rows), samples, hosts.rss()))


def print_row(
    phase: str, t: int, samples: dict[int, dict[str, Any]], rss: dict[int, float]
) -> dict[str, Any]:
    offered = sum(s["offered"] for s in samples.values())
    missed = sum(s["missed"] for s in samples.values())
    busy = sum(s["busy"] for s in samples.values())
    completed = sum(s["completed"] for s in samples.values())
    timeouts = sum(s["timeouts"] for s in samples.values())
    other = sum(sum(s["errors"].values()) for s in samples.values())
    kinds: dict[str, int] = {}
    for sample in samples.values():
        for kind, n in sample["errors"].items():
            kinds[kind] = kinds.get(kind, 0) + n
    p50s = [s["p50"] for s in samples.values() if s["p50"] is not None]
    p99s = [s["p99"] for s in samples.values() if s["p99"] is not None]
    p50 = max(p50s) if p50s else None
    p99 = max(p99s) if p99s else None
    outstanding = sum(s["outstanding"] for s in samples.values())
    row = {
        "t": t,
        "phase": phase,
        "offered": offered,
        "missed": missed,
        "busy": busy,
        "completed": completed,
        "timeouts": timeouts,
        "other": other,
        "kinds": kinds,
        "p50": p50,
        "p99": p99,
        "outstanding": outstanding,
        "rss": rss,
    }
    share = 100.0 * busy / offered if offered else 0.0
    latency = (
        f"{1000 * p50:7.0f} {1000 * p99:7.0f}" if p50 is not None and p99 else f"{'-':>7} {'-':>7}"
    )
    print(
        f"{t:4d} {phase:>8} {offered:8d} {share:6.1f}% {completed:9d} {timeouts:7d} {other:6d} "
        f"{latency} {outstanding:8d}  " + " ".join(f"{rss[rid]:7.0f}" for rid in sorted(rss)),
        flush=True,
    )
    return row


def growth(rows: list[dict[str, Any]], phase: str, rid: int) -> float:
    """Least-squares slope of one host's RSS over one phase, MiB per second. The log
    store's memtables (48 MiB at most) and the log caches (4 MiB per replica) fill in
    the first minutes whatever the load: compare the phases, not the slope with 0."""
    points = [(r["t"], r["rss"][rid]) for r in rows if r["phase"] == phase]
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_m = sum(m for _, m in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (m - mean_m) for t, m in points) / var if var else 0.0


def recovery_time(rows: list[dict[str, Any]], warm_p99: float) -> float | None:
    """Seconds from the load drop to the first of three healthy seconds in a row."""
    after = [r for r in rows if r["phase"] == "recover"]
    limit = max(0.5, 3 * warm_p99)

    def healthy(r: dict[str, Any]) -> bool:
        return (
            r["busy"] == 0
            and r["timeouts"] == 0
            and r["other"] == 0
            and r["p99"] is not None
            and r["p99"] < limit
        )

    for i in range(len(after) - 2):
        if all(healthy(r) for r in after[i : i + 3]):
            return float(i)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--factor", type=float, default=4.0, help="overload: x sustainable")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the overload")
    parser.add_argument("--warm", type=float, default=10.0)
    parser.add_argument("--recover", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=256, help="closed-loop, per host")
    parser.add_argument("--measure", type=float, default=8.0, help="closed-loop seconds")
    parser.add_argument("--payload", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=5.0, help="of each proposal")
    parser.add_argument("--unbounded", action="store_true", help="bounds off, to compare")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="bench-overload-")
    print(machine_line(machine()), flush=True)
    print(
        f"3 NodeHost processes, {args.shards} shards x 3 replicas, {args.payload}-byte "
        f"proposals, timeout {args.timeout:g} s, bounds {'OFF' if args.unbounded else 'default'}",
        flush=True,
    )
    hosts = Hosts(args, root)
    print("host processes: " + " ".join(str(hosts.pids[rid]) for rid in sorted(hosts.pids)))
    exit_codes: dict[int, int | None] = {}
    try:
        deadline = time.monotonic() + 120
        while not all(n == args.shards for n in hosts.ask("leaders").values()):
            if time.monotonic() > deadline:
                raise SystemExit("no leader for every shard within 120 s")
            time.sleep(0.5)
        done = hosts.ask("closed", (args.clients, args.measure), timeout=args.measure + 60)
        sustainable = sum(done.values()) / args.measure
        print(
            f"sustainable (closed loop, {args.clients} clients per host, {args.measure:g} s): "
            f"{sustainable:,.0f} proposals/s",
            flush=True,
        )
        print(
            f"{'t':>4} {'phase':>8} {'offered':>8} {'busy':>7} {'completed':>9} {'timeout':>7} "
            f"{'other':>6} {'p50 ms':>7} {'p99 ms':>7} {'waiting':>8}  RSS MiB of host 1 2 3",
            flush=True,
        )
        rows: list[dict[str, Any]] = []
        run_phase(hosts, "warm", 0.5 * sustainable, args.warm, rows)
        run_phase(hosts, "overload", args.factor * sustainable, args.seconds, rows)
        run_phase(hosts, "recover", 0.5 * sustainable, args.recover, rows)
        alive = hosts.alive()
    finally:
        exit_codes = hosts.stop()
        shutil.rmtree(root, ignore_errors=True)
    summarize(args, sustainable, rows, alive, exit_codes)


def summarize(
    args: argparse.Namespace,
    sustainable: float,
    rows: list[dict[str, Any]],
    alive: dict[int, bool],
    exit_codes: dict[int, int | None],
) -> None:
    warm = [r for r in rows if r["phase"] == "warm" and r["p99"] is not None]
    warm_p99 = sorted(r["p99"] for r in warm)[len(warm) // 2] if warm else 0.0
    over = [r for r in rows if r["phase"] == "overload"]
    offered = sum(r["offered"] for r in over)
    missed = sum(r["missed"] for r in over)
    busy = sum(r["busy"] for r in over)
    completed = sum(r["completed"] for r in over)
    timeouts = sum(r["timeouts"] for r in over)
    print()
    print(
        f"overload: {offered / max(1, len(over)):,.0f} offered/s ({args.factor:g} x "
        f"{sustainable:,.0f}) for {len(over)} s: SystemBusy {100.0 * busy / max(1, offered):.1f}%"
        f" of what was offered, {completed / max(1, len(over)):,.0f} completed/s, "
        f"{timeouts} timed out"
    )
    if missed:
        print(
            f"  (the generators fell behind their schedule by {missed / max(1, len(over)):,.0f}"
            "/s: this process could not offer more)"
        )
    for rid in sorted(over[0]["rss"]) if over else []:
        series = [r["rss"][rid] for r in over]
        tail = series[len(series) // 3 :]
        slopes = ", ".join(
            f"{phase} {growth(rows, phase, rid):+.2f}" for phase in ("warm", "overload", "recover")
        )
        print(
            f"  host {rid} RSS over the overload: {min(series):.0f}..{max(series):.0f} MiB "
            f"(last two thirds {min(tail):.0f}..{max(tail):.0f} MiB); growth MiB/s: {slopes}"
        )
    for phase in ("warm", "overload", "recover"):
        kinds: dict[str, int] = {}
        for r in rows:
            if r["phase"] == phase:
                for kind, n in r["kinds"].items():
                    kinds[kind] = kinds.get(kind, 0) + n
        if kinds:
            listed = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
            print(f"other outcomes in {phase} (e.g. dropped by a leader change): {listed}")
    crashed = [rid for rid, ok in alive.items() if not ok]
    bad_exit = [rid for rid, code in exit_codes.items() if code != 0]
    print(f"crashes: {len(crashed)} (processes that died), exit codes {exit_codes}")
    recovery = recovery_time(rows, warm_p99)
    limit = max(0.5, 3 * warm_p99)
    if recovery is None:
        print(
            f"recovery: NOT within {args.recover:g} s (p99 under {1000 * limit:.0f} ms, no refusals)"
        )
    else:
        print(
            f"recovery: {recovery:.0f} s after the load dropped (first of three seconds with "
            f"nothing refused or timed out and p99 under {1000 * limit:.0f} ms; warm p99 "
            f"{1000 * warm_p99:.0f} ms)"
        )
    if crashed or bad_exit:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
