"""What simulated clients do, and how their answers are judged.

A `Workload` makes one operation at a time for a client: a `Write` (a command to
propose) or a `Read` (a query for a linearizable read), each with the `input` the
checker's model sees. Its `model` (nodehost.testing.models) judges the whole history
for linearizability; without one, a run checks Raft's properties and that the
replicas end equal.

`KVWorkload` with `KVStateMachine` is the built-in pair: puts, appends and gets on a
few keys, every written value unique, checked against `kv_model()`. An append applied
twice, a lost write or a stale read makes its history illegal.

Rules:
- Operations come from the client's own seeded generator: a run replays.
- `write_output` and `read_output` turn what the NodeHost answered into the model's
  output; they run once per completed operation.
"""

from __future__ import annotations

import abc
import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from nodehost.testing.models import Model, kv_model
from statemachine import (
    Entry,
    IHash,
    IStateMachine,
    Result,
    SnapshotFile,
    SnapshotFileCollection,
)


@dataclass(frozen=True, slots=True)
class Write:
    input: Any  # what the model sees, e.g. ("put", "k", "v")
    command: bytes  # what is proposed


@dataclass(frozen=True, slots=True)
class Read:
    input: Any  # what the model sees, e.g. ("get", "k")
    query: Any  # what the state machine's lookup is given


class Workload(abc.ABC):
    """Subclass for your own state machine: `next` makes each operation."""

    #: The model client histories are checked against; None: no linearizability check.
    model: Model[Any] | None = None
    #: Writes go through registered client sessions (applied exactly once, retried
    #: after a timeout) instead of the no-op session.
    sessions: bool = True

    @abc.abstractmethod
    def next(self, rng: random.Random, client_id: int) -> Write | Read:
        """The client's next operation."""

    def write_output(self, write: Write, result: Result) -> Any:
        """The model's output of a completed write; None by default."""
        return None

    def read_output(self, read: Read, value: Any) -> Any:
        """The model's output of a completed read: what lookup returned by default."""
        return value


class KVStateMachine(IStateMachine, IHash):
    """A map of str to str: `put` sets a key, `append` adds to its value, and a lookup of
    a key returns its value (None when unset). Commands are JSON lists."""

    def __init__(self, shard_id: int = 0, replica_id: int = 0) -> None:
        self.data: dict[str, str] = {}

    def update(self, entry: Entry) -> Result:
        op, key, value = json.loads(entry.cmd)
        if op == "put":
            self.data[key] = value
        elif op == "append":
            self.data[key] = self.data.get(key, "") + value
        else:
            raise ValueError(f"unknown command {op!r}")
        return Result(value=len(self.data[key]))

    def lookup(self, query: Any) -> Any:
        return self.data.get(query)

    def save_snapshot(
        self, writer: BinaryIO, files: SnapshotFileCollection, stopped: Callable[[], bool]
    ) -> None:
        writer.write(json.dumps(self.data, sort_keys=True).encode())

    def recover_from_snapshot(
        self, reader: BinaryIO, files: list[SnapshotFile], stopped: Callable[[], bool]
    ) -> None:
        self.data = json.loads(reader.read())

    def get_hash(self) -> int:
        text = json.dumps(self.data, sort_keys=True).encode()
        return int.from_bytes(_digest(text), "big")


class KVWorkload(Workload):
    """Puts, appends and gets over `keys` keys; every value written is unique."""

    model = kv_model()

    def __init__(
        self, keys: int = 3, reads: float = 0.4, appends: float = 0.3, sessions: bool = True
    ) -> None:
        self.keys = [f"k{i}" for i in range(keys)]
        self.reads = reads
        self.appends = appends
        self.sessions = sessions
        self._serial: dict[int, int] = {}

    def next(self, rng: random.Random, client_id: int) -> Write | Read:
        key = rng.choice(self.keys)
        roll = rng.random()
        if roll < self.reads:
            return Read(("get", key), key)
        serial = self._serial[client_id] = self._serial.get(client_id, 0) + 1
        value = f"{client_id}.{serial};"
        op = "append" if roll < self.reads + self.appends else "put"
        return Write((op, key, value), json.dumps([op, key, value]).encode())


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=8).digest()
