"""How long the offline operator commands take on a big log.

    uv run python scripts/bench_tools.py [--entries 200000] [--value-bytes 100]

Writes one replica's log of that many entries into a fresh NodeHost directory (in a
temporary directory), then times `inspect` (it reads the whole log once, for the config
changes in it) and `recover` (which appends to it), through the Python API.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from logdb import RocksLogDB
from nodehost.bench.report import machine, machine_line
from nodehost.env import Env
from nodehost.raft.membership import bootstrap_entries
from nodehost.tools import inspect, recover
from nodehost.tools.logview import Record
from protos import raft_pb2 as pb

ADDRESS = "127.0.0.1:63001"


def build(directory: Path, count: int, value_bytes: int) -> None:
    env = Env(str(directory), "", ADDRESS, 0)
    db = RocksLogDB(str(env.logdb_dir))
    try:
        db.save_bootstrap(1, 1, pb.Bootstrap(addresses={1: ADDRESS}, type=pb.REGULAR_STATE_MACHINE))
        entries = bootstrap_entries({1: ADDRESS, 2: "127.0.0.1:63002", 3: "127.0.0.1:63003"})
        db.save([Record(1, 1, pb.State(term=1, commit=len(entries)), entries)])
        last = len(entries)
        payload = b"x" * value_bytes
        while last < count:
            batch = [
                pb.Entry(term=2, index=last + 1 + i, cmd=payload)
                for i in range(min(1000, count - last))
            ]
            last += len(batch)
            db.save([Record(1, 1, pb.State(term=2, vote=1, commit=last - 10), batch)])
    finally:
        db.close()
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--value-bytes", type=int, default=100)
    args = parser.parse_args()
    print(machine_line(machine()))
    with tempfile.TemporaryDirectory(prefix="bench-tools-") as root:
        directory = Path(root) / "nh"
        start = time.perf_counter()
        build(directory, args.entries, args.value_bytes)
        print(
            f"log of {args.entries} entries of {args.value_bytes} bytes written in "
            f"{time.perf_counter() - start:.2f} s"
        )
        start = time.perf_counter()
        report = inspect(directory)
        (replica,) = report.replicas
        print(f"inspect: {time.perf_counter() - start:.2f} s (last index {replica.last_index})")
        start = time.perf_counter()
        (result,) = recover(directory, [1], {1: ADDRESS})
        print(
            f"recover: {time.perf_counter() - start:.2f} s ({result.forced_entries} entries "
            f"forced committed, {result.last_index - result.first_index + 1} appended)"
        )


if __name__ == "__main__":
    main()
