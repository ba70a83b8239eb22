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
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from examples.benchmark.disk import fsync_rate  # noqa: E402
from nodehost.sqlite.wire import codec  # noqa: E402
from tests.sqlite.processes import Member  # noqa: E402
from tests.sqlite.support import free_addresses  # noqa: E402

# Measured on this machine kind (3 nodes, 16-byte values); shown without --dqlite.
DQLITE_RECORDED = {
    "sequential": "449 writes/s, mean 2.22 ms (dqlite-benchmark kvwrite, 1 worker)",
    "concurrent": "~450 writes/s at best: with 4 or 32 workers nearly every write fails as busy",
}
RAW_CEILINGS = [
    "grpc.aio bidi stream ping-pong (loopback): p50 0.33-0.36 ms",
    "RocksDB WriteBatch of 64 entries, sync: 158 k entries/s",
    "etcd 3.4, 3 members: 1 put outstanding p50 1.13 ms; best 15.5 k puts/s",
]


def start_cluster(root: Path, rtt: int) -> list[Member]:
    addresses = free_addresses(3)
    members = [Member(root / f"m{n}", a, addresses, rtt) for n, a in enumerate(addresses)]
    for member in members:
        member.launch()
    for member in members:
        member.wait_ready(120)
    return members


def cpu_seconds(members: list[Member]) -> float:
    total = 0.0
    for member in members:
        if member.process is not None and member.process.poll() is None:
            times = psutil.Process(member.process.pid).cpu_times()
            total += times.user + times.system
    return total


def measured(members: list[Member], run: Any) -> dict[str, Any]:
    """Run a load; add the CPU time the three members spent per operation."""
    before = cpu_seconds(members)
    figures: dict[str, Any] = run()
    spent = cpu_seconds(members) - before
    figures["cpu_us_per_op"] = spent / max(figures["operations"], 1) * 1e6
    return figures


def leader_of(members: list[Member]) -> Member:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        leader_id = members[0].ask({"cmd": "leader"}).get("leader", 0)
        for member in members:
            if member.id == leader_id:
                return member
        time.sleep(0.1)
    raise SystemExit("no leader within 60 s")


async def wire_load(address: str, clients: int, seconds: float) -> dict[str, Any]:
    """INSERTs from `clients` wire connections (one asyncio process, prepared EXEC)."""
    host, port = address.rsplit(":", 1)
    latencies: list[float] = []
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
                latencies.append(time.perf_counter() - began)
            else:
                failures += 1
        writer.close()

    began = time.monotonic()
    await asyncio.gather(*(client(n) for n in range(clients)))
    elapsed = time.monotonic() - began
    return summary("insert (wire)", clients, latencies, elapsed, failures)


def summary(
    mode: str, clients: int, latencies: list[float], elapsed: float, failures: int
) -> dict[str, Any]:
    every = sorted(latencies)
    count = len(every)

    def quantile(q: float) -> float:
        return every[min(int(q * count), count - 1)] * 1000 if count else float("nan")

    return {
        "mode": mode,
        "clients": clients,
        "operations": count,
        "per_second": count / elapsed,
        "p50_ms": quantile(0.5),
        "p99_ms": quantile(0.99),
        "failures": failures,
    }


def run_dqlite(root: Path, workers: int, seconds: int) -> dict[str, Any] | None:
    """dqlite-benchmark kvwrite on 3 nodes; None when it is not installed or fails."""
    binary = shutil.which("dqlite-benchmark")
    if binary is None:
        return None
    addresses = free_addresses(3)
    directory = root / f"dqlite-{workers}"
    common = ["--value-size", "16", "--duration", str(seconds), "-D", str(directory)]
    processes = [
        subprocess.Popen(
            [
                binary,
                "-d",
                addresses[0],
                "--driver",
                "--cluster",
                ",".join(addresses),
                "--workers",
                str(workers),
                *common,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    for address in addresses[1:]:
        processes.append(
            subprocess.Popen(
                [binary, "-d", address, "--join", addresses[0], *common],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        processes[0].wait(seconds + 120)
    except subprocess.TimeoutExpired:
        return None
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    latencies: list[float] = []
    errors = 0
    for path in (directory / addresses[0]).glob("results/*"):
        lines = path.read_text().splitlines()
        for line in lines:
            if line.startswith("n_err "):
                errors += int(line.split()[1])
        for line in lines[6:]:
            parts = line.split()
            if len(parts) == 2:
                latencies.append(float(parts[1]) / 1000)
    if not latencies:
        return None
    return summary("dqlite kvwrite", workers, latencies, seconds, errors)


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
    print(
        f"load average before the run: {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores"
    )
    members = start_cluster(root, args.rtt)
    results: dict[str, dict[str, Any]] = {}
    try:
        leader = leader_of(members)
        timeout = args.seconds + 120

        def load(command: dict[str, Any]) -> Any:
            return lambda: leader.ask(
                {"cmd": "bench", "seconds": args.seconds, **command}, timeout
            )["bench"]

        results["sequential"] = measured(members, load({"clients": 1}))
        results["concurrent"] = measured(members, load({"clients": args.clients}))
        results["select"] = measured(members, load({"clients": args.clients, "mode": "select"}))
        if args.wire:
            results["wire"] = measured(
                members, lambda: asyncio.run(wire_load(leader.address, args.clients, args.seconds))
            )
    finally:
        for member in members:
            member.stop()
            member.kill()
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
    for line in RAW_CEILINGS:
        print(f"  {line}  (recorded on this machine kind)")
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
