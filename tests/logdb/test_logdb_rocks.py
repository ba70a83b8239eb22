"""What only the RocksDB store does: its header, key layout, write path and threads."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from logdb_support import Record, entries, state, terms
from rocksdict import Options, Rdict, WriteBatch

from logdb import (
    CorruptionError,
    DeploymentMismatchError,
    FormatError,
    LogDBError,
    RocksLogDB,
)
from logdb import keys as layout
from protos import raft_pb2 as pb


def raw(path: Path) -> Rdict:
    return Rdict(str(path), Options(raw_mode=True))


def test_another_deployment_cannot_open_the_store(tmp_path: Path) -> None:
    RocksLogDB(str(tmp_path), deployment_id=7).close()
    with pytest.raises(DeploymentMismatchError, match="deployment 7, not 8"):
        RocksLogDB(str(tmp_path), deployment_id=8)
    RocksLogDB(str(tmp_path), deployment_id=7).close()


def test_another_format_version_cannot_open_the_store(tmp_path: Path) -> None:
    RocksLogDB(str(tmp_path)).close()
    db = raw(tmp_path)
    db.put(layout.META_KEY, layout.encode_meta(0).replace(b"\x00\x00\x00\x01", b"\x00\x00\x00\x02"))
    db.close()
    with pytest.raises(FormatError, match="format version 2"):
        RocksLogDB(str(tmp_path))


def test_a_foreign_rocksdb_is_not_taken_for_a_log_store(tmp_path: Path) -> None:
    db = raw(tmp_path)
    db.put(b"hello", b"world")
    db.close()
    with pytest.raises(FormatError, match="no log store header"):
        RocksLogDB(str(tmp_path))


def test_one_store_is_opened_once(tmp_path: Path) -> None:
    with RocksLogDB(str(tmp_path)), pytest.raises(LogDBError, match="already open"):
        RocksLogDB(str(tmp_path))


def test_keys_are_fixed_width_big_endian_so_a_replica_is_one_range(tmp_path: Path) -> None:
    with RocksLogDB(str(tmp_path)) as db:
        db.save_bootstrap(1, 256, pb.Bootstrap())
        db.save(
            [
                Record(1, 256, entries(1, 3, 1), state(1, 0, 1)),
                Record(1, 255, entries(1, 300, 1)),
                Record(0, 2**64 - 1, entries(1, 1, 1)),
            ]
        )
    store = raw(tmp_path)
    found = list(store.keys())
    store.close()

    def key(kind: int, shard: int, replica: int, *index: int) -> bytes:
        tail = b"".join(i.to_bytes(8, "big") for i in index)
        return bytes([kind]) + shard.to_bytes(8, "big") + replica.to_bytes(8, "big") + tail

    expected = (
        [key(0, 0, 0), key(1, 1, 256), key(2, 1, 256)]
        + [key(4, 0, 2**64 - 1, 1)]
        + [key(4, 1, 255, i) for i in range(1, 301)]
        + [key(4, 1, 256, i) for i in range(1, 4)]
    )
    assert found == expected


class CountingDB:
    """Counts the calls that reach RocksDB's write path."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.writes = 0
        self.syncs = 0

    def write(self, batch: WriteBatch, options: Any) -> None:
        self.writes += 1
        assert not options.sync  # the sync is the GIL-releasing flush_wal below
        self.db.write(batch, options)

    def flush_wal(self, sync: bool) -> None:
        assert sync
        self.syncs += 1
        self.db.flush_wal(sync)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def test_a_save_of_many_shards_is_one_write_and_one_sync(tmp_path: Path) -> None:
    with RocksLogDB(str(tmp_path)) as db:
        counting = CountingDB(db._db)
        db._db = counting
        db.save([Record(s, 1, entries(1, 16, 1), state(1, 1, 0)) for s in range(64)])
        assert (counting.writes, counting.syncs) == (1, 1)
        db.save([Record(s, 1, state=state(1, 1, 16), must_sync=False) for s in range(64)])
        assert (counting.writes, counting.syncs) == (2, 1)
        db.save([Record(1, 1, entries(17, 17, 1), must_sync=False)])  # entries: synced
        assert (counting.writes, counting.syncs) == (3, 2)
        db.save([])
        db.remove_entries_to(1, 1, 0)  # below the first entry: nothing to write
        assert (counting.writes, counting.syncs) == (3, 2)


def test_readers_run_while_a_thread_saves(tmp_path: Path) -> None:
    shards, batches = 8, 300
    errors: list[BaseException] = []
    with RocksLogDB(str(tmp_path)) as db:

        def writer() -> None:
            try:
                for b in range(batches):
                    first = b * 4 + 1
                    db.save(
                        [
                            Record(
                                s, 1, entries(first, first + 3, b + 1), state(b + 1, 1, first - 1)
                            )
                            for s in range(shards)
                        ]
                    )
            except BaseException as e:  # reported below, in the main thread
                errors.append(e)

        thread = threading.Thread(target=writer)
        thread.start()
        reads = 0
        while thread.is_alive() or reads == 0:
            for s in range(shards):
                rs = db.read_state(s, 1)
                if rs is None:
                    continue
                low = max(1, rs.last_index - 9)
                got = terms(db, s, 1, low, rs.last_index + 1)
                assert got == [(i - 1) // 4 + 1 for i in range(low, rs.last_index + 1)]
                assert db.term(s, 1, rs.last_index) == got[-1]
                reads += 1
        thread.join(timeout=60)
        assert not errors, errors
        assert reads > 0


def test_a_hole_in_a_replicas_entries_fails_the_open(tmp_path: Path) -> None:
    with RocksLogDB(str(tmp_path)) as db:
        db.save([Record(5, 2, entries(1, 10, 1)), Record(6, 1, entries(1, 10, 1))])
    store = raw(tmp_path)
    store.delete(layout.entry_key(layout.prefix(layout.KIND_ENTRY, 5, 2), 4))
    store.close()
    with pytest.raises(CorruptionError, match="1 entries missing") as caught:
        RocksLogDB(str(tmp_path))
    assert caught.value.replicas == ((5, 2),)


def test_an_entry_under_the_wrong_key_fails_the_open(tmp_path: Path) -> None:
    with RocksLogDB(str(tmp_path)) as db:
        db.save([Record(5, 2, entries(1, 10, 1))])
    store = raw(tmp_path)
    store.put(
        layout.entry_key(layout.prefix(layout.KIND_ENTRY, 5, 2), 10),
        pb.Entry(index=9, term=1).SerializeToString(),
    )
    store.close()
    with pytest.raises(CorruptionError, match="does not hold entry 10"):
        RocksLogDB(str(tmp_path))


def test_an_unknown_key_fails_the_open(tmp_path: Path) -> None:
    RocksLogDB(str(tmp_path)).close()
    store = raw(tmp_path)
    store.put(b"\x09" + bytes(16), b"?")
    store.close()
    with pytest.raises(CorruptionError, match="unexpected key"):
        RocksLogDB(str(tmp_path))


class _FlushSpy:
    """Stands in for the Rdict to see how the store asks RocksDB to flush its WAL."""

    def __init__(self, db: Rdict) -> None:
        self._db = db
        self.flushes: list[bool] = []

    def flush_wal(self, sync: bool) -> None:
        self.flushes.append(sync)
        self._db.flush_wal(sync)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


@pytest.mark.parametrize("fsync", [True, False])
def test_fsync_off_skips_only_the_sync(tmp_path: Path, fsync: bool) -> None:
    store = RocksLogDB(str(tmp_path), fsync=fsync)
    spy = _FlushSpy(store._db)
    store._db = spy  # type: ignore[assignment]
    store.save([Record(1, 1, entries(1, 3, term=1), state(1, 1, 0))])
    assert spy.flushes == [fsync]
    store._db = spy._db
    store.close()
    reopened = RocksLogDB(str(tmp_path))
    assert terms(reopened, 1, 1, 1, 4) == [1, 1, 1]
    reopened.close()
