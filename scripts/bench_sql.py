"""Replicated SQLite speed: three members on loopback, fsync on, beside dqlite and the
machine's raw ceilings.

    uv run python scripts/bench_sql.py                    # 10 s per load
    uv run python scripts/bench_sql.py --seconds 15 --dqlite

Loads (each member is its own process; the clients run where dqlite-benchmark's driver
runs, in the leader's process, through `App.open`, and with `--wire` also from a separate
process over the dqlite wire protocol):
1. sequential single-row INSERT, one client: p50 and p99 (goal: at or below dqlite's);
2. single-row INSERT transactions from 64 concurrent clients: transactions/s (goal: 10x
   dqlite's best, ~450/s on this machine kind; none may fail as busy);
3. linearizable point SELECTs from 64 clients: reads/s.
With `--dqlite` and Debian's `dqlite-benchmark` installed, dqlite's kvwrite workload
(3 nodes, 16-byte values) runs with 1 and 64 workers for the same time, and its figures
are printed beside ours; otherwise the figures measured on this machine kind are shown.
The disk ceiling (one writer, write + fdatasync) is measured in the data directory
first. Shared machines give noisy figures: compare within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from examples.benchmark.compare.dqlite import dqlite_benchmark, dqlite_installed
from examples.benchmark.sqlcluster import SqlCluster
from nodehost.bench import CpuWindow, Histogram, Workers
from nodehost.bench.ceilings import beside
from nodehost.bench.disk import fsync_rate
from nodehost.bench.processes import WorkerFailed
from nodehost.bench.report import machine, machine_line
from nodehost.sqlite.wire import codec

# Measured on this machine kind (3 nodes, 16-byte values); shown without --dqlite.
DQLITE_RECORDED = {
    "sequential": "449 writes/s, mean 2.22 ms (dqlite-benchmark kvwrite, 1 worker)",
    "concurrent": "~450 writes/s at best: with 4 or 32 workers nearly every write fails as busy",
}


def measured(cluster: SqlCluster, run: Any) -> dict[str, Any]:
    """Run a load; add the CPU time the three members spent per operation."""
    window = CpuWindow(cluster.pids)
    figures: dict[str, Any] = run()
    spent = sum(window.seconds().values())
    figures["cpu_us_per_op"] = spent / max(figures["operations"], 1) * 1e6
    return figures


async def wire_load(address: str, clients: int, seconds: float) -> dict[str, Any]:
    """INSERTs from `clients` wire connections (one asyncio process, prepared EXEC)."""
    host, port = address.rsplit(":", 1)
    histogram = Histogram()
    failures = 0
    stop_at = time.monotonic() + seconds

    async def client(number: int) -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection(host, int(port))
        frames = codec.FrameReader()

        async def ask(request: codec.Request) -> codec.Response:
            writer.write(codec.encode_request(request))
            while True:
                frame = frames.next_frame()
                if frame is not None:
                    return codec.decode_response(frame.header, frame.body)
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError("closed")
                frames.feed(data)

        writer.write(codec.encode_handshake())
        await ask(codec.ClientRequest(0))
        await ask(codec.OpenRequest("bench"))
        await ask(
            codec.ExecSqlRequest(
                0, "CREATE TABLE IF NOT EXISTS model (key TEXT PRIMARY KEY, value TEXT)"
            )
        )
        stmt = await ask(codec.PrepareRequest(0, "INSERT INTO model (key, value) VALUES (?, ?)"))
        assert isinstance(stmt, codec.StmtResponse), stmt
        sequence = 0
        while time.monotonic() < stop_at:
            sequence += 1
            began = time.perf_counter()
            answer = await ask(
                codec.ExecRequest(
                    0,
                    stmt.stmt_id,
                    (f"w{number}-{sequence}-{time.monotonic_ns()}", "0123456789abcdef"),
                )
            )
            if isinstance(answer, codec.ResultResponse):
                histogram.record(time.perf_counter() - began)
            else:
                failures += 1
        writer.close()

    began = time.monotonic()
    await asyncio.gather(*(client(n) for n in range(clients)))
    elapsed = time.monotonic() - began
    return summary("insert (wire)", clients, histogram, elapsed, failures)


def summary(
    mode: str, clients: int, histogram: Histogram, elapsed: float, failures: int
) -> dict[str, Any]:
    count = histogram.total
    return {
        "mode": mode,
        "clients": clients,
        "operations": count,
        "per_second": count / elapsed,
        "p50_ms": histogram.percentile_ms(0.5) if count else float("nan"),
        "p99_ms": histogram.percentile_ms(0.99) if count else float("nan"),
        "failures": failures,
    }


def run_dqlite(root: Path, clients: int, seconds: int) -> dict[str, Any] | None:
    """dqlite-benchmark kvwrite on 3 nodes; None when it is not installed or fails."""
    if not dqlite_installed():
        return None
    directory = root / f"dqlite-{clients}"
    directory.mkdir(parents=True)
    try:
        with Workers(directory) as workers:
            figures = dqlite_benchmark(workers, directory, seconds, 16, clients=clients)
    except WorkerFailed as exc:
        print(f"dqlite-benchmark with {clients} workers failed: {exc}")
        return None
    if not figures.histogram.total:
        return None
    return summary("dqlite kvwrite", clients, figures.histogram, figures.seconds, figures.errors)


def show(label: str, figures: dict[str, Any]) -> None:
    cpu = figures.get("cpu_us_per_op")
    print(
        f"  {label:<38} {figures['per_second']:>9,.0f}/s   p50 {figures['p50_ms']:7.2f} ms"
        f"   p99 {figures['p99_ms']:7.2f} ms   failures {figures['failures']}"
        + (f"   CPU {cpu:,.0f} us/op" if cpu is not None else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="per load (default 10)")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (default 64)")
    parser.add_argument("--rtt", type=int, default=50, help="the members' tick in ms (default 50)")
    parser.add_argument(
        "--dqlite", action="store_true", help="run dqlite-benchmark beside (if installed)"
    )
    parser.add_argument(
        "--wire", action="store_true", help="also load the leader over the wire protocol"
    )
    parser.add_argument("--dir", default="", help="data directory (default: a temporary one)")
    args = parser.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="bench-sql-"))
    root.mkdir(parents=True, exist_ok=True)
    disk = fsync_rate(str(root), 2.0)
    print(f"bench_sql: 3 members, fsync on, {args.seconds:.0f} s per load, data in {root}")
    print(machine_line(machine()))
    results: dict[str, dict[str, Any]] = {}
    with SqlCluster(root / "members", rtt=args.rtt) as cluster:
        leader = cluster.leader()
        timeout = args.seconds + 120

        def load(command: dict[str, Any]) -> Any:
            return lambda: leader.ask(
                {"cmd": "bench", "seconds": args.seconds, **command}, timeout
            )["bench"]

        results["sequential"] = measured(cluster, load({"clients": 1}))
        results["concurrent"] = measured(cluster, load({"clients": args.clients}))
        results["select"] = measured(cluster, load({"clients": args.clients, "mode": "select"}))
        if args.wire:
            results["wire"] = measured(
                cluster, lambda: asyncio.run(wire_load(leader.address, args.clients, args.seconds))
            )
    dqlite: dict[str, dict[str, Any] | None] = {}
    if args.dqlite:
        dqlite["sequential"] = run_dqlite(root, 1, int(args.seconds))
        dqlite["concurrent"] = run_dqlite(root, args.clients, int(args.seconds))

    print("\nnodehost.sqlite (clients in the leader's process, App.open, autocommit INSERTs;")
    print("CPU: what the three member processes spent per operation, clients included)")
    show("sequential INSERT, 1 client", results["sequential"])
    show(f"INSERT transactions, {args.clients} clients", results["concurrent"])
    show(f"linearizable point SELECT, {args.clients} clients", results["select"])
    if "wire" in results:
        show(f"INSERT over the wire, {args.clients} conns", results["wire"])
    print("\ndqlite (go-dqlite 1.11, same machine)")
    for key, label in (
        ("sequential", "kvwrite, 1 worker"),
        ("concurrent", f"kvwrite, {args.clients} workers"),
    ):
        figures = dqlite.get(key)
        if figures is not None:
            show(label, figures)
        else:
            print(f"  {label:<38} {DQLITE_RECORDED[key]}  (recorded; run with --dqlite to measure)")
    print("\nraw ceilings")
    print(
        f"  write + fdatasync, one writer (measured now): {disk.per_second:,.0f}/s, p50 {disk.p50_ms:.3f} ms"
    )
    for line in beside("grpc_pingpong", "rocksdict_batch", "etcd_sequential", "etcd_256"):
        print(f"{line}  (recorded on this machine kind)")
    sequential = results["sequential"]["p50_ms"]
    concurrent = results["concurrent"]["per_second"]
    best = max([f["per_second"] for f in dqlite.values() if f is not None] or [449.0])
    print("\ngoals")
    print(
        f"  sequential p50 {sequential:.2f} ms vs dqlite's 2.2 ms: {'met' if sequential <= 2.2 else 'missed'}"
    )
    print(
        f"  {concurrent:,.0f} transactions/s = {concurrent / best:.1f}x dqlite's best ({best:,.0f}/s), goal 10x: "
        f"{'met' if concurrent >= 10 * best else 'missed'}"
    )
    if not args.dir:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
