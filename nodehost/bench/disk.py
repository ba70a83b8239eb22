"""The disk's own ceiling, measured in the data directory just before the run: how many
synced writes per second the filesystem allows, so a reader sees how close to it the
cluster runs (each engine pass of each process costs one sync).

- fsync: append a record and fdatasync, one at a time, for `seconds`.
- rocksdict: single puts with sync=True into a scratch database, for `seconds`.
Both leave nothing behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass

from rocksdict import Options, Rdict, WriteOptions

from nodehost.bench.histogram import Histogram


@dataclass
class SyncRate:
    per_second: float
    p50_ms: float
    p99_ms: float

    def to_json(self) -> dict[str, float]:
        return {"per_second": self.per_second, "p50_ms": self.p50_ms, "p99_ms": self.p99_ms}


def fsync_rate(directory: str, seconds: float, record_bytes: int = 16) -> SyncRate:
    record = b"x" * max(16, record_bytes)
    fd, path = tempfile.mkstemp(prefix="fsync-probe-", dir=directory)
    histogram = Histogram()
    try:
        started = time.perf_counter()
        deadline = started + seconds
        now = started
        while now < deadline:
            os.write(fd, record)
            os.fdatasync(fd)
            after = time.perf_counter()
            histogram.record(after - now)
            now = after
        elapsed = now - started
    finally:
        os.close(fd)
        os.unlink(path)
    return SyncRate(
        histogram.total / elapsed, histogram.percentile_ms(0.5), histogram.percentile_ms(0.99)
    )


def rocksdict_put_rate(directory: str, seconds: float, value_bytes: int = 16) -> SyncRate:
    path = tempfile.mkdtemp(prefix="rocksdict-probe-", dir=directory)
    value = b"v" * value_bytes
    histogram = Histogram()
    try:
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        db = Rdict(path, options)
        synced = WriteOptions()
        synced.sync = True
        try:
            started = time.perf_counter()
            deadline = started + seconds
            now, i = started, 0
            while now < deadline:
                db.put(i.to_bytes(8, "big"), value, synced)
                after = time.perf_counter()
                histogram.record(after - now)
                now, i = after, i + 1
            elapsed = now - started
        finally:
            db.close()
    finally:
        shutil.rmtree(path, ignore_errors=True)
    return SyncRate(
        histogram.total / elapsed, histogram.percentile_ms(0.5), histogram.percentile_ms(0.99)
    )
