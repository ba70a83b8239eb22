"""The etcd load generator: one process, `outstanding` requests in flight, then a report.

    python -m examples.benchmark.compare.etcd_load '{"endpoints": [...], ...}'

Each client coroutine keeps one request outstanding (a Put of a random key from the
key space, or a linearizable Range of one key) on grpc.aio channels spread over the
endpoints, with requests pre-encoded (`etcd_wire`) so the per-request Python is the
gRPC call itself. A request counts if it completes inside the measured window (after
the warm-up); its latency goes into the shared histogram. The last stdout line is one
JSON report. It is a Python client: etcd's own Go `benchmark` tool spends less CPU per
request, so on a 2-core machine the figures for etcd are a floor (the report prints
the generator's CPU beside them).
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import grpc

from examples.benchmark.compare import etcd_wire
from nodehost.bench import Histogram, own_cpu_seconds, own_peak_rss_mib

KEY_SPACE = 100_000
READ_KEY = b"compare-read"


@dataclass
class LoadConfig:
    endpoints: list[str]
    mode: str  # "put" or "range"
    outstanding: int
    warmup: float
    duration: float
    payload: int = 16
    channels_per_endpoint: int = 2
    seed: int = 1
    request_timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.mode not in ("put", "range"):
            raise ValueError(f"mode must be put or range, not {self.mode!r}")
        if self.outstanding < 1 or not self.endpoints or self.duration <= 0:
            raise ValueError("outstanding >= 1, at least one endpoint and a duration > 0")


@dataclass
class LoadReport:
    count: int = 0
    seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    histogram: dict[str, object] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    peak_rss_mib: float = 0.0


async def _load(config: LoadConfig) -> LoadReport:
    rng = random.Random(config.seed)
    value = b"v" * config.payload
    if config.mode == "put":
        requests = [
            etcd_wire.put_request(b"k%08d" % rng.randrange(KEY_SPACE), value) for _ in range(4096)
        ]
        method = etcd_wire.KV_PUT
    else:
        requests = [etcd_wire.range_request(READ_KEY)]
        method = etcd_wire.KV_RANGE
    channels = [
        grpc.aio.insecure_channel(endpoint)
        for endpoint in config.endpoints
        for _ in range(config.channels_per_endpoint)
    ]
    if config.mode == "range":  # the key the reads find
        await channels[0].unary_unary(etcd_wire.KV_PUT)(
            etcd_wire.put_request(READ_KEY, value), timeout=config.request_timeout
        )
    calls = [channel.unary_unary(method) for channel in channels]
    histogram = Histogram()
    report = LoadReport()
    started = time.perf_counter()
    opens = started + config.warmup
    closes = opens + config.duration
    cpu_at_open = [0.0]

    async def client(number: int) -> None:
        call = calls[number % len(calls)]
        i = number
        timeout = config.request_timeout
        while True:
            sent = time.perf_counter()
            if sent >= closes:
                return
            try:
                await call(requests[i % len(requests)], timeout=timeout)
            except grpc.aio.AioRpcError as exc:
                name = exc.code().name
                report.errors[name] = report.errors.get(name, 0) + 1
                continue
            finally:
                i += len(calls)
            done = time.perf_counter()
            if opens <= done < closes:
                histogram.record(done - sent)

    async def open_window() -> None:
        await asyncio.sleep(config.warmup)
        cpu_at_open[0] = own_cpu_seconds()

    await asyncio.gather(open_window(), *(client(n) for n in range(config.outstanding)))
    report.cpu_seconds = own_cpu_seconds() - cpu_at_open[0]
    for channel in channels:
        await channel.close()
    report.count = histogram.total
    report.seconds = config.duration
    report.histogram = histogram.to_json()
    report.peak_rss_mib = own_peak_rss_mib()
    return report


def run(config: LoadConfig) -> LoadReport:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_load(config))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_load(config))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m examples.benchmark.compare.etcd_load '<json config>'")
    try:
        config = LoadConfig(**json.loads(args[0]))
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"etcd_load: bad config: {exc}") from None
    report: dict[str, Any] = asdict(run(config))
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
