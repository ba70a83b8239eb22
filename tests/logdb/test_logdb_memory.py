"""The in-memory store's faults: what a power cut loses, what a process crash keeps."""

from __future__ import annotations

from logdb_support import Record, entries, snapshot, state, terms

from logdb import MemoryLogDB


def test_a_power_cut_loses_exactly_the_unsynced_writes() -> None:
    db = MemoryLogDB()
    db.save([Record(1, 1, entries(1, 5, 1), state(1, 1, 2))])
    db.save_snapshot(1, 1, snapshot(2, 1))
    db.remove_entries_to(1, 1, 2)  # compaction is not synced
    db.save([Record(1, 1, state=state(1, 1, 5), must_sync=False)])
    assert (db.pending_batches(), db.syncs) == (2, 2)
    db.power_cut()
    rs = db.read_state(1, 1)
    assert rs is not None and rs.snapshot is not None
    assert (rs.first_index, rs.last_index, rs.snapshot.index) == (1, 5, 2)
    assert rs.state == state(1, 1, 2)
    assert terms(db, 1, 1, 1, 6) == [1] * 5


def test_entries_and_snapshots_are_synced_whatever_must_sync_says() -> None:
    db = MemoryLogDB()
    db.save([Record(1, 1, entries(1, 5, 1), must_sync=False)])
    db.save([Record(1, 1, snapshot=snapshot(5, 1), must_sync=False)])
    db.power_cut()
    rs = db.read_state(1, 1)
    assert rs is not None and rs.snapshot is not None and rs.snapshot.index == 5


def test_a_sync_makes_every_earlier_write_durable() -> None:
    db = MemoryLogDB()
    db.save([Record(1, 1, entries(1, 5, 1), state(1, 1, 0))])
    db.save([Record(1, 1, state=state(1, 1, 3), must_sync=False)])
    db.save([Record(2, 1, entries(1, 1, 1))])
    db.power_cut()
    rs = db.read_state(1, 1)
    assert rs is not None and rs.state.commit == 3


def test_a_power_cut_may_keep_a_prefix_of_the_unsynced_batches() -> None:
    db = MemoryLogDB()
    db.save([Record(1, 1, entries(1, 5, 1), state(1, 1, 0))])
    for commit in range(1, 4):
        db.save([Record(1, 1, state=state(1, 1, commit), must_sync=False)])
    db.power_cut(keep=2)
    rs = db.read_state(1, 1)
    assert rs is not None and rs.state.commit == 2


def test_a_process_crash_keeps_everything_written() -> None:
    db = MemoryLogDB()
    db.save([Record(1, 1, entries(1, 5, 1), state(1, 1, 0))])
    db.save([Record(1, 1, state=state(1, 1, 5), must_sync=False)])
    db.close()
    db.restart()
    rs = db.read_state(1, 1)
    assert rs is not None and rs.state.commit == 5
    assert terms(db, 1, 1, 1, 6) == [1] * 5
    db.close()
    db.power_cut()  # the unsynced batch survived the crash, but not the power cut
    rs = db.read_state(1, 1)
    assert rs is not None and rs.state.commit == 0
