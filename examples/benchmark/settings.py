"""Command-line settings of example-benchmark; a value that cannot run is an argparse
error (one line, exit code 2) before anything starts."""

from __future__ import annotations

import argparse
from collections.abc import Callable

SM_KINDS = ("regular", "concurrent", "ondisk")


def _bounded(kind: type[int] | type[float], low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a{'n int' if kind is int else ' number'}"
            ) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not in {low:g}..{high:g}")
        return value

    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="example-benchmark",
        description="Start N NodeHost processes on 127.0.0.1, load them with asyncio "
        "clients, and print throughput, latency percentiles, elections, CPU and memory "
        "beside the disk's own sync rate. See docs/performance.md.",
    )
    p.add_argument(
        "--processes",
        "-n",
        type=_bounded(int, 1, 64),
        default=3,
        help="NodeHost processes (default 3)",
    )
    p.add_argument(
        "--shards",
        "-s",
        type=_bounded(int, 1, 100_000),
        default=48,
        help="Raft shards, 3 replicas each (default 48)",
    )
    p.add_argument(
        "--clients",
        "-c",
        type=_bounded(int, 1, 100_000),
        default=256,
        help="concurrent asyncio clients per process (default 256)",
    )
    p.add_argument(
        "--payload",
        "-p",
        type=_bounded(int, 1, 8 * 1024 * 1024),
        default=16,
        help="bytes per proposal (default 16)",
    )
    p.add_argument(
        "--read-ratio",
        "-r",
        type=_bounded(float, 0.0, 1.0),
        default=0.0,
        help="share of linearizable reads, 0..1 (default 0)",
    )
    p.add_argument(
        "--duration",
        "-d",
        type=_bounded(float, 0.1, 86_400),
        default=10.0,
        help="measured seconds (default 10)",
    )
    p.add_argument(
        "--warmup",
        "-w",
        type=_bounded(float, 0.0, 3_600),
        default=2.0,
        help="seconds of load before measuring (default 2)",
    )
    p.add_argument(
        "--sm", choices=SM_KINDS, default="regular", help="state machine kind (default regular)"
    )
    p.add_argument(
        "--fsync",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fsync the log (default on; --no-fsync is for comparison only)",
    )
    p.add_argument(
        "--rtt-ms",
        type=_bounded(int, 1, 60_000),
        default=50,
        help="Raft tick in ms: heartbeat 1 tick, election 10 ticks (default 50: every tick "
        "steps every shard, and shorter ticks cost CPU and, on a loaded machine, elections)",
    )
    p.add_argument(
        "--timeout",
        type=_bounded(float, 0.01, 3_600),
        default=5.0,
        help="seconds before a request times out (default 5)",
    )
    p.add_argument(
        "--snapshot-entries",
        type=_bounded(int, 0, 10**9),
        default=10_000,
        help="entries between snapshots, 0: never (default 10000)",
    )
    p.add_argument(
        "--metrics",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="report each process's LogDB writes (fsyncs) and gRPC batches per second "
        "from the NodeHost's metrics (default on)",
    )
    p.add_argument(
        "--switch-interval-ms",
        type=_bounded(float, 0.0, 1000.0),
        default=0.0,
        help="sys.setswitchinterval in each process, ms; 0 keeps Python's default (5 ms). "
        "A thread woken by IO (the log's fsync) may wait this long for the GIL",
    )
    p.add_argument(
        "--transport",
        choices=("grpc", "tcp"),
        default="grpc",
        help="NodeHostConfig.transport: gRPC streams or length-prefixed TCP frames (default grpc)",
    )
    p.add_argument(
        "--balance-leaders",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="before loading, move leaders so each process leads an equal share (default on)",
    )
    p.add_argument(
        "--sequential",
        action="store_true",
        help="latency mode: one client, one shard, sync_propose one at a time",
    )
    p.add_argument(
        "--dir", default="", help="data directory (default: a temporary one, removed at the end)"
    )
    p.add_argument(
        "--probe-seconds",
        type=_bounded(float, 0.0, 60),
        default=2.0,
        help="seconds of raw fsync and rocksdict measurement in the data directory, 0: skip (default 2)",
    )
    p.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the text report"
    )
    p.add_argument(
        "--profile",
        default="",
        metavar="DIR",
        help="sample every worker with py-spy during the measured window; raw stacks go "
        "to DIR, the report gets the GIL held by each thread and the top functions per process",
    )
    compare = p.add_argument_group(
        "comparison with etcd and dqlite (docs/performance.md)",
        "Run the library and a peer alternately in one run, with the same requests "
        "outstanding, and print both figures, the ratios and each process's memory.",
    )
    compare.add_argument(
        "--compare-etcd",
        action="store_true",
        help="a 3-member etcd cluster (Debian's etcd-server) beside the library: writes "
        "and linearizable reads at --outstanding, and one writer one at a time",
    )
    compare.add_argument(
        "--compare-dqlite",
        action="store_true",
        help="Debian's go-dqlite beside the library: dqlite-demo against example-kvstore "
        "(sequential HTTP PUT and GET through the leader and a follower), "
        "dqlite-benchmark's one writer against one sync_propose writer",
    )
    compare.add_argument(
        "--outstanding",
        type=_bounded(int, 1, 1_000_000),
        default=768,
        help="requests outstanding in total for the many-client figures (default 768: "
        "256 clients in each of 3 processes)",
    )
    compare.add_argument(
        "--rounds",
        type=_bounded(int, 1, 100),
        default=2,
        help="alternating rounds; each figure is the median (default 2)",
    )
    compare.add_argument(
        "--load-processes",
        type=_bounded(int, 1, 64),
        default=2,
        help="etcd load generator processes sharing --outstanding (default 2)",
    )
    compare.add_argument(
        "--etcd-load",
        choices=("auto", "go", "python"),
        default="auto",
        help="etcd's load generator: its own Go client (built once from Debian's "
        "golang-etcd-server-dev with the installed go) or a Python one; auto: Go where "
        "it can be built (default auto)",
    )
    return p


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser()
    args = p.parse_args(argv)
    if args.sequential:
        args.shards = 1
        args.clients = 1
    return args
