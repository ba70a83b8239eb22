"""Benchmark of the RocksDB log store, with the raw rocksdict ceilings beside each figure.

    uv run python scripts/bench_logdb.py [--seconds 3] [--dir DIR]

Every write is synced; commands are 16 bytes. Figures (the raw ceilings of this
machine kind are in docs/limits.md):
1. single-entry `save` calls/s, beside a raw synced rocksdict put of the same bytes;
2. entries/s when 64 shards each append 16 entries per `save`, beside a raw synced
   WriteBatch of the same 1,024 pre-encoded entries;
3. reading back 10,000 entries of one replica, beside a raw scan of them;
4. how much of the main thread's speed is left while `save` runs in a worker thread
   (the engine's situation), beside a raw synced put in the thread;
5. opening the store (the full verifying scan), and peak memory of this process.
Timings on a shared machine are noisy: read them as figures, not verdicts.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rocksdict import Options, Rdict, ReadOptions, WriteBatch, WriteOptions

from logdb import RocksLogDB
from nodehost.bench.ceilings import beside
from nodehost.bench.report import machine, machine_line
from nodehost.bench.sampling import own_peak_rss_mib
from protos import raft_pb2 as pb

CMD = b"0123456789abcdef"


@dataclass
class Record:
    shard_id: int
    replica_id: int
    entries: list[pb.Entry]
    state: pb.State | None
    snapshot: pb.Snapshot | None = None
    must_sync: bool = True


@dataclass
class Appender:
    """Keeps appending to `shards` replicas, `per_save` entries each, reusing objects."""

    shards: int
    per_save: int
    next_index: int = 1
    records: list[Record] = field(default_factory=list)

    def __post_init__(self) -> None:
        for shard in range(self.shards):
            es = [
                pb.Entry(term=1, key=i, client_id=7, series_id=i, cmd=CMD)
                for i in range(self.per_save)
            ]
            self.records.append(Record(shard, 1, es, pb.State(term=1, vote=1)))

    def next(self) -> list[Record]:
        # save() serializes at once, so the same objects can be renumbered each time.
        first = self.next_index
        for record in self.records:
            for i, entry in enumerate(record.entries):
                entry.index = first + i
            assert record.state is not None
            record.state.commit = first - 1
        self.next_index += self.per_save
        return self.records


def entry_bytes() -> bytes:
    return pb.Entry(
        term=1, index=123456, key=1, client_id=7, series_id=1, cmd=CMD
    ).SerializeToString()


def alternate(steps: list[Callable[[], tuple[int, float]]], seconds: float) -> list[float]:
    """Rates of `steps` run in alternating quarter-second slices, for `seconds` in all.

    Each step returns (work done, seconds its measured part took). Alternating keeps a
    drifting load on the shared machine from favouring whichever ran first.
    """
    work = [0] * len(steps)
    spent = [0.0] * len(steps)
    for _ in range(max(1, int(seconds / (0.25 * len(steps))))):
        for i, step in enumerate(steps):
            end = time.perf_counter() + 0.25
            while time.perf_counter() < end:
                done, took = step()
                work[i] += done
                spent[i] += took
    return [w / t for w, t in zip(work, spent, strict=True)]


def raw_store(path: Path) -> Rdict:
    return Rdict(str(path), Options(raw_mode=True))


def bench_single(base: Path, seconds: float) -> None:
    sync = WriteOptions()
    sync.sync = True
    db = raw_store(base / "raw1")
    value = entry_bytes()
    n = [0]

    def raw_put() -> tuple[int, float]:
        n[0] += 1
        key = b"\x04" + bytes(16) + n[0].to_bytes(8, "big")
        t = time.perf_counter()
        db.put(key, value, sync)
        return 1, time.perf_counter() - t

    store = RocksLogDB(str(base / "single"))
    appender = Appender(1, 1)

    def save() -> tuple[int, float]:
        records = appender.next()
        t = time.perf_counter()
        store.save(records)
        return 1, time.perf_counter() - t

    raw_rate, rate = alternate([raw_put, save], seconds * 2)
    store.close()
    db.close()
    print("1. single-entry save, synced")
    print(f"   logdb save            {rate:10,.0f} saves/s")
    print(f"   raw rocksdict put     {raw_rate:10,.0f} puts/s   (limits.md: 4,300 puts/s)")
    print(f"   save / raw            {rate / raw_rate:10.2f}       (goal: >= 0.5)")


def bench_batch(base: Path, seconds: float) -> None:
    sync = WriteOptions()
    sync.sync = True
    db = raw_store(base / "raw64")
    value = entry_bytes()
    n = [0]

    def raw_batch() -> tuple[int, float]:
        t = time.perf_counter()
        batch = WriteBatch(raw_mode=True)
        for shard in range(64):
            prefix = b"\x04" + shard.to_bytes(8, "big") + (1).to_bytes(8, "big")
            for i in range(16):
                batch.put(prefix + (n[0] + i).to_bytes(8, "big"), value)
        n[0] += 16
        db.write(batch, sync)
        return 1024, time.perf_counter() - t

    store = RocksLogDB(str(base / "batch"))
    appender = Appender(64, 16)

    def save() -> tuple[int, float]:
        records = appender.next()
        t = time.perf_counter()
        store.save(records)
        return 1024, time.perf_counter() - t

    raw_rate, rate = alternate([raw_batch, save], seconds * 2)
    store.close()
    db.close()
    print("2. 64 shards x 16 entries per save, synced")
    print(f"   logdb save            {rate:10,.0f} entries/s  ({rate / 1024:,.0f} saves/s)")
    print(
        f"   raw WriteBatch        {raw_rate:10,.0f} entries/s  (pre-encoded values; "
        "limits.md: 64 / 1,024 per batch: 158 k / 793 k)"
    )
    print("   goal                     200,000 entries/s")


def bench_read(base: Path) -> None:
    store = RocksLogDB(str(base / "read"))
    appender = Appender(1, 1000)
    for _ in range(10):
        store.save(appender.next())
    store.close()
    store = RocksLogDB(str(base / "read"))  # from the tables, not the memtable
    best = min(_time(lambda: store.entries(0, 1, 1, 10_001, 1 << 30)) for _ in range(5))
    assert len(store.entries(0, 1, 1, 10_001, 1 << 30)) == 10_000
    store.close()
    db = raw_store(base / "read")
    prefix = b"\x04" + bytes(8) + (1).to_bytes(8, "big")

    def raw_scan() -> None:
        options = ReadOptions()
        options.set_iterate_upper_bound(prefix + (10_001).to_bytes(8, "big"))
        it = db.iter(options)
        it.seek(prefix + (1).to_bytes(8, "big"))
        values = []
        while it.valid():
            values.append(it.value())
            it.next()

    raw_best = min(_time(raw_scan) for _ in range(5))
    db.close()
    print("3. read back 10,000 entries of one replica (decoded pb.Entry objects)")
    print(f"   logdb entries()       {best * 1000:10.1f} ms    (goal: < 50 ms)")
    print(
        f"   raw scan (bytes only) {raw_best * 1000:10.1f} ms    (limits.md: 4-5.4 M entries/s = 2-2.5 ms)"
    )


def _time(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def spin(seconds: float) -> int:
    """Pure-Python work on the main thread, as the engine loop's own work is."""
    n = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(1000):
            n += 1
    return n


def share_left(write: Callable[[], None], seconds: float) -> tuple[float, float]:
    """(median speed ratio of the main thread with / without the worker, worker calls/s).

    Slices with and without the worker alternate, a fifth of a second each, so that
    the load of the shared machine drifting weighs on both sides of each ratio alike.
    """
    running, stop = threading.Event(), threading.Event()
    calls = [0]

    def worker() -> None:
        while not stop.is_set():
            if running.wait(0.01):
                write()
                calls[0] += 1

    thread = threading.Thread(target=worker)
    thread.start()
    ratios = []
    slice_seconds = 0.2
    for _ in range(max(1, int(seconds / (2 * slice_seconds)))):
        alone = spin(slice_seconds)
        running.set()
        beside = spin(slice_seconds)
        running.clear()
        ratios.append(beside / alone)
    stop.set()
    thread.join()
    return statistics.median(ratios), calls[0] / (len(ratios) * slice_seconds)


def bench_threads(base: Path, seconds: float) -> None:
    sync = WriteOptions()
    sync.sync = True
    raw = raw_store(base / "rawthread")
    value = entry_bytes()
    store = RocksLogDB(str(base / "thread"))
    store_single = RocksLogDB(str(base / "thread1"))
    single, batch = Appender(1, 1), Appender(64, 16)
    counter = [0]

    def raw_put() -> None:
        counter[0] += 1
        raw.put(counter[0].to_bytes(8, "big"), value, sync)

    cases: list[tuple[str, Callable[[], None], int]] = [
        ("raw synced put", raw_put, 1),
        ("logdb save, 1 entry", lambda: store_single.save(single.next()), 1),
        ("logdb save, 64 x 16", lambda: store.save(batch.next()), 1024),
    ]
    print("4. main thread speed left while a worker thread writes (engine: run_in_executor)")
    print("   (limits.md: a raw synced put in a thread leaves 0.41)")
    default_interval = sys.getswitchinterval()
    for interval in (default_interval, 0.0005):
        sys.setswitchinterval(interval)
        print(f"   switch interval {interval * 1000:.1f} ms:")
        for name, write, per_call in cases:
            left, rate = share_left(write, seconds)
            print(
                f"     {name:22s} main thread at {left:4.2f} of its speed; worker "
                f"{rate * per_call:10,.0f} entries/s meanwhile"
            )
    sys.setswitchinterval(default_interval)
    store.close()
    store_single.close()
    raw.close()


def bench_open(base: Path) -> None:
    path = base / "batch"
    t = time.perf_counter()
    store = RocksLogDB(str(path))
    took = time.perf_counter() - t
    count = sum(
        (rs.last_index - rs.first_index + 1)
        for shard in range(64)
        if (rs := store.read_state(shard, 1)) is not None
    )
    store.close()
    size = sum(f.stat().st_size for f in path.iterdir())
    print("5. open (full verifying scan)")
    print(f"   {count:,} entries, {size / 2**20:.0f} MiB on disk: {took:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--dir", help="where to put the stores (default: a temp dir)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench_logdb_", dir=args.dir))
    print(machine_line(machine()))
    print("\n".join(beside("fsync", "rocksdict_sync_put", "rocksdict_batch")))
    try:
        bench_single(base, args.seconds)
        bench_batch(base, args.seconds)
        bench_read(base)
        bench_threads(base, args.seconds)
        bench_open(base)
        print(f"peak memory (max RSS) of this process: {own_peak_rss_mib():.0f} MiB")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
