"""Benchmark: a local kvstore cluster under HTTP load, beside the machine's ceilings.

    uv run python -m examples.kvstore.bench [--nodes 3] [--store memory|disk]
        [--concurrency 1,16,64] [--seconds 5] [--value-bytes 16]

Starts the nodes as real processes on 127.0.0.1 (ports picked free, data in a temporary
directory, all stopped by PID at the end), then for each concurrency level runs PUTs,
linearizable GETs and stale GETs spread over every node, then the same PUTs against a
bare aiohttp server (the HTTP stack's own ceiling here), and prints throughput and
latency. The load generator shares the machine's cores with the nodes, so read the
figures as a floor. The ceilings printed beside them come from
docs/limits.md (etcd 3.4 and PySyncObj on the same kind of machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from nodehost.bench import Histogram, Workers, free_port, free_ports
from nodehost.bench.report import machine, machine_line

# The same HTTP stack with nothing behind it: what the HTTP layer alone allows here.
_BARE_SERVER = """
import sys
from aiohttp import web
async def answer(request):
    await request.read()
    return web.Response(body=b"null", content_type="application/json")
app = web.Application()
app.router.add_route("*", "/{tail:.*}", answer)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""
CEILINGS = {
    "PUT": "etcd 3.4, 3 members: 829/s at 1 outstanding (p50 1.13 ms); 12.4k/s at 256 "
    "(p50 19 ms); PySyncObj: 88/s at 1, ~13-15k/s at 256",
    "GET": "etcd 3.4 linearizable reads: 19.8k/s at 1,024 outstanding (p50 50 ms)",
    "GET stale": "no Raft round trip: bounded by the bare HTTP line (same client, empty server)",
}


@dataclass
class Figures:
    operations: int
    seconds: float
    latencies: Histogram

    def line(self, label: str, concurrency: int) -> str:
        lat = self.latencies
        return (
            f"{label:<10} c={concurrency:<4} {self.operations / self.seconds:>9,.0f} ops/s   "
            f"p50 {lat.percentile_ms(0.5):7.2f} ms   p99 {lat.percentile_ms(0.99):7.2f} ms"
        )


def start_cluster(workers: Workers, nodes: int, store: str) -> list[str]:
    """Start `nodes` kvstore processes under `workers`; their HTTP URLs, node 1 first."""
    root = workers.directory
    flat = free_ports(2 * nodes)
    ports = [(flat[2 * i], flat[2 * i + 1]) for i in range(nodes)]
    peers = ",".join(f"{i + 1}@127.0.0.1:{raft}" for i, (_, raft) in enumerate(ports))
    urls = []
    for i, (http, raft) in enumerate(ports):
        node_env = {
            **os.environ,
            "NODE_ID": str(i + 1),
            "HTTP_ADDR": f"127.0.0.1:{http}",
            "RAFT_ADDR": f"127.0.0.1:{raft}",
            "PEERS": peers,
            "STORE": store,
            "STATE_DIR": str(root / f"node{i + 1}"),
            "LOG_LEVEL": "warning",
        }
        workers.start(f"node{i + 1}", [sys.executable, "-m", "examples.kvstore"], env=node_env)
        urls.append(f"http://127.0.0.1:{http}")
    return urls


def start_bare_server(workers: Workers) -> str:
    port = free_port()
    workers.start("bare", [sys.executable, "-c", _BARE_SERVER, str(port)])
    return f"http://127.0.0.1:{port}"


async def wait_ready(http: aiohttp.ClientSession, urls: list[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            leaders = set()
            for url in urls:
                async with http.get(f"{url}/cluster") as r:
                    leaders.add((await r.json())["leader"])
            if len(leaders) == 1 and 0 not in leaders:
                return
        except (aiohttp.ClientError, OSError, ValueError):
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the cluster did not elect a leader in {timeout:g}s")


async def wait_bare(http: aiohttp.ClientSession, url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            async with http.get(url) as r:
                await r.read()
                return
        except (aiohttp.ClientError, OSError):
            await asyncio.sleep(0.2)
    raise RuntimeError("the bare HTTP server did not start")


async def load(
    http: aiohttp.ClientSession,
    concurrency: int,
    seconds: float,
    request: Callable[[int, int], tuple[str, str, bytes | None]],
) -> Figures:
    latencies = Histogram()
    errors = 0
    stop_at = time.monotonic() + seconds

    async def worker(w: int) -> None:
        nonlocal errors
        i = 0
        while time.monotonic() < stop_at:
            method, url, body = request(w, i)
            started = time.perf_counter()
            async with http.request(method, url, data=body) as r:
                await r.read()
                if r.status >= 500:
                    errors += 1
            latencies.record(time.perf_counter() - started)
            i += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    if errors:
        print(f"  ({errors} requests answered 5xx)")
    return Figures(latencies.total, time.monotonic() - started, latencies)


async def run(args: argparse.Namespace) -> None:
    levels = [int(c) for c in args.concurrency.split(",")]
    value = json.dumps("v" * max(0, args.value_bytes - 2)).encode()
    with tempfile.TemporaryDirectory(prefix="kvbench-") as tmp, Workers(Path(tmp)) as workers:
        urls = start_cluster(workers, args.nodes, args.store)
        bare_url = start_bare_server(workers)
        connector = aiohttp.TCPConnector(limit=max(levels) * len(urls))
        async with aiohttp.ClientSession(connector=connector) as http:
            await wait_ready(http, urls)
            await wait_bare(http, bare_url)
            print(
                f"kvstore bench: {args.nodes} nodes, STORE={args.store}, "
                f"{len(value)}-byte values, {args.seconds:g}s per run, {os.cpu_count()} cores"
            )
            print(machine_line(machine()))
            for c in levels:

                def put(w: int, i: int) -> tuple[str, str, bytes | None]:
                    return "PUT", f"{urls[w % len(urls)]}/key/k{w}-{i % 1000}", value

                def get(w: int, i: int) -> tuple[str, str, bytes | None]:
                    return "GET", f"{urls[w % len(urls)]}/key/k{w}-{i % 1000}", None

                def stale(w: int, i: int) -> tuple[str, str, bytes | None]:
                    return "GET", f"{urls[w % len(urls)]}/key/k{w}-{i % 1000}?stale=1", None

                def empty(w: int, i: int) -> tuple[str, str, bytes | None]:
                    return "PUT", f"{bare_url}/key/k{w}-{i % 1000}", value

                for label, make in (
                    ("PUT", put),
                    ("GET", get),
                    ("GET stale", stale),
                    ("bare HTTP", empty),
                ):
                    print(Figures.line(await load(http, c, args.seconds, make), label, c))
            print("ceilings on this kind of machine:")
            for label, text in CEILINGS.items():
                print(f"  {label:<10} {text}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.kvstore.bench", description=__doc__)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--store", choices=["memory", "disk"], default="memory")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--value-bytes", type=int, default=16)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
