"""The comparison's rounds: the library and its peers alternately, medians, ratios, report.

A round runs every scenario once for each system, the library first in even rounds
and the peer first in odd ones; each run starts fresh processes and stops them by PID.
A figure is the median over the rounds (with two rounds, the mean of the two), and
each run's raw figures are kept in the JSON output. Memory (peak RSS) and CPU of every
process of a run are reported beside its figure, load generators included.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from examples.benchmark.compare import dqlite, etcd_cluster, etcd_go
from examples.benchmark.compare.etcd_load import LoadConfig
from examples.benchmark.settings import parse as parse_benchmark
from examples.kvstore import bench as kvstore_bench
from nodehost.bench import Histogram, Watch, Workers
from nodehost.bench.ceilings import beside
from nodehost.bench.processes import WorkerFailed
from nodehost.bench.report import (
    latency_ratio,
    machine,
    machine_line,
    rate_ratio,
    ratio_text,
    table,
)

Figure = dict[str, Any]


# ------------------------------------------------------------------------- the library


def ours(args: argparse.Namespace, directory: Path, mode: str) -> Figure:
    """One example-benchmark run in this process: `writes`, `sequential` or `reads`."""
    from examples.benchmark.main import Progress
    from examples.benchmark.main import run as run_benchmark

    per_process = max(1, args.outstanding // args.processes)
    argv = [
        *("-n", str(args.processes), "-s", str(args.shards), "-p", str(args.payload)),
        *("-d", str(args.duration), "-w", str(args.warmup), "--probe-seconds", "0"),
        *("--rtt-ms", str(args.rtt_ms), "--timeout", str(args.timeout)),
        *("--transport", args.transport),
    ]
    if mode == "sequential":
        argv.append("--sequential")
    else:
        argv += ["-c", str(per_process)]
        if mode == "reads":
            argv += ["--read-ratio", "1"]
    run_dir = directory / f"nodehost-{mode}"
    run_dir.mkdir(parents=True)
    result = run_benchmark(parse_benchmark(argv), run_dir, Progress(False))
    rate = result["reads_per_second" if mode == "reads" else "proposals_per_second"]
    latency = result["read_latency_ms" if mode == "reads" else "proposal_latency_ms"]
    return {
        "rate": rate,
        "p50_ms": latency["p50"],
        "p99_ms": latency["p99"],
        "errors": sum(result["errors"].values()),
        "processes": [
            {
                "role": "nodehost",
                "pid": p["pid"],
                "cpu_percent": p["cpu_percent"],
                "peak_rss_mib": p["peak_rss_mb"],
            }
            for p in result["processes"]
        ],
    }


# ------------------------------------------------------------------------------- etcd


PYTHON_LOAD = (
    "Python grpc.aio, pre-encoded requests (etcd_load.py): it spends more CPU per request "
    "than etcd's Go client, so etcd's figures are a floor"
)
GO_LOAD = "etcd's Go client (clientv3 from Debian's golang-etcd-server-dev, etcdload/main.go)"


def etcd_load_command(args: argparse.Namespace) -> tuple[list[str], str]:
    """The load generator's command (the JSON config is appended) and its description."""
    python = [sys.executable, "-m", "examples.benchmark.compare.etcd_load"]
    if args.etcd_load == "python":
        return python, PYTHON_LOAD
    binary, why = etcd_go.go_loader()
    if binary is not None:
        return [binary], GO_LOAD
    if args.etcd_load == "go":
        raise FileNotFoundError(f"--etcd-load go: {why}")
    return python, f"{PYTHON_LOAD} (no Go generator: {why})"


def etcd(args: argparse.Namespace, directory: Path, mode: str) -> Figure:
    run_dir = directory / f"etcd-{mode}"
    run_dir.mkdir(parents=True)
    with Workers(run_dir) as workers:
        cluster = etcd_cluster.EtcdCluster(workers, run_dir)
        leader = cluster.wait_ready()
        if mode == "sequential":
            loaders, outstanding, endpoints = 1, [1], [leader.client]
        else:
            loaders = max(1, min(args.load_processes, args.outstanding))
            share, extra = divmod(args.outstanding, loaders)
            outstanding = [share + (1 if i < extra else 0) for i in range(loaders)]
            endpoints = cluster.endpoints
        children = []
        for index, count in enumerate(outstanding):
            config = LoadConfig(
                endpoints=endpoints,
                mode="range" if mode == "reads" else "put",
                outstanding=count,
                warmup=args.warmup,
                duration=args.duration,
                payload=args.payload,
                seed=index + 1,
                request_timeout=args.timeout,
            )
            children.append(
                workers.start(
                    f"etcd-load{index + 1}",
                    [*args.etcd_load_command, json.dumps(config.__dict__)],
                    stdout_pipe=True,
                )
            )
        watch = Watch(cluster.pids)
        reports = []
        for index, child in enumerate(children):
            try:
                out, _ = child.communicate(timeout=args.warmup + args.duration + 60)
            except subprocess.TimeoutExpired:
                raise WorkerFailed(f"etcd load generator {index + 1} did not finish") from None
            if child.returncode:
                raise WorkerFailed(workers.failure(len(cluster.pids) + index, "it failed"))
            reports.append(json.loads(out.decode().strip().splitlines()[-1]))
        members = watch.stop()
    histogram = Histogram()
    errors = 0
    rate = 0.0
    for report in reports:
        histogram.merge(Histogram.from_json(report["histogram"]))
        errors += sum(report["errors"].values())
        rate += report["count"] / report["seconds"]
    processes = [
        {
            "role": "etcd leader" if pid == leader.pid else "etcd",
            "pid": pid,
            "cpu_percent": cpu,
            "peak_rss_mib": peak,
        }
        for pid, (cpu, peak) in members.items()
    ] + [
        {
            "role": "load (Go)" if args.etcd_load_command[0] != sys.executable else "load (Python)",
            "pid": child.pid,
            "cpu_percent": 100.0 * r["cpu_seconds"] / r["seconds"],
            "peak_rss_mib": r["peak_rss_mib"],
        }
        for r, child in zip(reports, children, strict=True)
    ]
    return {
        "rate": rate,
        "p50_ms": histogram.percentile_ms(0.5),
        "p99_ms": histogram.percentile_ms(0.99),
        "errors": errors,
        "processes": processes,
    }


# ----------------------------------------------------------------------------- dqlite


def _http_figure(histogram: Histogram, seconds: float) -> Figure:
    return {
        "rate": histogram.total / seconds,
        "p50_ms": histogram.percentile_ms(0.5),
        "p99_ms": histogram.percentile_ms(0.99),
        "errors": 0,
    }


def kvstore_http(args: argparse.Namespace, directory: Path) -> dict[str, Figure]:
    """Sequential PUT and GET through the leader and a follower of example-kvstore."""
    import asyncio

    import aiohttp

    run_dir = directory / "kvstore"
    run_dir.mkdir(parents=True)
    value = json.dumps("v" * max(0, args.payload - 2)).encode()
    with Workers(run_dir) as workers:
        urls = kvstore_bench.start_cluster(workers, 3, "memory")
        watch = Watch(workers.pids)

        async def prepare() -> tuple[str, str]:
            async with aiohttp.ClientSession() as http:
                await kvstore_bench.wait_ready(http, urls)
                async with http.get(f"{urls[0]}/cluster") as answer:
                    leader = int((await answer.json())["leader"])
            return urls[leader - 1], urls[leader % len(urls)]

        leader_url, follower_url = asyncio.run(prepare())
        figures = {}
        for label, url in (("leader", leader_url), ("follower", follower_url)):
            for method in ("PUT", "GET"):
                histogram = dqlite.sequential(
                    f"{url}/key/k{{i}}" if method == "PUT" else f"{url}/key/k0",
                    method,
                    value if method == "PUT" else None,
                    args.warmup,
                    args.duration,
                )
                figures[f"{method} via {label}"] = _http_figure(histogram, args.duration)
        processes = [
            {"role": "kvstore", "pid": pid, "cpu_percent": cpu, "peak_rss_mib": peak}
            for pid, (cpu, peak) in watch.stop().items()
        ]
    for figure in figures.values():
        figure["processes"] = processes
    return figures


def dqlite_http(args: argparse.Namespace, directory: Path) -> dict[str, Figure]:
    run_dir = directory / "dqlite-demo"
    run_dir.mkdir(parents=True)
    value = b"v" * args.payload
    with Workers(run_dir) as workers:
        demo = dqlite.DqliteDemo(workers, run_dir)
        leader = demo.leader()
        follower = next(n for n in demo.nodes if n is not leader)
        watch = Watch(demo.pids)
        figures = {}
        for label, node in (("leader", leader), ("follower", follower)):
            for method in ("PUT", "GET"):
                # The PUT pass comes first, so the key read exists.
                histogram = dqlite.sequential(
                    f"http://{node.api}/k{{i}}" if method == "PUT" else f"http://{node.api}/k0",
                    method,
                    value if method == "PUT" else None,
                    args.warmup,
                    args.duration,
                )
                figures[f"{method} via {label}"] = _http_figure(histogram, args.duration)
        processes = [
            {
                "role": "dqlite-demo leader" if pid == leader.pid else "dqlite-demo",
                "pid": pid,
                "cpu_percent": cpu,
                "peak_rss_mib": peak,
            }
            for pid, (cpu, peak) in watch.stop().items()
        ]
    for figure in figures.values():
        figure["processes"] = processes
    return figures


def dqlite_writer(args: argparse.Namespace, directory: Path) -> Figure:
    run_dir = directory / "dqlite-benchmark"
    run_dir.mkdir(parents=True)
    with Workers(run_dir) as workers:
        seconds = max(1, round(args.duration))
        figures = dqlite.dqlite_benchmark(workers, run_dir, seconds, args.payload)
    return {
        "rate": figures.writes / figures.seconds,
        "p50_ms": figures.histogram.percentile_ms(0.5),
        "p99_ms": figures.histogram.percentile_ms(0.99),
        "errors": figures.errors,
        # CPU over the whole run, the cluster's start and the driver's wait included.
        "processes": [
            {
                "role": "dqlite-benchmark driver" if i == 0 else "dqlite-benchmark",
                "pid": pid,
                "cpu_percent": cpu,
                "peak_rss_mib": peak,
            }
            for i, (pid, (cpu, peak)) in enumerate(figures.processes.items())
        ],
    }


# ------------------------------------------------------------------------- the rounds


def _median(runs: list[Figure]) -> Figure:
    out: Figure = {"runs": runs}
    for key in ("rate", "p50_ms", "p99_ms"):
        out[key] = statistics.median(r[key] for r in runs)
    out["errors"] = sum(r["errors"] for r in runs)
    # Memory and CPU of the run nearest the median rate, process by process.
    nearest = min(runs, key=lambda r: abs(r["rate"] - out["rate"]))
    out["processes"] = nearest["processes"]
    return out


def compare(args: argparse.Namespace) -> dict[str, Any]:
    if args.compare_etcd and etcd_cluster.etcd_binary() is None:
        raise FileNotFoundError("etcd is not installed (Debian: apt-get install etcd-server)")
    if args.compare_dqlite and not dqlite.dqlite_installed():
        raise FileNotFoundError(
            "dqlite-demo, dqlite-benchmark and dqlite are not all installed "
            "(Debian: apt-get install go-dqlite)"
        )
    host = machine()
    load_description = ""
    if args.compare_etcd:
        args.etcd_load_command, load_description = etcd_load_command(args)
    scenarios: list[tuple[str, Callable[[Path], Figure], Callable[[Path], Figure]]] = []
    if args.compare_etcd:
        for mode in ("writes", "sequential", "reads"):
            scenarios.append(
                (
                    f"etcd {mode}",
                    lambda d, m=mode: ours(args, d, m),  # type: ignore[misc]
                    lambda d, m=mode: etcd(args, d, m),  # type: ignore[misc]
                )
            )
    if args.compare_dqlite:
        scenarios.append(
            (
                "dqlite writer",
                lambda d: ours(args, d, "sequential"),
                lambda d: dqlite_writer(args, d),
            )
        )
    runs: dict[str, dict[str, list[Figure]]] = {}
    http_runs: dict[str, dict[str, list[Figure]]] = {"nodehost": {}, "dqlite": {}}
    for round_number in range(args.rounds):
        for name, run_ours, run_peer in scenarios:
            order = [("nodehost", run_ours), ("peer", run_peer)]
            if round_number % 2:
                order.reverse()
            for side, action in order:
                directory = Path(tempfile.mkdtemp(prefix="nodehost-compare-"))
                try:
                    runs.setdefault(name, {}).setdefault(side, []).append(action(directory))
                finally:
                    shutil.rmtree(directory, ignore_errors=True)
        if args.compare_dqlite:
            order_http = [("nodehost", kvstore_http), ("dqlite", dqlite_http)]
            if round_number % 2:
                order_http.reverse()
            for side, action_http in order_http:
                directory = Path(tempfile.mkdtemp(prefix="nodehost-compare-"))
                try:
                    for label, figure in action_http(args, directory).items():
                        http_runs[side].setdefault(label, []).append(figure)
                finally:
                    shutil.rmtree(directory, ignore_errors=True)
    result: dict[str, Any] = {
        "settings": {k: v for k, v in vars(args).items() if k in _SETTINGS},
        "machine": host,
        "load_generator": load_description,
        "scenarios": {
            name: {side: _median(figures) for side, figures in sides.items()}
            for name, sides in runs.items()
        },
        "http": {
            side: {label: _median(figures) for label, figures in labels.items()}
            for side, labels in http_runs.items()
            if labels
        },
    }
    result["ratios"] = ratios(result)
    return result


_SETTINGS = {
    "processes",
    "shards",
    "payload",
    "duration",
    "warmup",
    "rounds",
    "outstanding",
    "load_processes",
    "rtt_ms",
    "transport",
    "compare_etcd",
    "compare_dqlite",
    "etcd_load",
}


def ratios(result: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, sides in result["scenarios"].items():
        ours_figure, peer = sides["nodehost"], sides["peer"]
        if name.endswith(("sequential", "writer")):
            out[f"{name} p50"] = latency_ratio(ours_figure["p50_ms"], peer["p50_ms"])
        out[f"{name} rate"] = rate_ratio(ours_figure["rate"], peer["rate"])
    http = result["http"]
    if http:
        for label in http["nodehost"]:
            out[f"http {label} p50"] = latency_ratio(
                http["nodehost"][label]["p50_ms"], http["dqlite"][label]["p50_ms"]
            )
    return out


# ------------------------------------------------------------------------------ report


def _rate(figure: Figure) -> str:
    return f"{figure['rate']:,.0f}/s"


def _latency(figure: Figure) -> str:
    return f"p50 {figure['p50_ms']:.2f} ms  p99 {figure['p99_ms']:.2f} ms"


def _memory(figure: Figure) -> str:
    parts = []
    for p in figure["processes"]:
        parts.append(f"{p['role']} {p['peak_rss_mib']:.0f} MiB {p['cpu_percent']:.0f}%")
    per_op = cpu_per_operation_us(figure)
    if per_op is not None:
        parts.append(f"CPU per operation {per_op:,.0f} us")
    return "; ".join(parts)


def cpu_per_operation_us(figure: Figure) -> float | None:
    """CPU time of every process of the run (load generators and clients included) per
    completed request. On a shared machine a system's rate follows the CPU it is given;
    this figure does not."""
    if not figure["rate"]:
        return None
    cpu = sum(float(p["cpu_percent"]) for p in figure["processes"]) / 100.0
    return cpu / float(figure["rate"]) * 1e6


def text(result: dict[str, Any]) -> str:
    s = result["settings"]
    lines = [
        f"example-benchmark --compare: 3 members each on 127.0.0.1, {s['payload']} B values, "
        f"fsync on, {s['outstanding']} requests outstanding in total, "
        f"{s['rounds']} round{'s' if s['rounds'] != 1 else ''} alternating (median), "
        f"{s['warmup']:g}s warm-up, {s['duration']:g}s measured",
        f"  nodehost: {s['processes']} processes, {s['shards']} shards, rtt {s['rtt_ms']} ms, "
        f"{s['transport']} transport",
        f"  {machine_line(result['machine'])}",
    ]
    scenarios = result["scenarios"]
    titles = {
        "etcd writes": f"writes at {s['outstanding']} outstanding",
        "etcd sequential": "one writer, one at a time",
        "etcd reads": f"linearizable reads at {s['outstanding']} outstanding",
        "dqlite writer": "one writer, one at a time",
    }
    ratio = result["ratios"]
    for peer, names in (
        ("etcd 3.4", ["etcd writes", "etcd sequential", "etcd reads"]),
        ("dqlite-benchmark", ["dqlite writer"]),
    ):
        present = [n for n in names if n in scenarios]
        if not present:
            continue
        if peer.startswith("etcd"):
            lines += ["", f"etcd load: {result['load_generator']}"]
        rows = []
        for name in present:
            mine, theirs = scenarios[name]["nodehost"], scenarios[name]["peer"]
            shown = ratio_text(ratio.get(f"{name} rate"))
            if f"{name} p50" in ratio:
                shown += f" (p50 {ratio_text(ratio[f'{name} p50'])})"
            rows.append(
                [
                    titles[name],
                    f"{_rate(mine)}  {_latency(mine)}",
                    f"{_rate(theirs)}  {_latency(theirs)}",
                    shown,
                ]
            )
        lines += ["", *table(["", "nodehost", peer, "ratio"], rows)]
        lines.append("memory (peak RSS) and CPU per process:")
        for name in present:
            lines.append(f"  {titles[name]}")
            lines.append(f"    nodehost: {_memory(scenarios[name]['nodehost'])}")
            lines.append(f"    {peer}: {_memory(scenarios[name]['peer'])}")
            errors = scenarios[name]["nodehost"]["errors"] + scenarios[name]["peer"]["errors"]
            if errors:
                lines.append(f"    errors: {errors} failed requests (never counted as done)")
    http = result["http"]
    if http:
        rows = []
        for label in http["nodehost"]:
            mine, theirs = http["nodehost"][label], http["dqlite"][label]
            rows.append(
                [
                    f"sequential HTTP {label}",
                    _latency(mine),
                    _latency(theirs),
                    f"p50 {ratio_text(ratio.get(f'http {label} p50'))}",
                ]
            )
        lines += ["", *table(["", "example-kvstore", "dqlite-demo", "ratio"], rows)]
        first = next(iter(http["nodehost"]))
        lines.append("memory (peak RSS) and CPU per process:")
        lines.append(f"    example-kvstore: {_memory(http['nodehost'][first])}")
        lines.append(f"    dqlite-demo: {_memory(http['dqlite'][first])}")
    lines += [
        "",
        "ratio: above 1 the library is ahead (rates: ours/theirs; latencies: theirs/ours)",
    ]
    lines += ["raw ceilings of this machine kind (docs/limits.md):"]
    keys = ["fsync", "grpc_pingpong", "grpc_stream", "tcp_pingpong"]
    if "etcd writes" in scenarios:
        keys += ["etcd_sequential", "etcd_256", "etcd_reads"]
    if http:
        keys += ["dqlite_put", "dqlite_get", "dqlite_benchmark"]
    lines += beside(*keys)
    return "\n".join(lines)


def main(args: argparse.Namespace) -> None:
    try:
        result = compare(args)
    except FileNotFoundError as exc:
        print(f"example-benchmark: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except WorkerFailed as exc:
        print(f"example-benchmark: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("\nexample-benchmark: interrupted; every process was stopped", file=sys.stderr)
        raise SystemExit(130) from None
    print(json.dumps(result) if args.json else text(result))
