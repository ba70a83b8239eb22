"""Recording histories from threads and asyncio tasks, and replaying them from JSON."""

from __future__ import annotations

import asyncio
import math
import random
import threading
from pathlib import Path

import pytest

from nodehost.testing import (
    UNKNOWN,
    HistoryRecorder,
    Operation,
    check_operations,
    dump_history,
    kv_model,
    load_history,
    register_model,
)


class FakeClock:
    def __init__(self) -> None:
        self.ns = 0

    def __call__(self) -> int:
        self.ns += 1_000_000
        return self.ns


def test_each_outcome_lands_as_the_checker_expects() -> None:
    rec = HistoryRecorder(FakeClock())
    done = rec.invoke(0, ("write", 1))
    failed = rec.invoke(1, ("write", 2))
    lost = rec.invoke(2, ("write", 3))
    open_ = rec.invoke(3, ("read",))
    rec.complete(done, None)
    rec.fail(failed)
    rec.unknown(lost)
    ops = rec.operations()
    assert [o.input for o in ops] == [("write", 1), ("write", 3), ("read",)]
    assert ops[0].call == pytest.approx(0.001) and ops[0].return_time == pytest.approx(0.005)
    assert ops[1].output is UNKNOWN and ops[1].return_time == math.inf
    assert ops[2].output is UNKNOWN  # still open: may yet take effect
    rec.complete(open_, 3)
    assert check_operations(register_model(), rec.operations()).ok


def test_misuse_is_reported_at_once() -> None:
    rec = HistoryRecorder(FakeClock())
    token = rec.invoke(0, ("read",))
    with pytest.raises(ValueError, match="already has operation"):
        rec.invoke(0, ("read",))
    rec.complete(token, None)
    with pytest.raises(ValueError, match="not outstanding"):
        rec.complete(token, None)
    with pytest.raises(ValueError, match="not outstanding"):
        rec.unknown(12345)


class Register:
    """A linearizable register: every operation takes effect under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value: int | None = None

    def apply(self, inp: tuple[object, ...]) -> object:
        with self.lock:
            if inp[0] == "read":
                return self.value
            if inp[0] == "write":
                self.value = inp[1]  # type: ignore[assignment]
                return None
            if self.value == inp[1]:
                self.value = inp[2]  # type: ignore[assignment]
                return True
            return False


def random_input(rng: random.Random, unique: int) -> tuple[object, ...]:
    r = rng.random()
    if r < 0.5:
        return ("read",)
    if r < 0.8:
        return ("write", unique)
    return ("cas", rng.randrange(max(unique, 1)), unique)


def test_threads_recording_a_real_register_pass() -> None:
    rec, reg = HistoryRecorder(), Register()

    def client(cid: int) -> None:
        rng = random.Random(cid)
        for i in range(150):
            inp = random_input(rng, cid * 1000 + i)
            token = rec.invoke(cid, inp)
            output = reg.apply(inp)
            if rng.random() < 0.05 and inp[0] != "read":
                rec.unknown(token)  # the answer was lost; the effect was not
            else:
                rec.complete(token, output)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    ops = rec.operations()
    assert len(ops) == 8 * 150
    result = check_operations(register_model(), ops, timeout=60)
    assert result.ok, result.explanation


def test_asyncio_tasks_recording_a_map_pass() -> None:
    rec = HistoryRecorder()
    store: dict[str, str] = {}

    async def client(cid: int) -> None:
        rng = random.Random(cid)
        for i in range(100):
            key = f"k{rng.randrange(3)}"
            if rng.random() < 0.5:
                token = rec.invoke(cid, ("get", key))
                await asyncio.sleep(0)
                value = store.get(key)  # takes effect here, between the awaits
                await asyncio.sleep(0)
                rec.complete(token, value)
            else:
                token = rec.invoke(cid, ("put", key, f"{cid}.{i}"))
                await asyncio.sleep(0)
                store[key] = f"{cid}.{i}"
                await asyncio.sleep(0)
                rec.complete(token, None)

    async def main() -> None:
        await asyncio.wait_for(asyncio.gather(*(client(c) for c in range(6))), timeout=60)

    asyncio.run(main())
    result = check_operations(kv_model(), rec.operations())
    assert result.ok, result.explanation
    assert len(result.partitions) == 3


def test_json_round_trip(tmp_path: Path) -> None:
    ops = [
        Operation(0, ("put", "k", b"\x00bytes"), 1.5, None, 2.25),
        Operation(1, ("cas", "k", None, (1, "two")), 1.75, True, 3.0),
        Operation(2, ("read",), 2.0, frozenset({1, 2}), 4.0),
        Operation(3, ("put", "k", "late"), 2.5, UNKNOWN, math.inf),
    ]
    path = tmp_path / "history.json"
    dump_history(ops, path)
    assert load_history(path) == ops


def test_a_recorder_dumps_what_it_recorded(tmp_path: Path) -> None:
    rec = HistoryRecorder(FakeClock())
    rec.complete(rec.invoke(0, ("write", 1)), None)
    rec.invoke(1, ("write", 2))
    rec.dump(tmp_path / "h.json")
    assert load_history(tmp_path / "h.json") == rec.operations()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json", "not JSON"),
        ('{"format": "other"}', "not a nodehost-history/1"),
        ('{"format": "nodehost-history/1", "operations": [{"client": 0}]}', "operation 0"),
        (
            '{"format": "nodehost-history/1", "operations": [{"client": 0, "input": ["read"],'
            ' "call": 1, "output": 1, "return": 0.5}]}',
            "before its call",
        ),
        (
            '{"format": "nodehost-history/1", "operations": [{"client": 0, "input": '
            '{"mystery": 1}, "call": 1, "return": null}]}',
            "unknown tagged value",
        ),
    ],
)
def test_a_bad_history_file_is_rejected(tmp_path: Path, document: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(document)
    with pytest.raises(ValueError, match=message):
        load_history(path)


def test_values_json_cannot_hold_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot write"):
        dump_history([Operation(0, ("write", object()), 0, None, 1)], tmp_path / "h.json")
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left behind
