"""STORE=memory: the whole map in a dict, rebuilt from the latest snapshot and the log.

An IConcurrentStateMachine, so neither reads nor snapshots wait for writes:
- `lookup` runs on the HTTP loop while `update` runs on an apply thread. One dict read
  or write is atomic under the GIL, and `update` swaps in no partial value, so a read
  sees a key either before or after a command.
- `prepare_snapshot` (called between update batches) copies the dict, a fast C-level
  shallow copy of immutable bytes; `save_snapshot` writes that copy while updates go on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from examples.kvstore.commands import add_digest, execute, remove_digest
from examples.kvstore.snapshot import SnapshotReader, write_snapshot
from statemachine import (
    Entry,
    IConcurrentStateMachine,
    IHash,
    SnapshotFile,
    SnapshotFileCollection,
)


@dataclass(frozen=True, slots=True)
class _Frozen:
    index: int
    data: dict[bytes, bytes]


class MemoryKV(IConcurrentStateMachine, IHash):
    def __init__(self, shard_id: int, replica_id: int) -> None:
        self.shard_id = shard_id
        self.replica_id = replica_id
        self._data: dict[bytes, bytes] = {}  # UTF-8 key -> canonical JSON
        self._digest = 0
        self._index = 0  # of the last command applied

    def update(self, entries: list[Entry]) -> list[Entry]:
        data, digest = self._data, self._digest
        for entry in entries:
            outcome = execute(entry.cmd, self._get)
            if outcome.write:
                key = outcome.key.encode("utf-8")
                old = data.get(key)
                if old is not None:
                    digest = remove_digest(digest, key, old)
                if outcome.value is None:
                    del data[key]
                else:
                    data[key] = outcome.value
                    digest = add_digest(digest, key, outcome.value)
            entry.result = outcome.result
        if entries:
            self._digest, self._index = digest, entries[-1].index
        return entries

    def _get(self, key: str) -> bytes | None:
        return self._data.get(key.encode("utf-8"))

    def lookup(self, query: Any) -> Any:
        """The canonical JSON stored under the key `query` (a str), or None."""
        if not isinstance(query, str):
            raise TypeError(f"a lookup takes a key (str), not {type(query).__name__}")
        return self._get(query)

    def get_hash(self) -> int:
        return self._digest

    def __len__(self) -> int:
        return len(self._data)

    def prepare_snapshot(self) -> Any:
        return _Frozen(self._index, self._data.copy())

    def save_snapshot(
        self,
        ctx: Any,
        writer: BinaryIO,
        files: SnapshotFileCollection,
        stopped: Callable[[], bool],
    ) -> None:
        if not isinstance(ctx, _Frozen):
            raise TypeError("save_snapshot needs the token prepare_snapshot returned")
        write_snapshot(writer, ctx.index, ctx.data.items(), stopped)

    def recover_from_snapshot(
        self, reader: BinaryIO, files: list[SnapshotFile], stopped: Callable[[], bool]
    ) -> None:
        snapshot = SnapshotReader(reader, stopped)
        data = dict(snapshot.items())  # checked whole before it replaces anything
        self._data, self._digest, self._index = data, snapshot.digest, snapshot.index
