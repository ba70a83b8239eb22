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
