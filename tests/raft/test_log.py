"""The log: MemoryLogReader (saved part) and RaftLog (saved part + memory)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodehost.raft import CompactedError, MemoryLogReader, UnavailableError
from nodehost.raft.log import RaftLog
from nodehost.raft.messages import ENTRY_OVERHEAD
from protos import raft_pb2 as pb


def entries(first: int, terms: list[int], size: int = 10) -> list[pb.Entry]:
    return [pb.Entry(index=first + i, term=t, cmd=b"x" * size) for i, t in enumerate(terms)]


def reader_with(terms: list[int]) -> MemoryLogReader:
    log = MemoryLogReader()
    log.append(entries(1, terms))
    return log


# ---------------------------------------------------------------------- MemoryLogReader


def test_reader_overwrites_a_conflicting_suffix() -> None:
    log = reader_with([1, 1, 1, 1])
    log.append(entries(3, [2, 2, 2]))
    assert [log.term(i) for i in range(1, 6)] == [1, 1, 2, 2, 2]
    assert log.last_index() == 5


def test_reader_refuses_a_gap() -> None:
    log = reader_with([1, 1])
    with pytest.raises(ValueError, match="gap"):
        log.append(entries(5, [1]))


def test_reader_bounds() -> None:
    log = reader_with([1, 1, 2])
    with pytest.raises(UnavailableError):
        log.term(4)
    with pytest.raises(UnavailableError):
        log.entries(1, 5, 1 << 20)
    log.compact(2)
    assert log.first_index() == 3
    assert log.term(2) == 1
    with pytest.raises(CompactedError):
        log.term(1)
    with pytest.raises(CompactedError):
        log.entries(2, 3, 1 << 20)
    with pytest.raises(ValueError):
        log.compact(9)


def test_reader_entries_stop_at_max_bytes_but_return_one() -> None:
    log = reader_with([1] * 10)
    one = 10 + ENTRY_OVERHEAD
    assert len(log.entries(1, 11, 3 * one)) == 3
    assert len(log.entries(1, 11, 1)) == 1


def test_reader_applying_a_snapshot_replaces_the_log() -> None:
    log = reader_with([1, 1, 1])
    log.apply_snapshot(pb.Snapshot(index=10, term=3))
    assert log.first_index() == 11 and log.last_index() == 10
    assert log.term(10) == 3
    with pytest.raises(ValueError):
        log.apply_snapshot(pb.Snapshot(index=5, term=3))


def test_reader_loses_only_the_unsynced_hard_state() -> None:
    log = MemoryLogReader()
    log.set_state(pb.State(term=2, vote=1, commit=3))
    log.sync()
    log.set_state(pb.State(term=2, vote=1, commit=7))
    log.drop_unsynced()
    assert log.state().commit == 3


def test_reader_snapshot_past_the_log_is_refused() -> None:
    log = reader_with([1, 1])
    with pytest.raises(ValueError):
        log.create_snapshot(pb.Snapshot(index=3, term=1))


# ---------------------------------------------------------------------- RaftLog


def test_reads_span_the_saved_part_and_memory() -> None:
    log = RaftLog(reader_with([1, 1, 1]))
    log.append(entries(4, [2, 2]))
    assert [e.index for e in log.entries(2, 6, 1 << 20)] == [2, 3, 4, 5]
    assert log.term(3) == 1 and log.term(5) == 2
    assert log.unsaved() == log.mem
    one = 10 + ENTRY_OVERHEAD
    assert [e.index for e in log.entries(2, 6, 3 * one)] == [2, 3, 4]


def test_byte_bounded_slices_in_memory() -> None:
    log = RaftLog(MemoryLogReader())
    log.append(entries(1, [1] * 10))
    one = 10 + ENTRY_OVERHEAD
    assert len(log.entries(1, 11, 4 * one)) == 4
    assert len(log.entries(3, 11, 4 * one + one // 2)) == 4
    assert len(log.entries(3, 11, 1)) == 1
    assert log.in_mem_bytes() == 10 * one


def test_a_conflict_replaces_the_tail_and_its_config_changes() -> None:
    log = RaftLog(MemoryLogReader())
    log.append(entries(1, [1, 1, 1]))
    cc = pb.Entry(index=4, term=1, type=pb.CONFIG_CHANGE)
    log.append([cc])
    assert log.config_changes == [4]
    last = log.append_after(2, entries(3, [2, 2, 2]))
    assert last == 5
    assert [log.term(i) for i in range(1, 6)] == [1, 1, 2, 2, 2]
    assert log.config_changes == []


def test_overwriting_a_committed_entry_raises() -> None:
    log = RaftLog(MemoryLogReader())
    log.append(entries(1, [1, 1, 1]))
    log.commit_to(3)
    with pytest.raises(RuntimeError, match="committed entry would be overwritten"):
        log.append_after(1, entries(2, [2, 2]))


def test_a_conflict_below_memory_restarts_memory_there() -> None:
    reader = reader_with([1, 1, 1, 1])  # saved, nothing in memory
    log = RaftLog(reader)
    log.append_after(2, entries(3, [3]))
    assert log.mem_offset == 3 and log.last_index() == 3
    assert log.term(2) == 1 and log.term(3) == 3
    assert log.saved_to == 2
    reader.append(log.unsaved())
    assert reader.last_index() == 3


def test_saved_counts_only_entries_the_log_still_holds() -> None:
    log = RaftLog(MemoryLogReader())
    log.append(entries(1, [1, 1, 1]))
    batch = log.unsaved()
    log.append_after(1, entries(2, [2]))  # stepped while the batch was being saved
    assert log.saved(batch) == 1


def test_memory_is_trimmed_once_saved_and_applied() -> None:
    log = RaftLog(MemoryLogReader())
    log.append(entries(1, [1] * 5))
    log.reader.append(log.unsaved())
    log.saved(log.unsaved())
    log.commit_to(5)
    log.committed_entries(1 << 20)
    log.applied_to(3)
    assert log.mem_offset == 4
    assert [e.index for e in log.entries(1, 6, 1 << 20)] == [1, 2, 3, 4, 5]


def test_find_conflict_by_term() -> None:
    log = RaftLog(MemoryLogReader())
    log.append(entries(1, [1, 1, 2, 2, 4, 4]))
    assert log.find_conflict_by_term(6, 3) == (4, 2)
    assert log.find_conflict_by_term(6, 9) == (6, 4)
    assert log.find_conflict_by_term(6, 0) == (0, 0)


def test_up_to_date_compares_last_term_then_length() -> None:
    log = RaftLog(MemoryLogReader())
    log.append(entries(1, [1, 2, 2]))
    assert log.up_to_date(3, 2)
    assert log.up_to_date(1, 3)
    assert not log.up_to_date(2, 2)
    assert not log.up_to_date(9, 1)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 4)),
        st.tuples(st.just("conflict"), st.integers(0, 6)),
        st.tuples(st.just("save"), st.just(0)),
        st.tuples(st.just("apply"), st.just(0)),
        st.tuples(st.just("compact"), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(operations)
def test_the_log_matches_a_plain_list(ops: list[tuple[str, int]]) -> None:
    """Random appends, conflicts, saves, applies and compactions: what the log reads
    back always equals a plain list kept beside it."""
    reader = MemoryLogReader()
    log = RaftLog(reader)
    model: list[int] = []  # terms; model[i] is entry i + 1
    term = 1
    for op, n in ops:
        if op == "append":
            log.append(entries(len(model) + 1, [term] * n))
            model += [term] * n
        elif op == "conflict" and model:
            term += 1
            at = max(len(model) - n, log.committed) + 1
            if at <= len(model) + 1:
                log.append_after(at - 1, entries(at, [term, term]))
                model = [*model[: at - 1], term, term]
        elif op == "save":
            batch = log.unsaved()
            reader.append(batch)
            log.saved(batch)
            log.commit_to(max(log.committed, min(log.saved_to, len(model))))
        elif op == "apply":
            log.committed_entries(1 << 20)
            log.applied_to(log.processed)
        elif op == "compact" and log.applied > reader.first_index():
            reader.compact(min(log.applied, reader.last_index()))
        assert log.last_index() == len(model)
        first = max(log.first_index(), 1)
        got = [e.term for e in log.entries(first, len(model) + 1, 1 << 30)] if model else []
        assert got == model[first - 1 :]
        assert log.processed <= log.committed <= log.last_index()
