"""Client sessions on the replicas: at-most-once application of retried proposals."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from nodehost.rsm import ApplyKind, ApplyResult, SnapshotStore, StateMachineManager
from nodehost.rsm.sessions import MAX_SESSIONS
from protos import raft_pb2 as pb
from statemachine import Result, StateMachineType

from .conftest import MakeManager
from .machines import ConcurrentKV, Counter, Log, OnDiskKV, never

CLIENT = 0xC0FFEE


def test_retried_proposal_is_applied_exactly_once(make_manager: MakeManager) -> None:
    c = Counter()
    m = make_manager(c)
    log = Log()
    log.register(CLIENT)
    first = log.session_cmd(CLIENT, 1, 0, b"inc")
    [reg, r1] = m.apply(log.entries)
    assert reg.kind == ApplyKind.REGISTER_SESSION and reg.result == Result(CLIENT)
    # the client timed out and proposed (client 1, series 1) again, twice
    retry = log.session_cmd(CLIENT, 1, 0, b"inc")
    again = log.session_cmd(CLIENT, 1, 0, b"inc")
    [r2, r3] = m.apply([retry, again])
    assert c.count == 1 and c.seen == [first.index]
    assert r1.result == r2.result == r3.result == Result(1, b"inc")
    assert not (r2.rejected or r2.ignored or r3.rejected or r3.ignored)
    # the next series is applied, and the client's answer for 1 is now forgotten
    [r4] = m.apply([log.session_cmd(CLIENT, 2, 1, b"inc")])
    assert r4.result == Result(2, b"inc") and c.count == 2
    [r5] = m.apply([log.session_cmd(CLIENT, 1, 0, b"inc")])
    assert r5.ignored and c.count == 2


def test_retry_within_one_batch_is_applied_once(make_manager: MakeManager) -> None:
    kv = ConcurrentKV()
    m = make_manager(kv, StateMachineType.CONCURRENT)
    log = Log()
    log.register(CLIENT)
    log.session_cmd(CLIENT, 1, 0, b"a=1")
    log.cmd(b"b=2")
    log.session_cmd(CLIENT, 1, 0, b"a=1")  # the retry, committed in the same batch
    log.session_cmd(CLIENT, 2, 1, b"c=3")
    results = m.apply(log.entries)
    assert kv.batches == [[2, 3], [5]]  # the retry flushed the batch, then was answered
    assert results[3].result == results[1].result == Result(1, b"1")
    assert [r.index for r in results] == [1, 2, 3, 4, 5]


def test_unknown_and_closed_sessions_are_rejected(make_manager: MakeManager) -> None:
    c = Counter()
    m = make_manager(c)
    log = Log()
    log.session_cmd(CLIENT, 1, 0, b"x")
    log.register(CLIENT)
    log.register(CLIENT)
    log.unregister(CLIENT)
    log.session_cmd(CLIENT, 1, 0, b"x")
    log.unregister(CLIENT)
    r = m.apply(log.entries)
    assert r[0].rejected and r[0].reason == "session expired"
    assert not r[1].rejected and r[2].rejected and "already" in r[2].reason
    assert r[3].kind == ApplyKind.UNREGISTER_SESSION and r[3].result == Result(CLIENT)
    assert r[4].rejected and r[5].rejected and r[5].reason == "unknown session"
    assert c.seen == []


def test_sessions_are_evicted_least_recently_used_first(make_manager: MakeManager) -> None:
    m = make_manager(Counter())
    log = Log()
    for client in range(1, MAX_SESSIONS + 1):
        log.register(client)
    log.session_cmd(1, 1, 0, b"keep 1 fresh")
    log.register(MAX_SESSIONS + 1)  # evicts client 2, the least recently used
    log.session_cmd(2, 1, 0, b"x")
    log.session_cmd(1, 2, 1, b"x")
    results = m.apply(log.entries)
    assert results[-2].rejected and results[-2].reason == "session expired"
    assert not results[-1].rejected


def test_on_disk_state_machines_take_no_sessions(
    make_manager: MakeManager, tmp_path: object
) -> None:
    m = make_manager(OnDiskKV(str(tmp_path)), StateMachineType.ON_DISK)
    m.open(never)
    log = Log()
    log.register(CLIENT)
    log.session_cmd(CLIENT, 1, 0, b"a=1")
    r = m.apply(log.entries)
    assert r[0].rejected and "on-disk" in r[0].reason and r[1].rejected


def test_huge_result_value_in_a_session_stops_the_replica(make_manager: MakeManager) -> None:
    class Huge(Counter):
        def update(self, entry: object) -> Result:
            return Result(2**4000)

    m = make_manager(Huge())
    log = Log()
    log.register(CLIENT)
    log.session_cmd(CLIENT, 1, 0, b"x")
    with pytest.raises(Exception, match="too large"):
        m.apply(log.entries)


# ---------------------------------------------------------------- batching never matters

ops = st.lists(
    st.tuples(
        st.sampled_from(["cmd", "cmd", "cmd", "noop-cmd", "register", "unregister", "config"]),
        st.integers(1, 3),  # client
        st.integers(1, 4),  # series
        st.integers(0, 4),  # responded-to
    ),
    min_size=1,
    max_size=40,
)


def _log(spec: list[tuple[str, int, int, int]]) -> list[pb.Entry]:
    log = Log()
    log.leader_noop()
    for client in (1, 2, 3):
        log.register(client)
    for op, client, series, responded_to in spec:
        if op == "cmd":
            log.session_cmd(
                client, series, min(responded_to, series - 1), b"k%d=%d" % (client, series)
            )
        elif op == "noop-cmd":
            log.cmd(b"n=%d" % series)
        elif op == "register":
            log.register(client)
        elif op == "unregister":
            log.unregister(client)
        else:
            log.add_node(client)
    return log.entries


def _outcome(r: ApplyResult) -> tuple[object, ...]:
    return (r.index, r.kind, r.result, r.rejected, r.reason, r.ignored)


@settings(max_examples=50, deadline=None)
@given(ops, st.integers(1, 8), st.sampled_from(list(StateMachineType)[:2]))
@example([("cmd", 1, 1, 0), ("cmd", 1, 2, 1)], 1, StateMachineType.REGULAR)
def test_batching_never_changes_results_or_state(
    tmp_path_factory: pytest.TempPathFactory,
    spec: list[tuple[str, int, int, int]],
    step: int,
    kind: StateMachineType,
) -> None:
    entries = _log(spec)
    root = str(tmp_path_factory.mktemp("batching"))

    def manager(replica: int) -> StateMachineManager:
        sm = ConcurrentKV() if kind is StateMachineType.CONCURRENT else Counter()
        return StateMachineManager(1, replica, kind, sm, SnapshotStore(root, 1, replica))

    whole, one_by_one, chunked = manager(1), manager(2), manager(3)
    a = whole.apply(entries)
    b = [r for e in entries for r in one_by_one.apply([e])]
    c = [r for i in range(0, len(entries), step) for r in chunked.apply(entries[i : i + step])]
    assert [_outcome(r) for r in a] == [_outcome(r) for r in b] == [_outcome(r) for r in c]
    assert whole.hash() == one_by_one.hash() == chunked.hash()
