"""One benchmark process: a NodeHost with its replicas and its clients, driven over a pipe.

    python -m examples.benchmark.worker '<config as JSON>'

Protocol: one JSON object per line. The coordinator writes commands to stdin; the worker
writes events to stdout (and nothing else: library logs go to stderr).

  worker -> {"event": "ready", "leaders": n}        every local shard knows its leader
  coord  -> {"cmd": "start", "clients": c}           clients start (not yet counted)
  coord  -> {"cmd": "measure"}                       counters reset; the window opens
  worker -> {"event": "progress", ...}               every 0.5 s while clients run
  coord  -> {"cmd": "stop"}                          the window closes, clients stop
  worker -> {"event": "report", ...}                 counts, histograms, elections, RSS
  coord  -> {"cmd": "leaders"}  /  worker -> {"event": "leaders", ...}
  coord  -> {"cmd": "balance"}  /  worker -> {"event": "balanced", "moved": n}
  coord  -> {"cmd": "exit"} (or end of stdin)        the NodeHost closes, exit code 0

Rules:
- Built on the public API only, as a user's program is.
- Clients spread requests over every shard this process hosts, whoever leads it
  (followers forward), one request outstanding per client, no batching.
- An operation counts in the window it completes in; a failed one counts as an error
  of its kind, never as throughput.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import signal
import sys
import threading
import time
from collections import Counter as Tally
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from examples.benchmark.statemachines import KEY_BYTES, Counter, DiskKV, MemoryKV
from nodehost import (
    Config,
    IRaftEventListener,
    LeaderInfo,
    NodeHost,
    NodeHostConfig,
    RaftError,
    Session,
)
from nodehost.bench.histogram import Histogram
from nodehost.bench.sampling import own_peak_rss_mib

READY_TIMEOUT = 120.0
ENGINE_COUNTERS = {
    "nodehost_logdb_save_seconds_count",
    "nodehost_logdb_save_seconds_sum",
    "nodehost_transport_batches_sent_total",
    "nodehost_transport_messages_sent_total",
}
PROGRESS_EVERY = 0.5


@dataclass
class WorkerConfig:
    index: int  # this process hosts replica index + 1 of its shards
    addresses: list[str]
    directory: str
    shards: int
    replicas: int
    payload: int
    read_ratio: float
    sm: str
    fsync: bool
    metrics: bool
    switch_interval_ms: float  # 0: Python's default
    rtt_ms: int
    timeout: float
    snapshot_entries: int
    sequential: bool
    transport: str = "grpc"

    def to_argument(self) -> str:
        return json.dumps(asdict(self))


def placement(shard_id: int, processes: int, replicas: int) -> list[int]:
    """The process indexes hosting `shard_id`: consecutive ones, rotating with the id."""
    return [(shard_id + j) % processes for j in range(replicas)]


class ElectionLog(IRaftEventListener):
    """Every leader this process's replicas learned of, with when (events thread)."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, int, int]] = []

    def leader_updated(self, info: LeaderInfo) -> None:
        if info.leader_id:
            self.seen.append((time.monotonic(), info.shard_id, info.term))

    def between(self, start: float, end: float) -> list[tuple[int, int]]:
        return sorted({(s, t) for when, s, t in list(self.seen) if start <= when <= end})


class Worker:
    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.replica_id = config.index + 1
        self.elections = ElectionLog()
        self.shards = [
            s
            for s in range(1, config.shards + 1)
            if config.index in placement(s, len(config.addresses), config.replicas)
        ]
        self.nh = NodeHost(
            NodeHostConfig(
                node_host_dir=str(Path(config.directory) / f"nh{self.replica_id}"),
                raft_address=config.addresses[config.index],
                rtt_millisecond=config.rtt_ms,
                raft_event_listener=self.elections,
                fsync=config.fsync,
                enable_metrics=config.metrics,
                transport=config.transport,
            )
        )
        self.sessions: dict[int, Session] = {}
        self.running = False
        self.recording = False
        self.clients: list[asyncio.Task[None]] = []
        self.client_threads: list[threading.Thread] = []
        self._reset()
        self.counters_end = self.counters_start

    def _reset(self) -> None:
        self.proposals = Histogram()
        self.reads = Histogram()
        self.errors: Tally[str] = Tally()
        self.window_start = time.monotonic()
        self.window_end = self.window_start
        self.counters_start = self.counters()

    # ---------------------------------------------------------------- replicas

    def start_replicas(self) -> None:
        c = self.config
        for shard_id in self.shards:
            members = {
                p + 1: c.addresses[p] for p in placement(shard_id, len(c.addresses), c.replicas)
            }
            config = Config(
                shard_id=shard_id,
                replica_id=self.replica_id,
                election_rtt=10,
                heartbeat_rtt=1,
                check_quorum=True,
                snapshot_entries=c.snapshot_entries,
                compaction_overhead=c.snapshot_entries // 2,
            )
            if c.sm == "regular":
                self.nh.start_replica(members, False, Counter, config)
            elif c.sm == "concurrent":
                self.nh.start_concurrent_replica(members, False, MemoryKV, config)
            else:
                self.nh.start_on_disk_replica(members, False, self._disk_kv, config)
            self.sessions[shard_id] = self.nh.get_noop_session(shard_id)

    def _disk_kv(self, shard_id: int, replica_id: int) -> DiskKV:
        directory = Path(self.config.directory) / f"sm{self.replica_id}"
        directory.mkdir(parents=True, exist_ok=True)
        return DiskKV(str(directory), shard_id, replica_id)

    def wait_for_leaders(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        waiting = list(self.shards)
        while waiting:
            waiting = [s for s in waiting if not self.nh.get_leader_id(s)[2]]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"no leader after {READY_TIMEOUT:g}s for shards {waiting}")
            time.sleep(0.05)

    def leaders(self) -> dict[int, int]:
        return {s: self.nh.get_leader_id(s)[0] for s in self.shards}

    def hand_over_leadership(self) -> int:
        """Ask each shard led here to move its leader to the shard's first replica, so
        leaders spread evenly over the processes, as an operator would arrange."""
        moved = 0
        processes = len(self.config.addresses)
        for shard_id, leader in self.leaders().items():
            target = placement(shard_id, processes, self.config.replicas)[0] + 1
            if leader == self.replica_id and target != self.replica_id:
                self.nh.request_leader_transfer(shard_id, target)
                moved += 1
        return moved

    def led_here(self) -> int:
        return sum(1 for leader in self.leaders().values() if leader == self.replica_id)

    # ---------------------------------------------------------------- clients

    def _payload(self, client: int, i: int) -> bytes:
        key = ((self.config.index << 48) | (client << 16) | (i & 0xFF)).to_bytes(KEY_BYTES, "big")
        return (key + b"p" * max(0, self.config.payload - KEY_BYTES))[: self.config.payload]

    def _done(self, is_read: bool, seconds: float) -> None:
        if self.recording:
            (self.reads if is_read else self.proposals).record(seconds)

    async def client(self, client: int) -> None:
        """One closed-loop client: one request outstanding, next shard each time."""
        c, nh, shards = self.config, self.nh, self.shards
        rng = random.Random(client * 7919 + c.index)
        i = client
        while self.running:
            shard = shards[i % len(shards)]
            payload = self._payload(client, i)
            is_read = c.read_ratio > 0 and rng.random() < c.read_ratio
            started = time.perf_counter()
            try:
                if is_read:
                    await nh.aio_read(shard, payload[:KEY_BYTES], c.timeout)
                else:
                    await nh.aio_propose(self.sessions[shard], payload, c.timeout)
            except RaftError as exc:
                if self.recording:
                    self.errors[type(exc).__name__] += 1
                await asyncio.sleep(c.rtt_ms / 1000.0)  # as a program backs off
                continue
            self._done(is_read, time.perf_counter() - started)
            i += 1

    def sequential_client(self) -> None:
        """Latency mode: one thread, `sync_propose` (or `sync_read`) one at a time."""
        c, nh, shard = self.config, self.nh, self.shards[0]
        rng = random.Random(c.index)
        session = self.sessions[shard]
        i = 0
        while self.running:
            payload = self._payload(0, i)
            is_read = c.read_ratio > 0 and rng.random() < c.read_ratio
            started = time.perf_counter()
            try:
                if is_read:
                    nh.sync_read(shard, payload[:KEY_BYTES], c.timeout)
                else:
                    nh.sync_propose(session, payload, c.timeout)
            except RaftError as exc:
                if self.recording:
                    self.errors[type(exc).__name__] += 1
                time.sleep(c.rtt_ms / 1000.0)
                continue
            self._done(is_read, time.perf_counter() - started)
            i += 1

    def start_clients(self, count: int) -> None:
        self.running = True
        if self.config.sequential:
            for _ in range(count):
                thread = threading.Thread(target=self.sequential_client, daemon=True)
                thread.start()
                self.client_threads.append(thread)
        else:
            self.clients = [asyncio.ensure_future(self.client(i)) for i in range(count)]

    async def stop_clients(self) -> None:
        self.running = False
        if self.clients:
            _, pending = await asyncio.wait(self.clients, timeout=1.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for thread in self.client_threads:
            await asyncio.to_thread(thread.join, self.config.timeout + 1.0)
        self.clients, self.client_threads = [], []

    # ---------------------------------------------------------------- reports

    def counters(self) -> dict[str, float]:
        """The engine counters the window reports (with --metrics): LogDB writes (one
        fsync each) and their time, and the transport's batches and messages."""
        if not self.config.metrics:
            return {}
        text = self.nh.write_health_metrics().decode()
        return {
            sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name in ENGINE_COUNTERS
        }

    def progress(self) -> dict[str, Any]:
        return {
            "event": "progress",
            "proposals": self.proposals.total,
            "reads": self.reads.total,
            "errors": sum(self.errors.values()),
            "recording": self.recording,
        }

    def report(self) -> dict[str, Any]:
        return {
            "event": "report",
            "seconds": self.window_end - self.window_start,
            "proposals": self.proposals.to_json(),
            "reads": self.reads.to_json(),
            "errors": dict(self.errors),
            "elections": self.elections.between(self.window_start, self.window_end),
            "leaders": self.led_here(),
            "counters": {
                k: v - self.counters_start.get(k, 0.0) for k, v in self.counters_end.items()
            },
            "peak_rss_bytes": int(own_peak_rss_mib() * 2**20),
        }


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def serve(worker: Worker) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    ticker = asyncio.ensure_future(_progress(worker))
    commands = asyncio.ensure_future(_commands(worker, reader))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([commands, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        ticker.cancel()
        commands.cancel()
        stopping.cancel()
        await worker.stop_clients()


async def _commands(worker: Worker, reader: asyncio.StreamReader) -> None:
    while True:
        line = await reader.readline()
        if not line:
            return
        command = json.loads(line)
        name = command["cmd"]
        if name == "start":
            worker.start_clients(int(command["clients"]))
        elif name == "measure":
            worker._reset()
            worker.recording = True
        elif name == "stop":
            worker.recording = False
            worker.window_end = time.monotonic()
            worker.counters_end = worker.counters()
            await worker.stop_clients()
            emit(worker.report())
        elif name == "leaders":
            leaders = await asyncio.to_thread(worker.leaders)
            emit({"event": "leaders", "leaders": {str(s): r for s, r in leaders.items()}})
        elif name == "balance":
            moved = await asyncio.to_thread(worker.hand_over_leadership)
            emit({"event": "balanced", "moved": moved})
        elif name == "exit":
            return


async def _progress(worker: Worker) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY)
        if worker.running:
            emit(worker.progress())


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop
    except ImportError:  # pragma: no cover - platforms without uvloop
        return asyncio.new_event_loop()


def main() -> None:
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = WorkerConfig(**json.loads(sys.argv[1]))
    if config.switch_interval_ms > 0:
        sys.setswitchinterval(config.switch_interval_ms / 1000.0)
    try:
        worker = Worker(config)
    except Exception as exc:
        emit({"event": "error", "message": f"starting the NodeHost failed: {exc}"})
        raise SystemExit(1) from exc
    try:
        worker.start_replicas()
        worker.wait_for_leaders()
        emit({"event": "ready", "leaders": worker.led_here(), "shards": len(worker.shards)})
        with asyncio.Runner(loop_factory=_new_loop) as runner:
            runner.run(serve(worker))
    except Exception as exc:
        emit({"event": "error", "message": f"{type(exc).__name__}: {exc}"})
        raise SystemExit(1) from exc
    finally:
        worker.nh.close()


if __name__ == "__main__":
    main()
