"""example-benchmark: the reproducible throughput and latency benchmark (docs/performance.md).

    example-benchmark                    # 3 processes, 48 shards, writes, fsync on
    example-benchmark --read-ratio 1     # linearizable reads only
    example-benchmark --sequential       # one client, one shard: latency
    example-benchmark --json             # one JSON object

Phases: measure the disk's raw sync rate in the data directory; start the workers and
wait until every shard has a leader; start the clients; after the warm-up, open the
measured window; close it after the duration; collect; stop every worker by PID.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from examples.benchmark import report
from examples.benchmark.cluster import Cluster, WorkerFailed
from examples.benchmark.profile import Profiler
from examples.benchmark.settings import parse
from examples.benchmark.worker import WorkerConfig
from nodehost.bench import CpuWindow, Histogram, free_ports
from nodehost.bench.disk import fsync_rate, rocksdict_put_rate
from nodehost.bench.report import latencies, machine

READY_TIMEOUT = 180.0
BALANCE_TIMEOUT = 20.0


def worker_configs(args: argparse.Namespace, directory: Path) -> list[WorkerConfig]:
    addresses = [f"127.0.0.1:{port}" for port in free_ports(args.processes)]
    return [
        WorkerConfig(
            index=i,
            addresses=addresses,
            directory=str(directory),
            shards=args.shards,
            replicas=min(3, args.processes),
            payload=args.payload,
            read_ratio=args.read_ratio,
            sm=args.sm,
            fsync=args.fsync,
            metrics=args.metrics,
            switch_interval_ms=args.switch_interval_ms,
            rtt_ms=args.rtt_ms,
            timeout=args.timeout,
            snapshot_entries=args.snapshot_entries,
            sequential=args.sequential,
            transport=args.transport,
        )
        for i in range(args.processes)
    ]


def leaders_by_process(cluster: Cluster, processes: int) -> list[int]:
    cluster.send({"cmd": "leaders"})
    leaders: dict[str, int] = {}
    for event in cluster.collect("leaders", 30.0).values():
        for shard, leader in event["leaders"].items():
            if leader:
                leaders[shard] = leader
    counts = [0] * processes
    for leader in leaders.values():
        counts[leader - 1] += 1
    return counts


def balance_leaders(cluster: Cluster, args: argparse.Namespace) -> list[int]:
    """Spread the leaders evenly (each shard's first replica leads), bounded in time;
    returns the leaders per process afterwards. Elections put them where chance does."""
    share = -(-args.shards // args.processes)
    deadline = time.monotonic() + BALANCE_TIMEOUT
    while True:
        counts = leaders_by_process(cluster, args.processes)
        if max(counts) <= share or time.monotonic() > deadline:
            return counts
        cluster.send({"cmd": "balance"})
        cluster.collect("balanced", 30.0)
        time.sleep(0.5)


class Progress:
    """The live line: one line rewritten with \\r, only on a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.shown = False

    def show(self, cluster: Cluster, phase: str, elapsed: float, total: float) -> None:
        if not self.enabled:
            return
        events = list(cluster.progress.values())
        proposals = sum(e["proposals"] for e in events)
        reads = sum(e["reads"] for e in events)
        errors = sum(e["errors"] for e in events)
        rate = ""
        if phase == "measuring" and elapsed > 0:
            rate = f"  {proposals / elapsed:,.0f} proposals/s  {reads / elapsed:,.0f} reads/s"
        line = f"\r{phase} {elapsed:5.1f}/{total:g}s{rate}  errors {errors}"
        sys.stdout.write(line.ljust(78))
        sys.stdout.flush()
        self.shown = True

    def wait(self, cluster: Cluster, phase: str, seconds: float) -> None:
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            self.show(cluster, phase, elapsed, seconds)
            time.sleep(min(0.5, seconds - elapsed))

    def clear(self) -> None:
        if self.shown:
            sys.stdout.write("\r" + " " * 78 + "\r")
            sys.stdout.flush()
            self.shown = False


def measure_disk(directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    if args.probe_seconds <= 0:
        return {}
    return {
        "fsync": fsync_rate(str(directory), args.probe_seconds, args.payload).to_json(),
        "rocksdict_sync_put": rocksdict_put_rate(
            str(directory), args.probe_seconds / 2, args.payload
        ).to_json(),
    }


def run(args: argparse.Namespace, directory: Path, progress: Progress) -> dict[str, Any]:
    host = machine()
    disk = measure_disk(directory, args)
    configs = worker_configs(args, directory)
    cluster = Cluster(directory)
    try:
        cluster.start(configs)
        if progress.enabled:
            sys.stdout.write(f"starting {args.processes} processes, {args.shards} shards ...")
            sys.stdout.flush()
            progress.shown = True
        cluster.collect("ready", READY_TIMEOUT)
        if args.balance_leaders and not args.sequential:
            leaders_start = balance_leaders(cluster, args)
        else:
            leaders_start = leaders_by_process(cluster, args.processes)
        clients = [args.clients] * args.processes
        if args.sequential:  # the one client runs beside the shard's leader
            clients = [1 if n else 0 for n in leaders_start]
        for index, count in enumerate(clients):
            if count:
                cluster.send({"cmd": "start", "clients": count}, only=[index])
        progress.wait(cluster, "warming up", args.warmup)
        cluster.send({"cmd": "measure"})
        cpu = CpuWindow(cluster.pids)
        profiler = None
        if args.profile:
            profiler = Profiler(Path(args.profile), cluster.pids, args.duration)
        progress.wait(cluster, "measuring", args.duration)
        cluster.send({"cmd": "stop"})
        cpu_percent = cpu.stop()
        profiles = profiler.finish() if profiler is not None else None
        reports = cluster.collect("report", args.timeout + 30.0)
        leaders_end = leaders_by_process(cluster, args.processes)
    finally:
        progress.clear()
        cluster.stop()
    result = summarize(
        args,
        host,
        disk,
        cluster.pids,
        reports,
        leaders_start,
        leaders_end,
        [cpu_percent[pid] for pid in cluster.pids],
    )
    if profiles is not None:
        result["profile"] = profiles
    return result


def summarize(
    args: argparse.Namespace,
    machine: dict[str, Any],
    disk: dict[str, Any],
    pids: list[int],
    reports: dict[int, dict[str, Any]],
    leaders_start: list[int],
    leaders_end: list[int],
    cpu_percent: list[float],
) -> dict[str, Any]:
    proposals, reads = Histogram(), Histogram()
    proposal_rate = read_rate = 0.0
    errors: dict[str, int] = {}
    elections: set[tuple[int, int]] = set()
    per_process = []
    for index in range(len(pids)):
        r = reports[index]
        p, q = Histogram.from_json(r["proposals"]), Histogram.from_json(r["reads"])
        proposals.merge(p)
        reads.merge(q)
        proposal_rate += p.total / r["seconds"]
        read_rate += q.total / r["seconds"]
        for name, count in r["errors"].items():
            errors[name] = errors.get(name, 0) + count
        elections.update((s, t) for s, t in r["elections"])
        counters, seconds = r["counters"], r["seconds"]
        engine = {}
        if counters:
            writes = counters.get("nodehost_logdb_save_seconds_count", 0.0)
            engine = {
                "log_writes_per_second": writes / seconds,
                "log_write_ms": counters.get("nodehost_logdb_save_seconds_sum", 0.0)
                / max(writes, 1.0)
                * 1000,
                "batches_sent_per_second": counters.get(
                    "nodehost_transport_batches_sent_total", 0.0
                )
                / seconds,
                "messages_sent_per_second": counters.get(
                    "nodehost_transport_messages_sent_total", 0.0
                )
                / seconds,
            }
        per_process.append(
            {
                "process": index + 1,
                "pid": pids[index],
                "leaders_at_start": leaders_start[index],
                "leaders_at_end": leaders_end[index],
                "proposals_per_second": p.total / r["seconds"],
                "reads_per_second": q.total / r["seconds"],
                "cpu_percent": cpu_percent[index],
                "peak_rss_mb": r["peak_rss_bytes"] / 2**20,
                **engine,
            }
        )
    settings = {k: v for k, v in vars(args).items() if k != "json"}
    result = {
        "settings": settings,
        "machine": machine,
        "disk": disk,
        "seconds": args.duration,
        "proposals_per_second": proposal_rate,
        "reads_per_second": read_rate,
        "ops_per_second": proposal_rate + read_rate,
        "proposal_latency_ms": latencies(proposals),
        "read_latency_ms": latencies(reads),
        "elections": len(elections),
        "errors": errors,
        "processes": per_process,
    }
    result["targets"] = report.targets(args, result)
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.compare_etcd or args.compare_dqlite:
        from examples.benchmark.compare import run as comparison

        comparison.main(args)
        return
    progress = Progress(sys.stdout.isatty() and not args.json)
    temporary = not args.dir
    directory = Path(tempfile.mkdtemp(prefix="nodehost-bench-") if temporary else args.dir)
    try:
        if not temporary:
            directory.mkdir(parents=True, exist_ok=True)
            if any(directory.iterdir()):
                print(f"example-benchmark: --dir {directory} is not empty", file=sys.stderr)
                raise SystemExit(2)
        result = run(args, directory, progress)
    except WorkerFailed as exc:
        print(f"example-benchmark: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("\nexample-benchmark: interrupted; every worker was stopped", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        if temporary:
            shutil.rmtree(directory, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        print(report.text(result))


if __name__ == "__main__":
    main()
