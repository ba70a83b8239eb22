"""One shape for the three kinds of user state machine (and a witness's none).

Rules:
- The manager talks to every kind through `UserStateMachine`; what differs between
  kinds (one entry or a batch per call, a snapshot token or none, external files or
  none, a durable index) is decided here, once.
- Results are checked where they leave user code: an `update` that returns the wrong
  type or misaligned entries is a broken contract, reported as StateMachineError.
- Nothing here locks; the manager decides what may run together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, BinaryIO, Protocol

from nodehost.rsm.errors import StateMachineError
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

Stopped = Callable[[], bool]


class UserStateMachine(Protocol):
    # Whether snapshot data is captured by `prepare` and written later, so updates may
    # run while it is written (concurrent and on-disk kinds).
    prepares: bool

    def open(self, stopped: Stopped) -> int: ...
    def update(self, entries: list[Entry]) -> list[Result]: ...
    def lookup(self, query: Any) -> Any: ...
    def sync(self) -> None: ...
    def prepare(self) -> Any: ...
    def save(
        self, ctx: Any, writer: BinaryIO, files: SnapshotFileCollection, stopped: Stopped
    ) -> None: ...
    def recover(self, reader: BinaryIO, files: list[SnapshotFile], stopped: Stopped) -> None: ...
    def hash(self) -> int | None: ...
    def close(self) -> None: ...


def adapt(
    kind: StateMachineType,
    sm: IStateMachine | IConcurrentStateMachine | IOnDiskStateMachine | None,
) -> UserStateMachine:
    """The adapter for `sm`; TypeError when `sm` is not of the declared kind."""
    if sm is None:
        return Witness()
    if kind is StateMachineType.REGULAR and isinstance(sm, IStateMachine):
        return Regular(sm)
    if kind is StateMachineType.CONCURRENT and isinstance(sm, IConcurrentStateMachine):
        return Concurrent(sm)
    if kind is StateMachineType.ON_DISK and isinstance(sm, IOnDiskStateMachine):
        return OnDisk(sm)
    raise TypeError(f"{type(sm).__name__} is not a state machine of type {kind!r}")


def _check_result(result: object, index: int) -> Result:
    if not isinstance(result, Result):
        raise StateMachineError(
            f"update of entry {index} returned {type(result).__name__}, not a Result"
        )
    if not isinstance(result.value, int):
        raise StateMachineError(f"update of entry {index}: Result.value is not an int")
    if not isinstance(result.data, bytes):
        if not isinstance(result.data, bytearray | memoryview):
            raise StateMachineError(f"update of entry {index}: Result.data is not bytes")
        result.data = bytes(result.data)
    return result


def _batch_results(entries: list[Entry], returned: object) -> list[Result]:
    if not isinstance(returned, list) or len(returned) != len(entries):
        raise StateMachineError(
            f"update returned {type(returned).__name__} for {len(entries)} entries; "
            "it must return the list of entries it was given, results set"
        )
    results = []
    for sent, got in zip(entries, returned, strict=True):
        if not isinstance(got, Entry) or got.index != sent.index:
            raise StateMachineError(f"update returned entries out of line at index {sent.index}")
        results.append(_check_result(got.result, sent.index))
    return results


def _user_hash(sm: object) -> int | None:
    if not isinstance(sm, IHash):
        return None
    value = sm.get_hash()
    if not isinstance(value, int):
        raise StateMachineError("get_hash did not return an int")
    return value & (2**64 - 1)


class Regular:
    """IStateMachine: one entry per update; snapshot written while updates wait."""

    prepares = False

    def __init__(self, sm: IStateMachine) -> None:
        self.sm = sm

    def open(self, stopped: Stopped) -> int:
        return 0

    def update(self, entries: list[Entry]) -> list[Result]:
        return [_check_result(self.sm.update(e), e.index) for e in entries]

    def lookup(self, query: Any) -> Any:
        return self.sm.lookup(query)

    def sync(self) -> None:
        pass

    def prepare(self) -> Any:
        return None

    def save(
        self, ctx: Any, writer: BinaryIO, files: SnapshotFileCollection, stopped: Stopped
    ) -> None:
        self.sm.save_snapshot(writer, files, stopped)

    def recover(self, reader: BinaryIO, files: list[SnapshotFile], stopped: Stopped) -> None:
        self.sm.recover_from_snapshot(reader, files, stopped)

    def hash(self) -> int | None:
        return _user_hash(self.sm)

    def close(self) -> None:
        self.sm.close()


class Concurrent:
    """IConcurrentStateMachine: batched updates; a token captures snapshot state."""

    prepares = True

    def __init__(self, sm: IConcurrentStateMachine) -> None:
        self.sm = sm

    def open(self, stopped: Stopped) -> int:
        return 0

    def update(self, entries: list[Entry]) -> list[Result]:
        return _batch_results(entries, self.sm.update(entries))

    def lookup(self, query: Any) -> Any:
        return self.sm.lookup(query)

    def sync(self) -> None:
        pass

    def prepare(self) -> Any:
        return self.sm.prepare_snapshot()

    def save(
        self, ctx: Any, writer: BinaryIO, files: SnapshotFileCollection, stopped: Stopped
    ) -> None:
        self.sm.save_snapshot(ctx, writer, files, stopped)

    def recover(self, reader: BinaryIO, files: list[SnapshotFile], stopped: Stopped) -> None:
        self.sm.recover_from_snapshot(reader, files, stopped)

    def hash(self) -> int | None:
        return _user_hash(self.sm)

    def close(self) -> None:
        self.sm.close()


class OnDisk:
    """IOnDiskStateMachine: keeps its own data; snapshots carry no external files."""

    prepares = True

    def __init__(self, sm: IOnDiskStateMachine) -> None:
        self.sm = sm

    def open(self, stopped: Stopped) -> int:
        index = self.sm.open(stopped)
        if not isinstance(index, int) or index < 0:
            raise StateMachineError(f"open returned {index!r}, not an entry index")
        return index

    def update(self, entries: list[Entry]) -> list[Result]:
        return _batch_results(entries, self.sm.update(entries))

    def lookup(self, query: Any) -> Any:
        return self.sm.lookup(query)

    def sync(self) -> None:
        self.sm.sync()

    def prepare(self) -> Any:
        return self.sm.prepare_snapshot()

    def save(
        self, ctx: Any, writer: BinaryIO, files: SnapshotFileCollection, stopped: Stopped
    ) -> None:
        self.sm.save_snapshot(ctx, writer, stopped)

    def recover(self, reader: BinaryIO, files: list[SnapshotFile], stopped: Stopped) -> None:
        self.sm.recover_from_snapshot(reader, stopped)

    def hash(self) -> int | None:
        return _user_hash(self.sm)

    def close(self) -> None:
        self.sm.close()


class Witness:
    """A witness votes but holds no state machine (thesis 11.7.2)."""

    prepares = False

    def open(self, stopped: Stopped) -> int:
        return 0

    def update(self, entries: list[Entry]) -> list[Result]:
        raise AssertionError("a witness applies no user entries")

    def lookup(self, query: Any) -> Any:
        raise StateMachineError("a witness has no state machine to read")

    def sync(self) -> None:
        pass

    def prepare(self) -> Any:
        return None

    def save(
        self, ctx: Any, writer: BinaryIO, files: SnapshotFileCollection, stopped: Stopped
    ) -> None:
        raise AssertionError("a witness saves metadata-only snapshots")

    def recover(self, reader: BinaryIO, files: list[SnapshotFile], stopped: Stopped) -> None:
        pass

    def hash(self) -> int | None:
        return None

    def close(self) -> None:
        pass
