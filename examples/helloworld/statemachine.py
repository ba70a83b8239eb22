"""The helloworld state machine: it counts the messages applied and prints each one.

It is the smallest useful IStateMachine: its whole state is one counter, its snapshot
is that counter as 8 little-endian bytes. Printing in `update` is fine here because it
changes nothing the replicas must agree on; a real state machine does no IO there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, BinaryIO

from statemachine import Entry, IStateMachine, Result, SnapshotFile, SnapshotFileCollection

log = logging.getLogger("helloworld")


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
        """Every query asks the same thing: the count, as 8 little-endian bytes."""
        return self.count.to_bytes(8, "little")

    def save_snapshot(
        self, writer: BinaryIO, files: SnapshotFileCollection, stopped: Callable[[], bool]
    ) -> None:
        writer.write(self.count.to_bytes(8, "little"))

    def recover_from_snapshot(
        self, reader: BinaryIO, files: list[SnapshotFile], stopped: Callable[[], bool]
    ) -> None:
        """Called on restart (then the entries after the snapshot are applied again) and
        when a replica too far behind is sent the leader's snapshot."""
        data = reader.read()
        if len(data) != 8:
            raise ValueError(f"a helloworld snapshot holds 8 bytes, this one {len(data)}")
        self.count = int.from_bytes(data, "little")
        log.info("snapshot recovered, count:%d", self.count)

    def close(self) -> None:
        pass
