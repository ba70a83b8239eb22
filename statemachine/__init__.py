"""What a user implements: the replicated state machine.

A replica applies the same committed entries in the same order on every host, so
each method below states what it may and may not do for replicas to stay equal.
Nothing here imports the rest of the library: a state machine is plain Python.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, BinaryIO


class StateMachineType(IntEnum):
    """Which interface backs a replica; recorded on first start and checked on restart."""

    REGULAR = 1
    CONCURRENT = 2
    ON_DISK = 3


@dataclass(slots=True)
class Result:
    """What `update` returns for one entry; handed back to the proposer unchanged."""

    value: int = 0
    data: bytes = b""


@dataclass(slots=True)
class Entry:
    """One committed command. `index` is its position in the shard's log."""

    index: int
    cmd: bytes
    result: Result | None = None


@dataclass(slots=True)
class SnapshotFile:
    """An external file that travels with a snapshot (see SnapshotFileCollection)."""

    file_id: int
    filepath: str
    metadata: bytes = b""


@dataclass
class SnapshotFileCollection:
    """Lets `save_snapshot` attach finished files (hard-linked or copied into the snapshot)
    instead of copying large data through the writer."""

    files: list[SnapshotFile] = field(default_factory=list)

    def add_file(self, file_id: int, path: str, metadata: bytes = b"") -> None:
        if any(f.file_id == file_id for f in self.files):
            raise ValueError(f"snapshot file id {file_id} added twice")
        self.files.append(SnapshotFile(file_id, path, metadata))


class SnapshotStopped(Exception):
    """Raised from save/recover when `stopped()` turned true: the replica is closing."""


class IStateMachine(abc.ABC):
    """An in-memory state machine, rebuilt from the latest snapshot and the log on start.

    The library calls it from one thread at a time; `lookup` never overlaps `update`.
    """

    @abc.abstractmethod
    def update(self, entry: Entry) -> Result:
        """Apply one committed entry.

        Deterministic: same entries, same order, same state on every replica. No clock,
        randomness or IO. An exception stops the replica (the entry is never skipped).
        """

    @abc.abstractmethod
    def lookup(self, query: Any) -> Any:
        """Answer a read; must not change state. Exceptions reach the reader."""

    @abc.abstractmethod
    def save_snapshot(
        self, writer: BinaryIO, files: SnapshotFileCollection, stopped: Callable[[], bool]
    ) -> None:
        """Write the whole state to `writer`. Read-only: never changes what lookup sees."""

    @abc.abstractmethod
    def recover_from_snapshot(
        self, reader: BinaryIO, files: list[SnapshotFile], stopped: Callable[[], bool]
    ) -> None:
        """Replace the whole state with what `save_snapshot` wrote."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources. Not guaranteed to be called (a process may be killed)."""


class IConcurrentStateMachine(abc.ABC):
    """An in-memory state machine whose `lookup` and `save_snapshot` may run while
    `update` runs, so reads and snapshots never stall writes."""

    @abc.abstractmethod
    def update(self, entries: list[Entry]) -> list[Entry]:
        """Apply a batch of committed entries in order and set each entry's `result`."""

    @abc.abstractmethod
    def lookup(self, query: Any) -> Any:
        """Answer a read; may run concurrently with `update`."""

    @abc.abstractmethod
    def prepare_snapshot(self) -> Any:
        """Capture a point-in-time token of the state; never runs during `update`."""

    @abc.abstractmethod
    def save_snapshot(
        self,
        ctx: Any,
        writer: BinaryIO,
        files: SnapshotFileCollection,
        stopped: Callable[[], bool],
    ) -> None:
        """Write the state captured by `prepare_snapshot`'s token `ctx`."""

    @abc.abstractmethod
    def recover_from_snapshot(
        self, reader: BinaryIO, files: list[SnapshotFile], stopped: Callable[[], bool]
    ) -> None:
        """Replace the whole state with a saved one."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources. Not guaranteed to be called."""


class IOnDiskStateMachine(abc.ABC):
    """A state machine that keeps its own durable data (Raft thesis 5.2).

    After a restart only the entries after the index `open` returns are applied again,
    so `update` must store each entry's index atomically with its effect. Client
    sessions are not supported: propose through the no-op session.
    """

    @abc.abstractmethod
    def open(self, stopped: Callable[[], bool]) -> int:
        """Open the data and return the index of the last entry applied to it (0 if none)."""

    @abc.abstractmethod
    def update(self, entries: list[Entry]) -> list[Entry]:
        """Apply entries in order, set results, and record the last index with them.

        May delay making them durable until `sync`, but must never keep entry k+1 while
        losing entry k.
        """

    @abc.abstractmethod
    def lookup(self, query: Any) -> Any:
        """Answer a read; may run concurrently with every other method."""

    @abc.abstractmethod
    def sync(self) -> None:
        """Make everything applied so far durable."""

    @abc.abstractmethod
    def prepare_snapshot(self) -> Any:
        """Capture a point-in-time token of the state."""

    @abc.abstractmethod
    def save_snapshot(self, ctx: Any, writer: BinaryIO, stopped: Callable[[], bool]) -> None:
        """Stream the captured state; the output must be deterministic."""

    @abc.abstractmethod
    def recover_from_snapshot(self, reader: BinaryIO, stopped: Callable[[], bool]) -> None:
        """Replace the whole durable state with a streamed one."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release resources."""


class IHash(abc.ABC):
    """Optional: a deterministic digest of the state, compared across replicas in tests."""

    @abc.abstractmethod
    def get_hash(self) -> int: ...


AnyStateMachine = IStateMachine | IConcurrentStateMachine | IOnDiskStateMachine
CreateStateMachine = Callable[[int, int], IStateMachine]
CreateConcurrentStateMachine = Callable[[int, int], IConcurrentStateMachine]
CreateOnDiskStateMachine = Callable[[int, int], IOnDiskStateMachine]

__all__ = [
    "AnyStateMachine",
    "CreateConcurrentStateMachine",
    "CreateOnDiskStateMachine",
    "CreateStateMachine",
    "Entry",
    "IConcurrentStateMachine",
    "IHash",
    "IOnDiskStateMachine",
    "IStateMachine",
    "Result",
    "SnapshotFile",
    "SnapshotFileCollection",
    "SnapshotStopped",
    "StateMachineType",
]
