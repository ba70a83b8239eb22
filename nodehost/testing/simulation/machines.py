"""Wrappers that let the simulation see what a user's state machine is given.

The simulation starts replicas with `recorded(kind, create, observe)` in place of the
user's factory: each wrapper hands every call to the user's object unchanged and tells
`observe(index, cmd)` of each entry before the user applies it, which is how the
checker compares what the replicas applied (State Machine Safety). A wrapper is an
`IHash` exactly when the user's object is one, so state hashes work as they would.

Rules: the wrappers add no behaviour; an exception from the user's code passes through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, BinaryIO

from statemachine import (
    Entry,
    IConcurrentStateMachine,
    IHash,
    IOnDiskStateMachine,
    IStateMachine,
    Result,
    SnapshotFile,
    SnapshotFileCollection,
    StateMachineType,
)

Observe = Callable[[int, bytes], None]
Recovered = Callable[[], None]


class _Recorded(IStateMachine):
    def __init__(self, inner: IStateMachine, observe: Observe, recovered: Recovered) -> None:
        self.inner = inner
        self._observe = observe
        self._recovered = recovered

    def update(self, entry: Entry) -> Result:
        self._observe(entry.index, entry.cmd)
        return self.inner.update(entry)

    def lookup(self, query: Any) -> Any:
        return self.inner.lookup(query)

    def save_snapshot(
        self, writer: BinaryIO, files: SnapshotFileCollection, stopped: Callable[[], bool]
    ) -> None:
        self.inner.save_snapshot(writer, files, stopped)

    def recover_from_snapshot(
        self, reader: BinaryIO, files: list[SnapshotFile], stopped: Callable[[], bool]
    ) -> None:
        self._recovered()
        self.inner.recover_from_snapshot(reader, files, stopped)

    def close(self) -> None:
        self.inner.close()


class _RecordedHash(_Recorded, IHash):
    def get_hash(self) -> int:
        inner = self.inner
        assert isinstance(inner, IHash)
        return inner.get_hash()


class _RecordedConcurrent(IConcurrentStateMachine):
    def __init__(
        self, inner: IConcurrentStateMachine, observe: Observe, recovered: Recovered
    ) -> None:
        self.inner = inner
        self._observe = observe
        self._recovered = recovered

    def update(self, entries: list[Entry]) -> list[Entry]:
        for entry in entries:
            self._observe(entry.index, entry.cmd)
        return self.inner.update(entries)

    def lookup(self, query: Any) -> Any:
        return self.inner.lookup(query)

    def prepare_snapshot(self) -> Any:
        return self.inner.prepare_snapshot()

    def save_snapshot(
        self,
        ctx: Any,
        writer: BinaryIO,
        files: SnapshotFileCollection,
        stopped: Callable[[], bool],
    ) -> None:
        self.inner.save_snapshot(ctx, writer, files, stopped)

    def recover_from_snapshot(
        self, reader: BinaryIO, files: list[SnapshotFile], stopped: Callable[[], bool]
    ) -> None:
        self._recovered()
        self.inner.recover_from_snapshot(reader, files, stopped)

    def close(self) -> None:
        self.inner.close()


class _RecordedConcurrentHash(_RecordedConcurrent, IHash):
    def get_hash(self) -> int:
        inner = self.inner
        assert isinstance(inner, IHash)
        return inner.get_hash()


class _RecordedOnDisk(IOnDiskStateMachine):
    def __init__(self, inner: IOnDiskStateMachine, observe: Observe, recovered: Recovered) -> None:
        self.inner = inner
        self._observe = observe
        self._recovered = recovered

    def open(self, stopped: Callable[[], bool]) -> int:
        return self.inner.open(stopped)

    def update(self, entries: list[Entry]) -> list[Entry]:
        for entry in entries:
            self._observe(entry.index, entry.cmd)
        return self.inner.update(entries)

    def lookup(self, query: Any) -> Any:
        return self.inner.lookup(query)

    def sync(self) -> None:
        self.inner.sync()

    def prepare_snapshot(self) -> Any:
        return self.inner.prepare_snapshot()

    def save_snapshot(self, ctx: Any, writer: BinaryIO, stopped: Callable[[], bool]) -> None:
        self.inner.save_snapshot(ctx, writer, stopped)

    def recover_from_snapshot(self, reader: BinaryIO, stopped: Callable[[], bool]) -> None:
        self._recovered()
        self.inner.recover_from_snapshot(reader, stopped)

    def close(self) -> None:
        self.inner.close()


class _RecordedOnDiskHash(_RecordedOnDisk, IHash):
    def get_hash(self) -> int:
        inner = self.inner
        assert isinstance(inner, IHash)
        return inner.get_hash()


def recorded(
    kind: StateMachineType,
    create: Callable[[int, int], Any],
    observe: Callable[[int, int, int, bytes], None],
    recovered: Callable[[int, int], None],
) -> Callable[[int, int], Any]:
    """`create`, with each object it makes wrapped so that `observe(shard, replica,
    index, cmd)` hears of every entry it applies and `recovered(shard, replica)` of every
    snapshot it is rebuilt from."""

    def make(shard_id: int, replica_id: int) -> Any:
        inner = create(shard_id, replica_id)
        seen: Observe = lambda index, cmd: observe(shard_id, replica_id, index, cmd)  # noqa: E731
        rebuilt: Recovered = lambda: recovered(shard_id, replica_id)  # noqa: E731
        hashed = isinstance(inner, IHash)
        if kind is StateMachineType.REGULAR:
            if not isinstance(inner, IStateMachine):
                return inner  # NodeHost names the mistake
            return (_RecordedHash if hashed else _Recorded)(inner, seen, rebuilt)
        if kind is StateMachineType.CONCURRENT:
            if not isinstance(inner, IConcurrentStateMachine):
                return inner
            return (_RecordedConcurrentHash if hashed else _RecordedConcurrent)(
                inner, seen, rebuilt
            )
        if not isinstance(inner, IOnDiskStateMachine):
            return inner
        return (_RecordedOnDiskHash if hashed else _RecordedOnDisk)(inner, seen, rebuilt)

    return make
