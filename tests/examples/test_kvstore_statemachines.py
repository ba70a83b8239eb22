"""The kvstore's commands and both state machines, in process: no NodeHost, no sockets.

Both stores must agree with a plain dict model, and with each other, command by
command: same results, same reads, same digests, and snapshots that either kind
restores.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from examples.kvstore.commands import (
    MAX_KEY_BYTES,
    BadInput,
    Command,
    Op,
    Status,
    canonical_json,
    decode,
    encode,
    execute,
)
from examples.kvstore.disk import DiskKV
from examples.kvstore.memory import MemoryKV
from examples.kvstore.snapshot import SnapshotFormatError
from statemachine import Entry, SnapshotFileCollection, SnapshotStopped

NEVER = lambda: False  # noqa: E731

keys = st.sampled_from(["a", "b", "ключ", "🔑", "x/y", "a b"])
values = st.sampled_from([b"1", b"1.0", b"true", b"null", b'"s"', b"[1,2]", b'{"a":1}'])
commands = st.one_of(
    st.builds(lambda k, v: Command(Op.PUT, k, value=v), keys, values),
    st.builds(lambda k: Command(Op.DELETE, k), keys),
    st.builds(lambda k, e, v: Command(Op.CAS, k, value=v, expected=e), keys, values, values),
)


def model_apply(model: dict[str, bytes], cmd: Command) -> Status:
    now = model.get(cmd.key)
    if cmd.op is Op.PUT:
        model[cmd.key] = cmd.value
        return Status.APPLIED
    if cmd.op is Op.DELETE:
        return Status.APPLIED if model.pop(cmd.key, None) is not None else Status.UNCHANGED
    if (now if now is not None else b"null") != cmd.expected:
        return Status.UNCHANGED
    model[cmd.key] = cmd.value
    return Status.APPLIED


def open_disk(path: Path) -> DiskKV:
    sm = DiskKV(str(path / "shard-1"), 1, 1)
    sm.open(NEVER)
    return sm


def snapshot_of(sm: MemoryKV | DiskKV) -> bytes:
    out = io.BytesIO()
    ctx = sm.prepare_snapshot()
    if isinstance(sm, MemoryKV):
        sm.save_snapshot(ctx, out, SnapshotFileCollection(), NEVER)
    else:
        sm.save_snapshot(ctx, out, NEVER)
    return out.getvalue()


def restore(sm: MemoryKV | DiskKV, data: bytes) -> None:
    if isinstance(sm, MemoryKV):
        sm.recover_from_snapshot(io.BytesIO(data), [], NEVER)
    else:
        sm.recover_from_snapshot(io.BytesIO(data), NEVER)


# ---------------------------------------------------------------- commands


@given(commands)
def test_a_command_survives_encoding(cmd: Command) -> None:
    assert decode(encode(cmd)) == cmd


@given(st.binary(max_size=64))
def test_garbage_in_the_log_is_answered_not_raised(data: bytes) -> None:
    # Every replica must reach the same verdict on any bytes, and none may stop.
    outcome = execute(data, lambda key: None)
    assert isinstance(outcome.result.value, int)
    if outcome.result.value == Status.BAD_COMMAND:
        assert outcome.result.data.startswith(b"bad command:")
        assert not outcome.write


def test_cas_expecting_null_matches_a_missing_key() -> None:
    create = encode(Command(Op.CAS, "k", value=b"1", expected=b"null"))
    assert execute(create, lambda key: None).result.value == Status.APPLIED
    failed = execute(create, lambda key: b"2")
    assert (failed.result.value, failed.result.data) == (Status.UNCHANGED, b"2")


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        (' {"b": 1, "a": [true, null, 1.0]} ', b'{"a":[true,null,1.0],"b":1}'),
        ('"ünïcødé ✓ 🔑"', '"ünïcødé ✓ 🔑"'.encode()),
        ("12345678901234567890123", b"12345678901234567890123"),
        ('"\\u00e9"', '"é"'.encode()),
    ],
)
def test_values_are_stored_as_canonical_json(text: str, canonical: bytes) -> None:
    assert canonical_json(text.encode()) == canonical
    assert json.loads(canonical) == json.loads(text)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "expected a JSON value"),
        (b"{bad", "invalid JSON"),
        (b"[1,", "invalid JSON"),
        (b"NaN", "NaN is not valid JSON"),
        (b"[Infinity]", "Infinity is not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b'"\\ud800"', "lone UTF-16 surrogate"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"1 2", "invalid JSON"),
    ],
)
def test_bad_json_is_refused_with_a_reason(body: bytes, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        canonical_json(body)


def test_keys_are_bounded() -> None:
    encode(Command(Op.DELETE, "k" * MAX_KEY_BYTES))
    with pytest.raises(BadInput, match="at most"):
        encode(Command(Op.DELETE, "é" * MAX_KEY_BYTES))
    with pytest.raises(BadInput, match="empty"):
        encode(Command(Op.DELETE, ""))


# ---------------------------------------------------------------- state machines


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.lists(commands, min_size=1, max_size=5), max_size=8))
def test_both_stores_follow_the_model(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[Command]]
) -> None:
    memory = MemoryKV(1, 1)
    disk = open_disk(tmp_path_factory.mktemp("disk"))
    model: dict[str, bytes] = {}
    index = 0
    try:
        for batch in batches:
            entries = []
            for cmd in batch:
                index += 1
                entries.append(Entry(index, encode(cmd)))
            expected = [model_apply(model, cmd) for cmd in batch]
            mem_results = [
                e.result for e in memory.update([Entry(e.index, e.cmd) for e in entries])
            ]
            disk_results = [e.result for e in disk.update(entries)]
            assert [r.value for r in mem_results if r] == expected
            assert mem_results == disk_results
            for key in ("a", "b", "ключ", "🔑", "x/y", "a b"):
                assert memory.lookup(key) == disk.lookup(key) == model.get(key)
            assert memory.get_hash() == disk.get_hash()
        empty = MemoryKV(1, 1)
        restore(empty, snapshot_of(disk))
        assert empty.get_hash() == memory.get_hash()
    finally:
        disk.close()


def fill(sm: MemoryKV | DiskKV, count: int, start: int = 1) -> None:
    entries = [
        Entry(start + i, encode(Command(Op.PUT, f"k{i}", value=str(i).encode())))
        for i in range(count)
    ]
    sm.update(entries)


def test_disk_store_reopens_where_it_stopped(tmp_path: Path) -> None:
    disk = open_disk(tmp_path)
    fill(disk, 50)
    disk.update([Entry(51, encode(Command(Op.DELETE, "k7")))])
    digest = disk.get_hash()
    disk.sync()
    disk.close()
    again = DiskKV(str(tmp_path / "shard-1"), 1, 1)
    assert again.open(NEVER) == 51
    assert again.get_hash() == digest
    assert again.lookup("k7") is None and again.lookup("k8") == b"8"
    again.close()


def test_a_snapshot_is_the_state_when_prepared(tmp_path: Path) -> None:
    for sm in (MemoryKV(1, 1), open_disk(tmp_path)):
        fill(sm, 10)
        before = sm.get_hash()
        ctx = sm.prepare_snapshot()
        sm.update([Entry(11, encode(Command(Op.PUT, "late", value=b"1")))])
        out = io.BytesIO()
        if isinstance(sm, MemoryKV):
            sm.save_snapshot(ctx, out, SnapshotFileCollection(), NEVER)
        else:
            sm.save_snapshot(ctx, out, NEVER)
            assert not list(tmp_path.glob("*.checkpoint-*")), "the checkpoint is removed"
            sm.close()
        restored = MemoryKV(1, 1)
        restore(restored, out.getvalue())
        assert restored.get_hash() == before
        assert restored.lookup("late") is None


def test_a_damaged_snapshot_leaves_the_state_alone(tmp_path: Path) -> None:
    source = MemoryKV(1, 1)
    fill(source, 20)
    good = snapshot_of(source)
    for target in (MemoryKV(1, 1), open_disk(tmp_path)):
        fill(target, 3, start=1)
        fill(target, 1, start=4)
        digest = target.get_hash()
        for bad, error in (
            (good[:-3], "truncated"),
            (good[:-13] + bytes([good[-13] ^ 1]) + good[-12:], "digest"),  # a value byte
            (b"not a snapshot at all", "bad magic"),
            (good + b"x", "after the end"),
        ):
            with pytest.raises(SnapshotFormatError, match=error):
                restore(target, bad)
            assert target.get_hash() == digest
            assert target.lookup("k0") == b"0"
        restore(target, good)
        assert target.get_hash() == source.get_hash()
        if isinstance(target, DiskKV):
            target.close()
            reopened = DiskKV(str(tmp_path / "shard-1"), 1, 1)
            assert reopened.open(NEVER) == 20
            assert reopened.get_hash() == source.get_hash()
            reopened.close()


def test_a_snapshot_stops_when_the_replica_closes() -> None:
    sm = MemoryKV(1, 1)
    fill(sm, 3000)
    with pytest.raises(SnapshotStopped):
        sm.save_snapshot(
            sm.prepare_snapshot(), io.BytesIO(), SnapshotFileCollection(), lambda: True
        )


def test_disk_store_removes_a_checkpoint_left_by_a_crash(tmp_path: Path) -> None:
    disk = open_disk(tmp_path)
    fill(disk, 5)
    disk.prepare_snapshot()  # the process dies before save_snapshot
    disk.close()
    assert list(tmp_path.glob("*.checkpoint-*"))
    open_disk(tmp_path).close()
    assert not list(tmp_path.glob("*.checkpoint-*"))


def test_lookups_take_keys_only() -> None:
    with pytest.raises(TypeError):
        MemoryKV(1, 1).lookup(b"a")
