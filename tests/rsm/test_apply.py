"""What reaches the user state machine, and what every entry yields."""

from __future__ import annotations

import threading

import pytest

from nodehost.rsm import ApplyKind, StateMachineError
from protos import raft_pb2 as pb
from statemachine import Entry, Result, StateMachineType

from .conftest import MakeManager
from .machines import KV, ConcurrentKV, Counter, Log, never


def test_leader_noop_and_metadata_never_reach_the_user(make_manager: MakeManager) -> None:
    c = Counter()
    m = make_manager(c)
    log = Log()
    log.leader_noop()
    log.metadata()
    log.cmd(b"")  # an empty proposal through a no-op session does
    log.cmd(b"x")
    results = m.apply(log.entries)
    assert [r.kind for r in results] == [
        ApplyKind.NOOP,
        ApplyKind.METADATA,
        ApplyKind.APPLICATION,
        ApplyKind.APPLICATION,
    ]
    assert c.seen == [3, 4]
    assert [(r.index, r.key, r.result) for r in results[2:]] == [
        (3, 3, Result(1, b"")),
        (4, 4, Result(2, b"x")),
    ]
    assert (m.applied_index, m.applied_term) == (4, 1)


def test_command_without_client_is_rejected_not_applied(make_manager: MakeManager) -> None:
    c = Counter()
    m = make_manager(c)
    [r] = m.apply([pb.Entry(index=1, term=1, cmd=b"orphan")])
    assert r.rejected and "no session" in r.reason and c.seen == []


def test_replayed_entries_are_skipped_and_gaps_refused(make_manager: MakeManager) -> None:
    c = Counter()
    m = make_manager(c)
    log = Log()
    for i in range(7):
        log.cmd(b"%d" % i)
    m.apply(log.entries[:5])
    results = m.apply(log.entries[2:])
    assert [r.index for r in results] == [6, 7] and c.seen == [1, 2, 3, 4, 5, 6, 7]
    with pytest.raises(ValueError, match="does not follow"):
        m.apply([pb.Entry(index=9, term=1, client_id=5, cmd=b"x")])
    assert m.applied_index == 7


def test_config_changes_update_membership(make_manager: MakeManager) -> None:
    m = make_manager(Counter())
    log = Log()
    log.bootstrap(3)
    log.config(pb.ConfigChange(type=pb.REMOVE_NODE, replica_id=3))
    log.add_node(3)  # removed ids never come back
    log.config(pb.ConfigChange(type=pb.ADD_NON_VOTING, replica_id=4, address="h:4"))
    log._add(type=pb.CONFIG_CHANGE, cmd=b"\xff\xff")
    results = m.apply(log.entries)
    assert all(r.kind == ApplyKind.CONFIG_CHANGE for r in results)
    assert [r.rejected for r in results] == [False, False, False, False, True, False, True]
    assert "removed" in results[4].reason and "malformed" in results[6].reason
    assert results[5].config_change is not None and results[5].config_change.replica_id == 4
    ms = m.membership
    assert sorted(ms.addresses) == [1, 2] and dict(ms.non_votings) == {4: "h:4"}
    assert 3 in ms.removed and ms.config_change_id == 6
    ms.addresses[9] = "mutating the copy"
    assert 9 not in m.membership.addresses


def test_ordered_config_change_needs_the_current_id(make_manager: MakeManager) -> None:
    m = make_manager(Counter(), ordered=True)
    log = Log()
    log.bootstrap(1)
    log.config(pb.ConfigChange(type=pb.ADD_NODE, replica_id=2, address="h:2", config_change_id=0))
    log.config(pb.ConfigChange(type=pb.ADD_NODE, replica_id=3, address="h:3", config_change_id=1))
    results = m.apply(log.entries)
    assert results[1].rejected and "stale" in results[1].reason
    assert not results[2].rejected and sorted(m.membership.addresses) == [1, 3]


def test_user_exception_stops_the_replica(make_manager: MakeManager) -> None:
    class Boom(Counter):
        def update(self, entry: Entry) -> Result:
            if entry.cmd == b"boom":
                raise KeyError("bad")
            return super().update(entry)

    c = Boom()
    m = make_manager(c)
    log = Log()
    log.cmd(b"ok")
    log.cmd(b"boom")
    log.cmd(b"after")
    with pytest.raises(StateMachineError, match="KeyError") as e:
        m.apply(log.entries)
    assert isinstance(e.value.__cause__, KeyError)
    assert m.applied_index == 0 and c.seen == [1]  # the failed entry was not skipped
    with pytest.raises(StateMachineError, match="stopped"):
        m.apply(log.entries[2:])
    with pytest.raises(StateMachineError):
        m.lookup(None)


@pytest.mark.parametrize("bad", [None, 5, Result("text")])  # type: ignore[arg-type]
def test_broken_update_contract_is_reported(make_manager: MakeManager, bad: object) -> None:
    class Bad(Counter):
        def update(self, entry: Entry) -> Result:
            return bad  # type: ignore[return-value]

    m = make_manager(Bad())
    with pytest.raises(StateMachineError):
        m.apply([pb.Entry(index=1, term=1, client_id=3, cmd=b"x")])


def test_batched_update_must_return_its_entries(make_manager: MakeManager) -> None:
    class Short(ConcurrentKV):
        def update(self, entries: list[Entry]) -> list[Entry]:
            return super().update(entries)[:-1]

    m = make_manager(Short(), StateMachineType.CONCURRENT)
    log = Log()
    log.cmd(b"a=1")
    log.cmd(b"b=2")
    with pytest.raises(StateMachineError, match="2 entries"):
        m.apply(log.entries)


def test_concurrent_kind_gets_batches(make_manager: MakeManager) -> None:
    kv = ConcurrentKV()
    m = make_manager(kv, StateMachineType.CONCURRENT)
    log = Log()
    log.cmd(b"a=1")
    log.cmd(b"b=2")
    log.add_node(1, initialize=True)
    log.cmd(b"c=3")
    results = m.apply(log.entries)
    assert kv.batches == [[1, 2, 4]]
    assert [r.index for r in results] == [1, 2, 3, 4] and results[3].result == Result(3, b"3")
    assert m.lookup("c") == "3"


def test_wrong_kind_of_state_machine_is_refused(make_manager: MakeManager) -> None:
    with pytest.raises(TypeError, match="CONCURRENT"):
        make_manager(Counter(), StateMachineType.CONCURRENT)


def _in_thread(fn: object) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)  # type: ignore[arg-type]
    t.start()
    return t


def test_regular_lookup_never_overlaps_update(make_manager: MakeManager) -> None:
    gate = threading.Event()
    kv = KV(gate=gate)
    m = make_manager(kv)
    log = Log()
    log.cmd(b"k=v")
    applying = _in_thread(lambda: m.apply(log.entries))
    assert kv.in_update.wait(10)
    answers: list[object] = []
    reading = _in_thread(lambda: answers.append(m.lookup("k")))
    reading.join(0.2)
    assert answers == []  # waits for the update
    gate.set()
    applying.join(10)
    reading.join(10)
    assert answers == ["v"]


def test_concurrent_lookup_runs_during_update(make_manager: MakeManager) -> None:
    kv = ConcurrentKV()
    kv.update_gate = threading.Event()
    m = make_manager(kv, StateMachineType.CONCURRENT)
    log = Log()
    log.cmd(b"k=v")
    applying = _in_thread(lambda: m.apply(log.entries))
    assert kv.in_update.wait(10)
    assert m.lookup("k") is None  # answered while the update is held
    kv.update_gate.set()
    applying.join(10)
    assert m.lookup("k") == "v"


def test_witness_tracks_membership_only(make_manager: MakeManager) -> None:
    m = make_manager(None)
    log = Log()
    log.bootstrap(2)
    log.metadata()
    log.leader_noop()
    results = m.apply(log.entries)
    assert [r.kind for r in results[2:]] == [ApplyKind.METADATA, ApplyKind.NOOP]
    assert sorted(m.membership.addresses) == [1, 2] and m.applied_index == 4
    with pytest.raises(RuntimeError, match="witness"):
        m.lookup(None)
    ss = m.save_snapshot(never)
    assert ss.witness and not ss.dummy and ss.filepath == "" and ss.index == 4


def test_close_is_idempotent(make_manager: MakeManager) -> None:
    c = Counter()
    m = make_manager(c)
    m.close()
    m.close()
    assert c.closed
    with pytest.raises(RuntimeError, match="closed"):
        m.apply([pb.Entry(index=1, term=1)])
