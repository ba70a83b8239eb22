"""CPU and memory of many idle shards: what a NodeHost costs when nothing happens.

    uv run python scripts/bench_idle.py                         # 10,000 shards, 3 hosts
    uv run python scripts/bench_idle.py --shards 1000 --no-quiesce
    uv run python scripts/bench_idle.py --transport tcp

Each NodeHost runs in its own process (real gRPC, or TCP with --transport tcp, on
127.0.0.1, real RocksDB in a temp dir) and hosts one replica of every shard, so each shard has `--hosts` replicas. The run:

1. start every replica on every host at once and wait until each host knows a leader
   for every shard (start-up time is printed in total and per shard),
2. write once to `--writes` shards, so some logs hold a user entry,
3. with quiesce on, wait until every replica on every host has quiesced (more than
   10 election timeouts without activity); with `--no-quiesce`, a short settle instead,
4. measure each host process's CPU over `--seconds` (psutil cpu_times deltas, read by
   this process so the hosts do nothing for the measurement) and print it as % of one
   core beside the target, with each host's peak RSS.

The target (under 5% of a core per host for 10,000 quiesced shards) is Dragonboat's
promise for idle shards. Other load on a shared machine only adds to the figures.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, BinaryIO

from nodehost import Config, NodeHost, NodeHostConfig, RaftError
from nodehost.bench import CpuWindow, free_ports, own_peak_rss_mib, rss_mib, stop_children
from nodehost.bench.report import machine, machine_line
from statemachine import (
    Entry,
    IStateMachine,
    Result,
    SnapshotFile,
    SnapshotFileCollection,
)

TARGET_PERCENT = 5.0


class Counter(IStateMachine):
    """The smallest useful state machine: counts the entries it applied."""

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


def host_main(
    rid: int,
    addresses: dict[int, str],
    directory: str,
    shards: int,
    quiesce: bool,
    rtt_ms: int,
    transport: str,
    conn: Connection,
) -> None:
    """Start this host's replica of every shard, then answer the driver's questions."""
    logging.basicConfig(level=logging.ERROR)
    nh = NodeHost(
        NodeHostConfig(
            node_host_dir=directory,
            raft_address=addresses[rid],
            rtt_millisecond=rtt_ms,
            transport=transport,
        )
    )
    engine = nh._engine
    assert engine is not None
    started = time.perf_counter()
    for shard in range(1, shards + 1):
        config = Config(
            shard_id=shard,
            replica_id=rid,
            election_rtt=10,
            heartbeat_rtt=1,
            check_quorum=True,
            quiesce=quiesce,
        )
        nh.start_replica(addresses, False, Counter, config)
    conn.send(time.perf_counter() - started)
    while True:
        command, arg = conn.recv()
        if command == "leaders":
            conn.send(sum(1 for s in range(1, shards + 1) if _has_leader(nh, s)))
        elif command == "leaderless":
            conn.send(_leaderless(nh, arg))
        elif command == "write":
            conn.send(_write(nh, arg))
        elif command == "quiesced":
            conn.send(sum(1 for n in list(engine.nodes.values()) if n.quiesced))
        elif command == "rss":
            rss = rss_mib(os.getpid())
            conn.send((rss, max(rss, own_peak_rss_mib())))
        elif command == "stop":
            nh.close()
            conn.send("stopped")
            return


def _has_leader(nh: NodeHost, shard: int) -> bool:
    try:
        return nh.get_leader_id(shard)[2]
    except RaftError:
        return False


def _leaderless(nh: NodeHost, limit: int) -> list[str]:
    """How the first shards that know no leader look from here (for a stuck start)."""
    engine = nh._engine
    assert engine is not None
    found = []
    for node in list(engine.nodes.values()):
        if node.leader_id == 0:
            peer = node.loop.peer
            found.append(
                f"shard {node.shard_id}: {peer.role.name} term {peer.term} "
                f"quiesced {node.loop.quiesced} leader {peer.leader_id}"
            )
            if len(found) == limit:
                break
    return found


def _write(nh: NodeHost, shards: list[int]) -> int:
    """Propose one entry to each shard (followers forward it); the number that completed."""
    states = [nh.propose(nh.get_noop_session(s), b"x", timeout=30) for s in shards]
    return sum(1 for rs in states if rs.wait().completed())


# ---------------------------------------------------------------------- the driver


class Hosts:
    """The host processes and their control pipes; every process is stopped by PID."""

    def __init__(
        self, count: int, shards: int, quiesce: bool, rtt_ms: int, transport: str, root: str
    ) -> None:
        ctx = mp.get_context("spawn")
        ports = free_ports(count)
        addresses = {i + 1: f"127.0.0.1:{p}" for i, p in enumerate(ports)}
        self.conns: dict[int, Connection] = {}
        self.procs: dict[int, Any] = {}
        for rid in addresses:
            ours, theirs = ctx.Pipe()
            directory = os.path.join(root, f"nh{rid}")
            p = ctx.Process(
                target=host_main,
                args=(rid, addresses, directory, shards, quiesce, rtt_ms, transport, theirs),
                name=f"host-{rid}",
            )
            p.start()
            self.conns[rid], self.procs[rid] = ours, p

    def pids(self) -> dict[int, int]:
        return {rid: p.pid for rid, p in self.procs.items()}

    def recv(self, rid: int, timeout: float) -> Any:
        conn = self.conns[rid]
        if not conn.poll(timeout):
            raise SystemExit(f"host {rid} did not answer within {timeout:.0f}s")
        return conn.recv()

    def ask(self, command: str, arg: Any = None, timeout: float = 60) -> dict[int, Any]:
        for conn in self.conns.values():
            conn.send((command, arg))
        return {rid: self.recv(rid, timeout) for rid in self.conns}

    def stop(self) -> None:
        by_process = {p: self.conns[rid] for rid, p in self.procs.items()}
        stop_children(
            list(self.procs.values()), polite=lambda p: by_process[p].send(("stop", None)), grace=30
        )


def wait_until(what: str, condition: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)
    return time.monotonic() - started


def measure(pids: dict[int, int], seconds: float) -> dict[int, float]:
    """CPU of each process over the window, as a percentage of one core."""
    window = CpuWindow(pids.values())
    time.sleep(seconds)  # the measured window itself: the hosts idle through it
    percent = window.stop()
    return {rid: percent[pid] for rid, pid in pids.items()}


def run(args: argparse.Namespace) -> bool:
    quiesce = not args.no_quiesce
    shards = args.shards
    root = tempfile.mkdtemp(prefix="bench-idle-")
    print(machine_line(machine()), flush=True)
    print(
        f"{shards} shards x {args.hosts} replicas, one NodeHost process per replica, "
        f"rtt {args.rtt_ms} ms, election_rtt 10, heartbeat_rtt 1, "
        f"quiesce {'on' if quiesce else 'off'}, {args.transport} transport",
        flush=True,
    )
    hosts = Hosts(args.hosts, shards, quiesce, args.rtt_ms, args.transport, root)
    try:
        t0 = time.monotonic()
        starts = {rid: hosts.recv(rid, args.timeout) for rid in hosts.conns}
        slowest = max(starts.values())
        print(
            f"start_replica x {shards} per host: "
            + ", ".join(f"host {rid} {s:.1f} s" for rid, s in starts.items())
            + f" ({1000 * slowest / shards:.2f} ms per shard)",
            flush=True,
        )
        try:
            wait_until(
                "a leader of every shard on every host",
                lambda: all(n == shards for n in hosts.ask("leaders").values()),
                args.leader_timeout,
            )
            elected = time.monotonic() - t0
            print(
                f"every shard has a leader {elected:.1f} s after the hosts opened "
                f"({1000 * elected / shards:.2f} ms per shard)",
                flush=True,
            )
        except SystemExit as exc:
            # A replica that quiesced knowing no leader is never woken: say so, and
            # still measure what the idle shards cost.
            print(f"{exc}; measuring anyway. Replicas that know no leader:")
            for rid, found in hosts.ask("leaderless", 5).items():
                print(f"  host {rid}: {'; '.join(found) or 'none'}", flush=True)
        written = list(range(1, shards + 1, max(1, shards // max(1, args.writes))))
        done = hosts.conns[1]
        done.send(("write", written))
        completed = hosts.recv(1, args.timeout)
        print(f"wrote one entry to {completed} of {len(written)} shards", flush=True)
        if quiesce:
            waited = wait_until(
                "every replica to quiesce",
                lambda: all(n == shards for n in hosts.ask("quiesced").values()),
                args.timeout,
            )
            print(f"every replica quiesced {waited:.1f} s after the writes", flush=True)
        else:
            time.sleep(args.settle)
        percent = measure(hosts.pids(), args.seconds)
        still = hosts.ask("quiesced") if quiesce else {}
        memory = hosts.ask("rss")
    finally:
        hosts.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(f"idle CPU over {args.seconds:.0f} s, % of one core per host process:")
    for rid, value in percent.items():
        rss, peak = memory[rid]
        quiet = f", {still[rid]}/{shards} replicas quiesced at the end" if quiesce else ""
        print(f"  host {rid}: {value:5.2f}%  (RSS {rss:.0f} MiB, peak {peak:.0f} MiB{quiet})")
    worst = max(percent.values())
    verdict = "under" if worst < TARGET_PERCENT else "OVER"
    print(f"worst host {worst:.2f}% of a core: {verdict} the {TARGET_PERCENT:.0f}% target")
    return worst < TARGET_PERCENT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", type=int, default=10_000)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window")
    parser.add_argument("--rtt-ms", type=int, default=100, help="NodeHostConfig.rtt_millisecond")
    parser.add_argument("--writes", type=int, default=100, help="shards written once")
    parser.add_argument("--no-quiesce", action="store_true", help="the comparison figure")
    parser.add_argument(
        "--transport", choices=("grpc", "tcp"), default="grpc", help="NodeHostConfig.transport"
    )
    parser.add_argument("--settle", type=float, default=5.0, help="idle wait without quiesce")
    parser.add_argument("--timeout", type=float, default=1200.0, help="bound on each phase")
    parser.add_argument(
        "--leader-timeout", type=float, default=120.0, help="bound on the wait for leaders"
    )
    args = parser.parse_args()
    run(args)


if __name__ == "__main__":
    main()
