"""This machine kind's raw ceilings and the peers' figures, as docs/limits.md gives them.

Every benchmark prints its figure beside the matching ceiling, so a reader sees how
far the library is from what the disk, the network stack or a peer system allows on
the same machine kind (2 cores, x86_64, Python 3.11). They are one-off measurements on
a shared machine: orders of magnitude and ratios, not promises. When docs/limits.md
changes, this table changes with it: a test finds every figure here (each part between
"; ") in that file.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Ceiling:
    key: str
    what: str
    figure: str


CEILINGS: tuple[Ceiling, ...] = (
    Ceiling(
        "fsync", "append 4 KiB + fdatasync, one writer", "~2,000-4,000 syncs/s, p50 0.2-0.3 ms"
    ),
    Ceiling("fsync_parallel", "the same, 3 processes in parallel", "~5,400 syncs/s in total"),
    Ceiling(
        "rocksdict_sync_put",
        "RocksDB (rocksdict) single put, sync=True",
        "4,300 puts/s, p50 0.2 ms",
    ),
    Ceiling(
        "rocksdict_batch",
        "RocksDB WriteBatch of 64 / 1,024 entries, sync",
        "158 k / 793 k entries/s",
    ),
    Ceiling("grpc_unary", "grpc.aio unary calls, one client", "~1,400 calls/s"),
    Ceiling(
        "grpc_pingpong",
        "grpc.aio bidirectional stream ping-pong",
        "~2,700-3,000 round trips/s, p50 0.33-0.36 ms",
    ),
    Ceiling("grpc_stream", "grpc.aio stream, one item per message", "~7,800-8,700 messages/s"),
    Ceiling("grpc_stream_64", "grpc.aio stream, 64 items per message", "445-558 k items/s"),
    Ceiling(
        "tcp_pingpong", "raw TCP (uvloop protocol) ping-pong", "~8,500 round trips/s, p50 0.11 ms"
    ),
    Ceiling("tcp_frames", "raw TCP, length-prefixed frames one way", "165-179 k frames/s"),
    Ceiling("protobuf_64", "protobuf Message with 64 entries, encode + decode", "169 k per s"),
    Ceiling(
        "etcd_sequential",
        "etcd 3.4, 3 members, 1 put outstanding (Go client)",
        "829 puts/s; p50 1.13 ms, p99 2.35 ms",
    ),
    Ceiling(
        "etcd_256",
        "etcd 3.4, 256 puts outstanding (Go client)",
        "12.4 k puts/s; p50 19 ms, p99 44 ms",
    ),
    Ceiling("etcd_reads", "etcd 3.4, linearizable reads, 1,024 outstanding", "19.8 k reads/s"),
    Ceiling(
        "dqlite_put",
        "dqlite-demo, 3 nodes, sequential HTTP PUT",
        "p50 2.30 ms via the leader, 3.32 ms via a follower",
    ),
    Ceiling("dqlite_get", "dqlite-demo, sequential HTTP GET", "p50 0.81 / 0.73 ms"),
    Ceiling(
        "dqlite_benchmark",
        "dqlite-benchmark kvwrite, 3 nodes, 16 B, 1 worker",
        "449 writes/s, mean 2.22 ms",
    ),
    Ceiling("pysyncobj_256", "PySyncObj 0.3.14, 3 processes, 256 outstanding", "12.9-14.6 k ops/s"),
)

_BY_KEY = {ceiling.key: ceiling for ceiling in CEILINGS}


def ceiling(key: str) -> Ceiling:
    try:
        return _BY_KEY[key]
    except KeyError:
        raise KeyError(f"no ceiling {key!r}; known: {', '.join(sorted(_BY_KEY))}") from None


def beside(*keys: str) -> list[str]:
    """Lines 'raw ceiling: what: figure' for the keys, in order."""
    return [f"  ceiling  {ceiling(k).what}: {ceiling(k).figure}" for k in keys]
