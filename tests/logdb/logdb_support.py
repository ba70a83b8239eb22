"""Helpers shared by the log store tests: records, entries, and a reopenable store."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from logdb import ILogDB, MemoryLogDB, RocksLogDB
from protos import raft_pb2 as pb


@dataclass
class Record:
    """A `SaveRecord`, as the core's Update would be."""

    shard_id: int
    replica_id: int
    entries: list[pb.Entry] = field(default_factory=list)
    state: pb.State | None = None
    snapshot: pb.Snapshot | None = None
    must_sync: bool = True


def entries(first: int, last: int, term: int, tag: bytes = b"") -> list[pb.Entry]:
    return [
        pb.Entry(index=i, term=term, cmd=tag + b"cmd-%d-%d" % (i, term), key=i)
        for i in range(first, last + 1)
    ]


def state(term: int, vote: int = 0, commit: int = 0) -> pb.State:
    return pb.State(term=term, vote=vote, commit=commit)


def snapshot(index: int, term: int, shard_id: int = 1) -> pb.Snapshot:
    membership = pb.Membership(config_change_id=index, addresses={1: "a:1", 2: "b:2"})
    return pb.Snapshot(
        shard_id=shard_id, index=index, term=term, membership=membership, filepath=f"snap-{index}"
    )


def terms(db: ILogDB, shard_id: int, replica_id: int, low: int, high: int) -> list[int]:
    return [e.term for e in db.entries(shard_id, replica_id, low, high, 1 << 40)]


class Store:
    """One store under test and a way to 'restart the process' on the same disk."""

    def __init__(self, kind: str, path: Path) -> None:
        self.kind = kind
        self.path = path
        self.db: ILogDB = self._open()

    def _open(self) -> ILogDB:
        if self.kind == "rocks":
            return RocksLogDB(str(self.path))
        return MemoryLogDB()

    def reopen(self) -> ILogDB:
        if isinstance(self.db, MemoryLogDB):
            self.db.close()
            self.db.restart()
        else:
            self.db.close()
            self.db = self._open()
        return self.db

    def close(self) -> None:
        self.db.close()

    def now_and_after_restart(self) -> Iterator[ILogDB]:
        """The store as it is, then as a restarted process finds it."""
        yield self.db
        yield self.reopen()


def save(db: ILogDB, *records: Record) -> None:
    db.save(list(records))


def all_terms(db: ILogDB, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], list[int]]:
    out = {}
    for shard_id, replica_id in keys:
        rs = db.read_state(shard_id, replica_id)
        assert rs is not None
        out[(shard_id, replica_id)] = terms(
            db, shard_id, replica_id, rs.first_index, rs.last_index + 1
        )
    return out


def same(a: Sequence[pb.Entry], b: Sequence[pb.Entry]) -> bool:
    return [e.SerializeToString() for e in a] == [e.SerializeToString() for e in b]


# ---------------------------------------------------------------- crash workload
#
# Batch b (from 1) gives every shard entries of term b up to index b * ENTRIES, a hard
# state (term b, vote 1, commit = the previous batch's last index), and:
# - every 5th batch first overwrites the last 2 entries of the batch before (a
#   conflicting suffix, never committed),
# - every 50th batch (by default) installs a snapshot at the previous batch's last index, which drops
#   the whole log (a range delete inside the batch) and bounds the store's size.

ENTRIES = 16


def crash_batch(b: int, shards: int, snapshot_every: int = 50) -> list[Record]:
    end_before = (b - 1) * ENTRIES
    snap: pb.Snapshot | None = None
    first = end_before + 1
    if snapshot_every and b % snapshot_every == 0:
        snap = pb.Snapshot(index=end_before, term=b - 1, filepath=f"snap-{b}")
    elif b % 5 == 0:
        first = end_before - 1
    records = []
    for shard in range(shards):
        es = [
            pb.Entry(index=i, term=b, cmd=f"{shard}:{i}:{b}".encode().ljust(16, b"."))
            for i in range(first, b * ENTRIES + 1)
        ]
        records.append(Record(shard, 1, es, pb.State(term=b, vote=1, commit=end_before), snap))
    return records


@dataclass
class CrashModel:
    """What every shard holds after `batches` crash batches."""

    batches: int = 0
    snapshot_every: int = 50
    snapshot_index: int = 0
    terms: dict[int, int] = field(default_factory=dict)

    def advance_to(self, b: int) -> None:
        while self.batches < b:
            self.batches += 1
            record = crash_batch(self.batches, 1, self.snapshot_every)[0]
            if record.snapshot is not None:
                self.snapshot_index = record.snapshot.index
                self.terms.clear()
            first = record.entries[0].index
            for i in [i for i in self.terms if i >= first]:
                del self.terms[i]
            self.terms.update((e.index, e.term) for e in record.entries)

    def check(self, db: ILogDB, shards: int) -> None:
        """The store holds exactly this model's state, in every shard."""
        b = self.batches
        first = min(self.terms, default=self.snapshot_index + 1)
        for shard in range(shards):
            rs = db.read_state(shard, 1)
            if b == 0:
                assert rs is None
                continue
            assert rs is not None, f"shard {shard} lost everything at batch {b}"
            assert rs.state == pb.State(term=b, vote=1, commit=(b - 1) * ENTRIES), shard
            assert (rs.first_index, rs.last_index) == (first, b * ENTRIES), shard
            assert (rs.snapshot.index if rs.snapshot else 0) == self.snapshot_index, shard
            got = db.entries(shard, 1, first, b * ENTRIES + 1, 1 << 30)
            assert [e.term for e in got] == [self.terms[i] for i in range(first, b * ENTRIES + 1)]
            assert all(e.cmd == f"{shard}:{e.index}:{e.term}".encode().ljust(16, b".") for e in got)


def state_batch(db: ILogDB) -> int:
    """Which crash batch the store holds, judging by shard 0 alone."""
    rs = db.read_state(0, 1)
    return rs.state.term if rs is not None else 0


# ---------------------------------------------------------------- RocksDB files

WAL_BLOCK = 32768


def wal_records(data: bytes) -> list[tuple[int, int, int]]:
    """(offset of payload, payload length, record type) of each physical WAL record.

    The format is RocksDB's log format: 32 KiB blocks of records, each a header
    (crc32c, length, type; 4 more bytes of log number in recyclable types 5..8)
    then the payload; a block's last < 7 bytes are padding.
    """
    records = []
    pos = 0
    while pos + 7 <= len(data):
        left = WAL_BLOCK - pos % WAL_BLOCK
        if left < 7:
            pos += left
            continue
        length = int.from_bytes(data[pos + 4 : pos + 6], "little")
        kind = data[pos + 6]
        if kind == 0 and length == 0:
            break  # preallocated, never written
        header = 11 if 5 <= kind <= 8 else 7
        records.append((pos + header, length, kind))
        pos += header + length
    return records


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


def only_file(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    assert len(found) == 1, found
    return found[0]
