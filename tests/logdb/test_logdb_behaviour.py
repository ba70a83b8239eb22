"""What every log store does, the same way: RocksLogDB and MemoryLogDB alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from logdb_support import Record, Store, entries, save, snapshot, state, terms

from logdb import (
    CompactedError,
    InvalidRequestError,
    RocksLogDB,
    StoreClosedError,
    UnavailableError,
)
from nodehost.raft.update import Update
from protos import raft_pb2 as pb


def test_a_fresh_store_knows_nothing(store: Store) -> None:
    db = store.db
    assert db.read_state(1, 1) is None
    assert db.get_bootstrap(1, 1) is None
    assert db.list_node_info() == []
    assert db.entries(1, 1, 1, 1, 100) == []
    assert db.term(1, 1, 0) == 0
    with pytest.raises(UnavailableError):
        db.entries(1, 1, 1, 2, 100)
    with pytest.raises(UnavailableError):
        db.term(1, 1, 1)


def test_one_save_holds_many_replicas_and_survives_a_restart(store: Store) -> None:
    records = [
        Record(shard, 1, entries(1, 10, 2, tag=b"s%d" % shard), state(2, 1, 5))
        for shard in range(8)
    ]
    store.db.save(records)
    for db in store.now_and_after_restart():
        for shard in range(8):
            rs = db.read_state(shard, 1)
            assert rs is not None
            assert (rs.first_index, rs.last_index, rs.snapshot) == (1, 10, None)
            assert rs.state == state(2, 1, 5)
            got = db.entries(shard, 1, 1, 11, 1 << 20)
            assert got == records[shard].entries
            assert db.term(shard, 1, 10) == 2
            assert db.term(shard, 1, 3) == 2


def test_a_conflicting_append_overwrites_the_suffix(store: Store) -> None:
    save(store.db, Record(1, 1, entries(1, 10, 1), state(1, 1, 3)))
    save(store.db, Record(1, 1, entries(6, 7, 2), state(2, 2, 3)))
    for db in store.now_and_after_restart():
        rs = db.read_state(1, 1)
        assert rs is not None and rs.last_index == 7
        assert terms(db, 1, 1, 1, 8) == [1] * 5 + [2, 2]
        with pytest.raises(UnavailableError):
            db.term(1, 1, 8)
        with pytest.raises(UnavailableError):
            db.entries(1, 1, 7, 9, 1 << 20)


def test_a_longer_conflicting_append_replaces_every_old_entry(store: Store) -> None:
    save(store.db, Record(1, 1, entries(1, 5, 1)))
    save(store.db, Record(1, 1, entries(3, 8, 2)))
    db = store.reopen()
    assert terms(db, 1, 1, 1, 9) == [1, 1, 2, 2, 2, 2, 2, 2]
    assert db.entries(1, 1, 3, 4, 1 << 20) == entries(3, 3, 2)


def test_an_installed_snapshot_restarts_the_log_after_it(store: Store) -> None:
    save(store.db, Record(1, 1, entries(1, 30, 1), state(1, 1, 10)))
    ss = snapshot(20, 3)
    save(store.db, Record(1, 1, entries(21, 22, 3), state(3, 0, 20), snapshot=ss))
    for db in store.now_and_after_restart():
        rs = db.read_state(1, 1)
        assert rs is not None
        assert (rs.first_index, rs.last_index, rs.snapshot) == (21, 22, ss)
        assert db.term(1, 1, 20) == 3
        assert terms(db, 1, 1, 21, 23) == [3, 3]
        with pytest.raises(CompactedError):
            db.entries(1, 1, 10, 22, 1 << 20)
        with pytest.raises(CompactedError):
            db.term(1, 1, 19)


def test_a_snapshot_alone_leaves_an_empty_log_at_its_index(store: Store) -> None:
    save(store.db, Record(1, 1, entries(1, 30, 1)))
    save(store.db, Record(1, 1, snapshot=snapshot(10, 2), state=state(2, 0, 10)))
    for db in store.now_and_after_restart():
        rs = db.read_state(1, 1)
        assert rs is not None
        assert (rs.first_index, rs.last_index) == (11, 10)  # entries 11..30 are gone too
        assert db.entries(1, 1, 11, 11, 100) == []
        assert db.term(1, 1, 10) == 2
    save(store.db, Record(1, 1, entries(11, 12, 2)))
    assert terms(store.reopen(), 1, 1, 11, 13) == [2, 2]


def test_local_snapshot_then_compaction(store: Store) -> None:
    save(store.db, Record(1, 1, entries(1, 100, 1), state(1, 1, 100)))
    store.db.save_snapshot(1, 1, snapshot(50, 1))
    rs = store.db.read_state(1, 1)
    assert rs is not None and rs.snapshot is not None
    assert (rs.first_index, rs.last_index, rs.snapshot.index) == (1, 100, 50)
    store.db.remove_entries_to(1, 1, 40)
    store.db.save_snapshot(1, 1, snapshot(45, 1))  # older than the recorded one: ignored
    with pytest.raises(InvalidRequestError):
        store.db.remove_entries_to(1, 1, 51)  # would pass the snapshot
    store.db.remove_entries_to(1, 1, 30)  # already gone: nothing to do
    for db in store.now_and_after_restart():
        rs = db.read_state(1, 1)
        assert rs is not None and rs.snapshot is not None
        assert (rs.first_index, rs.last_index, rs.snapshot.index) == (41, 100, 50)
        with pytest.raises(CompactedError):
            db.term(1, 1, 40)
        assert db.term(1, 1, 41) == 1
        assert len(db.entries(1, 1, 41, 101, 1 << 20)) == 60
    store.db.remove_entries_to(1, 1, 50)
    rs = store.reopen().read_state(1, 1)
    assert rs is not None and (rs.first_index, rs.last_index) == (51, 100)


def test_compacting_to_the_snapshot_at_the_end_of_the_log_empties_it(store: Store) -> None:
    save(store.db, Record(1, 1, entries(1, 10, 4), state(4, 1, 10)))
    store.db.save_snapshot(1, 1, snapshot(10, 4))
    store.db.remove_entries_to(1, 1, 10)
    for db in store.now_and_after_restart():
        rs = db.read_state(1, 1)
        assert rs is not None and (rs.first_index, rs.last_index) == (11, 10)
        assert db.term(1, 1, 10) == 4
    save(store.db, Record(1, 1, entries(11, 11, 5)))
    assert store.reopen().term(1, 1, 11) == 5


def test_entries_stop_at_max_bytes_but_return_at_least_one(store: Store) -> None:
    big = [pb.Entry(index=i, term=1, cmd=bytes(100)) for i in range(1, 11)]
    save(store.db, Record(1, 1, big))
    size = len(big[0].SerializeToString())
    assert len(store.db.entries(1, 1, 1, 11, 0)) == 1
    assert len(store.db.entries(1, 1, 1, 11, size * 3)) == 3
    assert len(store.db.entries(1, 1, 1, 11, size * 3 + size - 1)) == 3
    assert len(store.db.entries(1, 1, 4, 11, 1 << 20)) == 7
    with pytest.raises(InvalidRequestError):
        store.db.entries(1, 1, 5, 4, 100)


def test_bootstrap_records_list_and_removal(store: Store) -> None:
    boot = pb.Bootstrap(addresses={1: "a:1", 2: "b:2"}, join=False, type=pb.REGULAR_STATE_MACHINE)
    for shard_id, replica_id in [(7, 2), (3, 1), (7, 1)]:
        store.db.save_bootstrap(shard_id, replica_id, boot)
    save(store.db, Record(7, 1, entries(1, 5, 1), state(1, 1, 2)))
    save(store.db, Record(9, 1, entries(1, 5, 1)))  # saved, but never bootstrapped
    assert store.db.list_node_info() == [(3, 1), (7, 1), (7, 2)]
    store.db.remove_node_data(7, 1)
    for db in store.now_and_after_restart():
        assert db.list_node_info() == [(3, 1), (7, 2)]
        assert db.get_bootstrap(7, 2) == boot
        assert db.get_bootstrap(7, 1) is None
        assert db.read_state(7, 1) is None
        assert db.read_state(9, 1) is not None
    save(store.db, Record(7, 1, entries(1, 1, 9)))  # the replica starts over from nothing
    assert terms(store.reopen(), 7, 1, 1, 2) == [9]


def test_records_of_one_replica_apply_in_order_within_one_save(store: Store) -> None:
    save(
        store.db,
        Record(1, 1, entries(1, 5, 1), state(1, 1, 0)),
        Record(2, 1, entries(1, 2, 1)),
        Record(1, 1, entries(4, 6, 2), state(2, 0, 3)),
        Record(1, 1, snapshot=snapshot(6, 2, shard_id=1)),
        Record(1, 1, entries(7, 7, 2)),
    )
    for db in store.now_and_after_restart():
        rs = db.read_state(1, 1)
        assert rs is not None and rs.snapshot is not None
        assert (rs.first_index, rs.last_index, rs.snapshot.index) == (7, 7, 6)
        assert rs.state == state(2, 0, 3)
        assert terms(db, 2, 1, 1, 3) == [1, 1]


# Against replica (1, 1) holding snapshot 2, entries 3..10 of term 2, term 2, vote 1, commit 5.
BAD_RECORDS = {
    "gap": Record(1, 1, entries(12, 12, 2)),
    "not contiguous": Record(1, 1, entries(11, 11, 2) + entries(13, 13, 2)),
    "terms going down in a record": Record(1, 1, entries(11, 11, 3) + entries(12, 12, 2)),
    "term below the last entry": Record(1, 1, entries(11, 11, 1)),
    "overwriting a committed entry": Record(1, 1, entries(5, 5, 3)),
    "rewriting what the snapshot covers": Record(1, 1, entries(2, 2, 3)),
    "hard state term going back": Record(1, 1, state=state(1, 1, 5)),
    "second vote in a term": Record(1, 1, state=state(2, 3, 5)),
    "commit going back": Record(1, 1, state=state(2, 1, 4)),
    "commit past the log": Record(1, 1, state=state(2, 1, 11)),
    "older installed snapshot": Record(1, 1, snapshot=snapshot(1, 1)),
    "installed snapshot below the commit": Record(1, 1, snapshot=snapshot(4, 2)),
    "replica id past uint64": Record(1, 2**64, entries(1, 1, 1)),
}


@pytest.mark.parametrize("name", sorted(BAD_RECORDS))
def test_a_bad_record_fails_the_whole_save_and_writes_nothing(store: Store, name: str) -> None:
    save(store.db, Record(1, 1, entries(3, 10, 2), state(2, 1, 5), snapshot(2, 2)))
    save(store.db, Record(2, 1, entries(1, 3, 1), state(1, 1, 1)))
    with pytest.raises(InvalidRequestError):
        # A good record first: it must not be written either.
        save(store.db, Record(2, 1, entries(4, 6, 1), state(1, 1, 6)), BAD_RECORDS[name])
    for db in store.now_and_after_restart():
        rs1, rs2 = db.read_state(1, 1), db.read_state(2, 1)
        assert rs1 is not None and rs2 is not None
        assert (rs1.first_index, rs1.last_index, rs1.state) == (3, 10, state(2, 1, 5))
        assert (rs2.last_index, rs2.state) == (3, state(1, 1, 1))
        assert terms(db, 1, 1, 3, 11) == [2] * 8


def test_local_snapshot_past_the_log_and_compaction_of_nothing_are_refused(store: Store) -> None:
    save(store.db, Record(1, 1, entries(1, 10, 1)))
    with pytest.raises(InvalidRequestError):
        store.db.save_snapshot(1, 1, snapshot(11, 1))
    with pytest.raises(InvalidRequestError):
        store.db.remove_entries_to(5, 5, 1)
    rs = store.reopen().read_state(1, 1)
    assert rs is not None and rs.snapshot is None


def test_what_goes_in_and_comes_out_is_a_copy(store: Store) -> None:
    st, ss = state(2, 1, 1), snapshot(1, 1)
    boot = pb.Bootstrap(addresses={1: "a:1"})
    store.db.save_bootstrap(1, 1, boot)
    save(store.db, Record(1, 1, entries(2, 3, 2), st, ss))
    st.term, ss.index, boot.join = 99, 99, True
    rs = store.db.read_state(1, 1)
    got = store.db.get_bootstrap(1, 1)
    assert rs is not None and rs.snapshot is not None and got is not None
    rs.state.term, rs.snapshot.index, got.join = 77, 77, True
    rs = store.db.read_state(1, 1)
    got = store.db.get_bootstrap(1, 1)
    assert rs is not None and rs.snapshot is not None and got is not None
    assert (rs.state.term, rs.snapshot.index, got.join) == (2, 1, False)


def test_a_closed_store_refuses_every_call(store: Store) -> None:
    save(store.db, Record(1, 1, entries(1, 2, 1)))
    store.db.close()
    store.db.close()  # idempotent
    calls = [
        lambda: store.db.save([Record(1, 1, entries(3, 3, 1))]),
        lambda: store.db.read_state(1, 1),
        lambda: store.db.entries(1, 1, 1, 2, 100),
        lambda: store.db.term(1, 1, 1),
        lambda: store.db.save_bootstrap(1, 1, pb.Bootstrap()),
        lambda: store.db.list_node_info(),
        lambda: store.db.remove_node_data(1, 1),
    ]
    for call in calls:
        with pytest.raises(StoreClosedError):
            call()


def test_the_cores_update_is_a_save_record(store: Store) -> None:
    store.db.save([Update(3, 1, state=state(1, 1, 0), entries=entries(1, 2, 1), must_sync=True)])
    assert terms(store.reopen(), 3, 1, 1, 3) == [1, 1]


def test_missing_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "logdb"
    with RocksLogDB(str(path), wal_dir=str(tmp_path / "wal" / "dir")) as db:
        save(db, Record(1, 1, entries(1, 1, 1)))
    assert list((tmp_path / "wal" / "dir").glob("*.log"))
    with RocksLogDB(str(path), wal_dir=str(tmp_path / "wal" / "dir")) as db:
        assert terms(db, 1, 1, 1, 2) == [1]
