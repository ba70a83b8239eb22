"""The examples' own state machines under the whole-stack simulation, written as the
README's "Testing your state machine under the simulation" shows: helloworld's counter
and kvstore's map, each with a workload and a model of what its clients may see.

A failing seed prints the one command that replays it. The long form runs ten times
the seeds:
    uv run pytest tests/examples/test_simulated.py --run-slow
"""

from __future__ import annotations

import json
import random
from collections.abc import Hashable, Sequence
from typing import Any

import pytest

from examples.helloworld.statemachine import ExampleStateMachine
from examples.kvstore.commands import Command, Op, Status, encode
from examples.kvstore.memory import MemoryKV
from nodehost.testing import UNKNOWN, Operation, kv_model
from nodehost.testing.simulation import Read, Scenario, Workload, Write
from statemachine import Result, StateMachineType

SEEDS = 20
SLOW_SEEDS = 200

# ---------------------------------------------------------------------- helloworld


class CounterModel:
    """What clients of a counter may see: every message adds one, a read tells the count."""

    def init(self) -> int:
        return 0

    def step(self, state: int, input: Any, output: Any) -> tuple[bool, int]:
        if input[0] == "add":
            return True, state + 1
        return output is UNKNOWN or output == state, state

    def partition(self, history: Sequence[Operation]) -> dict[Hashable, list[Operation]]:
        return {None: [op for op in history if not (op.input[0] == "read" and op.outcome_unknown)]}

    def read_only(self, input: Any, output: Any) -> bool:
        return bool(input[0] == "read")

    def describe_operation(self, input: Any, output: Any) -> str:
        return "add()" if input[0] == "add" else f"read() -> {output!r}"


class HelloWorkload(Workload):
    """helloworld's clients: lines typed (no-op session, as example-helloworld proposes
    them) and the periodic linearizable read of the count."""

    model = CounterModel()
    sessions = False

    def next(self, rng: random.Random, client_id: int) -> Write | Read:
        if rng.random() < 0.4:
            return Read(("read",), b"")
        return Write(("add",), f"hello from client {client_id}".encode())

    def read_output(self, read: Read, value: Any) -> Any:
        return int.from_bytes(value, "little")


HELLOWORLD = Scenario(ExampleStateMachine, HelloWorkload)


@pytest.mark.parametrize("seed", range(SEEDS))
def test_helloworld_counts_each_message_once_on_every_replica(seed: int) -> None:
    HELLOWORLD.check(seed)


# ---------------------------------------------------------------------- kvstore


class StoreWorkload(Workload):
    """kvstore's HTTP clients: PUT, compare-and-set, DELETE and GET on a few keys, the
    commands in the store's own binary form; every value written is unique."""

    model = kv_model()

    def __init__(self) -> None:
        self._serial = 0

    def next(self, rng: random.Random, client_id: int) -> Write | Read:
        key = rng.choice(["a", "b", "c"])
        roll = rng.random()
        if roll < 0.4:
            return Read(("get", key), key)
        self._serial += 1
        value = f"{client_id}.{self._serial}"
        if roll < 0.7:
            return Write(("put", key, value), encode(Command(Op.PUT, key, _json(value))))
        if roll < 0.9:
            # Expect the last value this workload wrote to the key, or none.
            expected = rng.choice([None, f"{client_id}.{self._serial - 1}"])
            return Write(
                ("cas", key, expected, value),
                encode(Command(Op.CAS, key, value=_json(value), expected=_json(expected))),
            )
        return Write(("delete", key), encode(Command(Op.DELETE, key)))

    def write_output(self, write: Write, result: Result) -> Any:
        if write.input[0] == "cas":
            return result.value == Status.APPLIED
        return None

    def read_output(self, read: Read, value: Any) -> Any:
        return None if value is None else json.loads(value)


def _json(value: str | None) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


KVSTORE = Scenario(MemoryKV, StoreWorkload, kind=StateMachineType.CONCURRENT)


@pytest.mark.parametrize("seed", range(SEEDS))
def test_kvstore_stays_linearizable_under_faults(seed: int) -> None:
    KVSTORE.check(seed)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("scenario", [HELLOWORLD, KVSTORE], ids=["helloworld", "kvstore"])
def test_the_examples_long_form(scenario: Scenario) -> None:
    failed = [r for r in scenario.run_many(range(SEEDS, SEEDS + SLOW_SEEDS), 2) if not r.ok]
    assert not failed, "\n\n".join(r.report() for r in failed[:5])
