"""The helloworld state machine: counts the messages applied and prints each one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, BinaryIO

from statemachine import Entry, IStateMachine, Result, SnapshotFile, SnapshotFileCollection


class ExampleStateMachine(IStateMachine):
    def __init__(self, shard_id: int, replica_id: int) -> None:
        self.shard_id = shard_id
        self.replica_id = replica_id
        self.count = 0

    def update(self, entry: Entry) -> Result:
        self.count += 1
        text = entry.cmd.decode("utf-8", errors="replace")
        print(f"from ExampleStateMachine.Update(), msg: {text}, count:{self.count}", flush=True)
        return Result(value=len(entry.cmd))

    def lookup(self, query: Any) -> Any:
        return self.count.to_bytes(8, "little")

    def save_snapshot(
        self, writer: BinaryIO, files: SnapshotFileCollection, stopped: Callable[[], bool]
    ) -> None:
        writer.write(self.count.to_bytes(8, "little"))

    def recover_from_snapshot(
        self, reader: BinaryIO, files: list[SnapshotFile], stopped: Callable[[], bool]
    ) -> None:
        data = reader.read()
        if len(data) != 8:
            raise ValueError(f"helloworld snapshot holds {len(data)} bytes, expected 8")
        self.count = int.from_bytes(data, "little")
