"""Apply-layer benchmark: entries/s through the manager, snapshot MB/s, raw ceilings beside.

Run: `uv run python -m tests.rsm.bench_rsm [--entries N] [--snapshot-mib M]`.
Prints figures only; the machine is shared, so read them as orders of magnitude.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
import zlib
from collections.abc import Callable
from typing import BinaryIO

from nodehost.bench.report import machine, machine_line
from nodehost.rsm import CompressionType, SnapshotStore, StateMachineManager
from protos import raft_pb2 as pb
from statemachine import (
    Entry,
    IStateMachine,
    Result,
    SnapshotFile,
    SnapshotFileCollection,
    StateMachineType,
)

from .machines import ConcurrentKV, Counter, never

BATCH = 512
# From docs/limits.md (same machine kind): what feeds the apply layer.
CEILINGS = (
    "limits.md: RocksDB WriteBatch of 1,024 entries with sync 793 k entries/s; "
    "gRPC stream, 64 items per message 445-558 k items/s"
)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_apply(n: int, root: str) -> None:
    cmds = [b"k%d=v" % (i % 1000) for i in range(n)]

    def run(kind: StateMachineType, sm: object, entries: list[pb.Entry]) -> float:
        m = StateMachineManager(1, 1, kind, sm, SnapshotStore(root, 1, id(sm)))  # type: ignore[arg-type]
        return timed(
            lambda: [m.apply(entries[i : i + BATCH]) for i in range(0, len(entries), BATCH)]
        )

    noop = [pb.Entry(index=i + 1, term=1, key=i, client_id=9, cmd=c) for i, c in enumerate(cmds)]
    registered = [pb.Entry(index=1, term=1, client_id=9, series_id=2**64 - 2)] + [
        pb.Entry(index=i + 2, term=1, key=i, client_id=9, series_id=i + 1, responded_to=i, cmd=c)
        for i, c in enumerate(cmds)
    ]
    counter = Counter()
    raw = timed(lambda: [counter.update(Entry(i, c)) for i, c in enumerate(cmds)])
    kv = ConcurrentKV()
    raw_batch = timed(
        lambda: [kv.update([Entry(i, c) for c in cmds[i : i + BATCH]]) for i in range(0, n, BATCH)]
    )
    rows = [
        ("regular, no-op session", run(StateMachineType.REGULAR, Counter(), noop), raw),
        ("regular, registered session", run(StateMachineType.REGULAR, Counter(), registered), raw),
        (
            "concurrent, no-op session",
            run(StateMachineType.CONCURRENT, ConcurrentKV(), noop),
            raw_batch,
        ),
        (
            "concurrent, registered session",
            run(StateMachineType.CONCURRENT, ConcurrentKV(), registered),
            raw_batch,
        ),
    ]
    print(f"apply {n:,} entries in batches of {BATCH}   ({CEILINGS})")
    for name, seconds, raw_seconds in rows:
        print(
            f"  {name:32s} {n / seconds / 1e3:8.0f} k entries/s"
            f"   raw: user update alone {n / raw_seconds / 1e3:8.0f} k/s"
        )


class Blob(IStateMachine):
    """Holds one bytes object; snapshots write it in 64 KiB pieces."""

    def __init__(self, data: bytes = b"") -> None:
        self.data = data

    def update(self, entry: Entry) -> Result:
        return Result()

    def lookup(self, query: object) -> object:
        return len(self.data)

    def save_snapshot(
        self, writer: BinaryIO, files: SnapshotFileCollection, stopped: object
    ) -> None:
        view = memoryview(self.data)
        for i in range(0, len(view), 1 << 16):
            writer.write(view[i : i + (1 << 16)])

    def recover_from_snapshot(
        self, reader: BinaryIO, files: list[SnapshotFile], stopped: object
    ) -> None:
        self.data = reader.read()


def bench_snapshot(mib: int, root: str) -> None:
    size = mib << 20
    text = b"".join(b"key-%08d=value-%08d;" % (i, i) for i in range(size // 28 + 1))[:size]
    path = os.path.join(root, "raw.bin")

    def raw_write() -> None:
        with open(path, "wb") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    def raw_read() -> None:
        with open(path, "rb") as f:
            f.read()

    print(f"snapshot of {mib} MiB of user data (compressible text)")
    print(
        f"  raw ceilings: write+fsync {mib / timed(raw_write):6.0f} MiB/s, read {mib / timed(raw_read):6.0f} MiB/s,"
        f" sha256 {mib / timed(lambda: hashlib.sha256(text).digest()):6.0f} MiB/s,"
        f" crc32 {mib / timed(lambda: zlib.crc32(text)):6.0f} MiB/s,"
        f" zlib-1 {mib / timed(lambda: zlib.compress(text, 1)):6.0f} MiB/s"
    )
    for compression in CompressionType:
        save, recover, file_size = snapshot_round(
            text, os.path.join(root, compression.name), compression
        )
        print(
            f"  {compression.name:5s} save {mib / save:6.0f} MiB/s   recover (verify + read) "
            f"{mib / recover:6.0f} MiB/s   file {file_size / size:5.2f} of the data"
        )


def snapshot_round(
    text: bytes, root: str, compression: CompressionType
) -> tuple[float, float, int]:
    """Seconds to save `text` as a snapshot and to recover it in another replica."""
    m = StateMachineManager(
        1,
        1,
        StateMachineType.REGULAR,
        Blob(text),
        SnapshotStore(root, 1, 1),
        compression=compression,
    )
    m.apply([pb.Entry(index=1, term=1, client_id=5, cmd=b"x")])
    start = time.perf_counter()
    ss = m.save_snapshot(never)
    save = time.perf_counter() - start
    target = Blob()
    r = StateMachineManager(1, 2, StateMachineType.REGULAR, target, SnapshotStore(root, 1, 2))
    start = time.perf_counter()
    r.recover(ss, never)
    recover = time.perf_counter() - start
    assert target.data == text
    return save, recover, ss.file_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--snapshot-mib", type=int, default=64)
    args = parser.parse_args()
    print(machine_line(machine()))
    with tempfile.TemporaryDirectory() as root:
        bench_apply(args.entries, root)
        bench_snapshot(args.snapshot_mib, root)


if __name__ == "__main__":
    main()
