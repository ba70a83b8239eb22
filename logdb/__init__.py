"""The durable Raft log: one store per NodeHost for the log of every replica it hosts.

`RocksLogDB` keeps it in one RocksDB (through rocksdict); `MemoryLogDB` keeps it in
memory and can lose what was not synced, for simulations. Both follow `ILogDB`
(interface.py) and the same write rules (plan.py); keys are laid out in keys.py.

Rules:
- Only what `save` returned for is promised durable. One `save` is one RocksDB
  WriteBatch (one WAL record: all or nothing after a crash) and at most one fsync,
  whatever the number of replicas in it.
- A record that would break the log's invariants fails the whole `save` before
  anything is written (InvalidRequestError). A failed write (disk full, IO error)
  raises WriteError and the store refuses writes until it is reopened (fail-stop).
- A damaged store is reported on open (CorruptionError, naming the replicas where
  that can be known), never read as a different history.
- Nothing here imports nodehost: the core's `Update` satisfies `SaveRecord` as is.

What was found about rocksdict 0.3.29 (RocksDB 9) and chosen because of it:

- The GIL. rocksdict releases it (pyo3 `allow_threads`) only in `flush`,
  `flush_wal`, `close`, `compact_range`, `repair` and batched `get`; `put`, `write`,
  `get` and iteration hold it. A synced `write` therefore holds the GIL through the
  fsync: with the engine's thread busy, a worker writing synced puts left it 0.34-0.46
  of its speed (docs/limits.md: 0.41). So `save` does `write(sync=False)` (memtable insert
  and a write(2) to the WAL, GIL held, ~0.8 ms per 1,024 entries) then
  `flush_wal(sync=True)`, RocksDB's SyncWAL: it fsyncs every live WAL file up to the
  current one, and the WAL directory after a new file (db_impl.cc SyncWalImpl), with
  the GIL released. Same atomicity and durability as a synced write. Measured with
  scripts/bench_logdb.py on the shared 2-core machine (noisy): the engine's thread
  keeps 0.7-0.9 of its speed during single-entry saves (a raw synced put: 0.35-0.65
  in the same runs), and 0.45-0.8 during 64 x 16-entry saves, where building the
  batch in Python is most of the GIL time. After the fsync the worker waits for the
  GIL up to the switch interval (5 ms by default) while the engine's thread
  computes; `sys.setswitchinterval(0.0005)` raised the worker's single-entry saves
  from ~100/s to ~200-550/s beside a busy thread (the engine decides).
- Silent iterator ends. rocksdict's `keys()`, `values()` and `items()` iterators
  stop at a read error as if the range ended there. Reads here use `RdictIter` and
  check `status()`, or (in the open scan) confirm where a drained range ended.
- Checksums: RocksDB's own, no second one per entry. Every WAL record carries a
  crc32c, every table block one too, and every read (`verify_checksums`, on by
  default) checks the blocks it touches; a second checksum per entry would cost CPU
  on every entry and find nothing more. Because opening reads almost no table
  blocks, the open scan (scan.py) reads every key once, checksums verified, and
  checks the structure checksums cannot see (no hole in a replica's entries, a
  snapshot and hard state consistent with them).
- WAL recovery mode: tolerate_corrupted_tail_records. Measured on a WAL cut and
  bit-flipped by hand (tests/logdb/test_logdb_corruption.py): absolute_consistency
  refuses a torn last record, which a power cut leaves behind (a write whose sync
  had not returned, never acknowledged), so a replica would be lost after every power
  cut; point_in_time stops replay at a damaged record in the middle and silently
  drops every acknowledged batch after it (a different history); skip_any_corrupted_record
  drops records from the middle. tolerate_corrupted_tail_records drops an incomplete
  last record and fails the open on any checksum mismatch, wherever it is.
- What no single copy can detect: a WAL cut exactly at a record boundary, or deleted,
  looks like a crash before the last sync, and a flipped bit in the length field of
  the last WAL record can look like a torn tail. RocksDB's
  track_and_verify_wals_in_manifest would catch the first; rocksdict 0.3.29 does not
  expose it. Such a store reopens without writes it had acknowledged, and the other
  replicas do NOT make that safe in general. Raft assumes that what a replica saved
  stays saved (its safety proof does):
  - lost entries alone are repaired only when this replica's acknowledgement was not
    needed: the leader sends them again as to a lagging follower. If its
    acknowledgement completed a commit quorum and it then helps elect a leader that
    never had those entries, a committed, acknowledged write is lost;
  - a lost term or vote (the hard state lives in the same WAL) is not repaired at all:
    the replica may vote a second time in a term it already voted in, so two leaders
    can be elected in one term and overwrite each other's committed entries.
  What is protected: every acknowledged save is fsynced first, a torn last record
  (never acknowledged) is dropped, and every damage checksums can see fails the open.
  What is not: a disk or controller that acknowledges a sync it did not keep, and a
  data directory rolled back (restored from a backup or snapshot of the volume, copied
  from another time). After either, do not start the replica on that data: remove its
  replica id from the shard and add a new replica id, which starts empty, has never
  voted, and learns everything from the leader.
- Memory: at most three 16 MiB memtables, a 16 MiB block cache holding index and
  filter blocks too, 512 open table files, and RocksDB's info log capped at 2 x 1 MiB
  (it grows by a line per flush and filled a small disk before the data did).
"""

from typing import TYPE_CHECKING

from logdb.errors import (
    CompactedError,
    CorruptionError,
    DeploymentMismatchError,
    FormatError,
    InvalidRequestError,
    LogDBError,
    StoreClosedError,
    UnavailableError,
    WriteError,
)
from logdb.interface import ILogDB, RaftState, SaveRecord
from logdb.memory import MemoryLogDB
from logdb.rocks import RocksLogDB

if TYPE_CHECKING:  # mypy checks here that both stores implement the protocol
    _rocks: ILogDB = RocksLogDB("")
    _memory: ILogDB = MemoryLogDB()

__all__ = [
    "CompactedError",
    "CorruptionError",
    "DeploymentMismatchError",
    "FormatError",
    "ILogDB",
    "InvalidRequestError",
    "LogDBError",
    "MemoryLogDB",
    "RaftState",
    "RocksLogDB",
    "SaveRecord",
    "StoreClosedError",
    "UnavailableError",
    "WriteError",
]
