"""Small state machines of every kind for the apply-layer tests, and entry builders.

Commands are `b"key=value"` (set) for the KV machines; any command counts for Counter.
Each machine records what reached it, so tests can show what was (not) applied.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

from nodehost.rsm import SERIES_ID_REGISTER, SERIES_ID_UNREGISTER
from protos import raft_pb2 as pb
from statemachine import (
    Entry,
    IConcurrentStateMachine,
    IHash,
    IOnDiskStateMachine,
    IStateMachine,
    Result,
    SnapshotFile,
    SnapshotFileCollection,
    SnapshotStopped,
)

Stopped = Callable[[], bool]


def never() -> bool:
    return False


def stop_now() -> bool:
    return True


class Counter(IStateMachine, IHash):
    """Counts applied commands; the result is the new count and the command echoed."""

    def __init__(self) -> None:
        self.count = 0
        self.seen: list[int] = []
        self.closed = False

    def update(self, entry: Entry) -> Result:
        self.count += 1
        self.seen.append(entry.index)
        return Result(self.count, entry.cmd)

    def lookup(self, query: Any) -> Any:
        return self.count

    def save_snapshot(
        self, writer: BinaryIO, files: SnapshotFileCollection, stopped: Stopped
    ) -> None:
        if stopped():
            raise SnapshotStopped()
        writer.write(self.count.to_bytes(8, "big"))

    def recover_from_snapshot(
        self, reader: BinaryIO, files: list[SnapshotFile], stopped: Stopped
    ) -> None:
        self.count = int.from_bytes(reader.read(), "big")

    def get_hash(self) -> int:
        return self.count

    def close(self) -> None:
        self.closed = True


def _kv_set(data: dict[str, str], cmd: bytes) -> Result:
    key, _, value = cmd.decode().partition("=")
    data[key] = value
    return Result(len(data), value.encode())


def _kv_hash(data: dict[str, str]) -> int:
    encoded = json.dumps(sorted(data.items())).encode()
    return int.from_bytes(hashlib.blake2b(encoded, digest_size=8).digest(), "big")


class KV(IStateMachine, IHash):
    """A dict. With `attach_dir`, snapshots carry the data as an external file too."""

    def __init__(self, attach_dir: str | None = None, gate: threading.Event | None = None) -> None:
        self.data: dict[str, str] = {}
        self.seen: list[int] = []
        self.attach_dir = attach_dir
        self.gate = gate  # update waits on it, so tests can hold an update in flight
        self.in_update = threading.Event()
        self.recovered_files: list[SnapshotFile] = []

    def update(self, entry: Entry) -> Result:
        self.in_update.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        self.seen.append(entry.index)
        return _kv_set(self.data, entry.cmd)

    def lookup(self, query: Any) -> Any:
        return self.data.get(query)

    def save_snapshot(
        self, writer: BinaryIO, files: SnapshotFileCollection, stopped: Stopped
    ) -> None:
        encoded = json.dumps(self.data, sort_keys=True).encode()
        writer.write(encoded)
        if self.attach_dir is not None:
            path = os.path.join(self.attach_dir, f"kv-{len(os.listdir(self.attach_dir))}.json")
            with open(path, "wb") as f:
                f.write(encoded)
            files.add_file(7, path, b"copy")

    def recover_from_snapshot(
        self, reader: BinaryIO, files: list[SnapshotFile], stopped: Stopped
    ) -> None:
        self.data = json.loads(reader.read())
        self.recovered_files = files
        for f in files:
            with open(f.filepath, "rb") as fh:
                assert json.loads(fh.read()) == self.data

    def get_hash(self) -> int:
        return _kv_hash(self.data)


class ConcurrentKV(IConcurrentStateMachine, IHash):
    """A dict updated in batches; snapshots write the copy `prepare_snapshot` took."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.batches: list[list[int]] = []
        self.update_gate: threading.Event | None = None
        self.save_gate: threading.Event | None = None
        self.in_update = threading.Event()
        self.in_save = threading.Event()

    def update(self, entries: list[Entry]) -> list[Entry]:
        self.in_update.set()
        if self.update_gate is not None:
            assert self.update_gate.wait(10)
        self.batches.append([e.index for e in entries])
        for e in entries:
            e.result = _kv_set(self.data, e.cmd)
        return entries

    def lookup(self, query: Any) -> Any:
        return self.data.get(query)

    def prepare_snapshot(self) -> Any:
        return dict(self.data)

    def save_snapshot(
        self, ctx: Any, writer: BinaryIO, files: SnapshotFileCollection, stopped: Stopped
    ) -> None:
        self.in_save.set()
        if self.save_gate is not None:
            assert self.save_gate.wait(10)
        writer.write(json.dumps(ctx, sort_keys=True).encode())

    def recover_from_snapshot(
        self, reader: BinaryIO, files: list[SnapshotFile], stopped: Stopped
    ) -> None:
        self.data = json.loads(reader.read())

    def get_hash(self) -> int:
        return _kv_hash(self.data)


class OnDiskKV(IOnDiskStateMachine, IHash):
    """A dict kept in `<dir>/kv.json` with the index it holds; written whole on sync."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, "kv.json")
        self.data: dict[str, str] = {}
        self.index = 0
        self.seen: list[int] = []
        self.syncs = 0

    def open(self, stopped: Stopped) -> int:
        if os.path.exists(self.path):
            with open(self.path) as f:
                saved = json.load(f)
            self.data, self.index = saved["data"], saved["index"]
        return self.index

    def update(self, entries: list[Entry]) -> list[Entry]:
        for e in entries:
            assert e.index > self.index, "an entry the data already holds came back"
            self.seen.append(e.index)
            e.result = _kv_set(self.data, e.cmd)
            self.index = e.index
        return entries

    def lookup(self, query: Any) -> Any:
        return self.data.get(query)

    def sync(self) -> None:
        self.syncs += 1
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"data": self.data, "index": self.index}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def prepare_snapshot(self) -> Any:
        return {"data": dict(self.data), "index": self.index}

    def save_snapshot(self, ctx: Any, writer: BinaryIO, stopped: Stopped) -> None:
        writer.write(json.dumps(ctx, sort_keys=True).encode())

    def recover_from_snapshot(self, reader: BinaryIO, stopped: Stopped) -> None:
        saved = json.loads(reader.read())
        self.data, self.index = saved["data"], saved["index"]
        self.sync()

    def get_hash(self) -> int:
        return _kv_hash(self.data)

    def close(self) -> None:
        pass


# ---------------------------------------------------------------- entries


class Log:
    """Builds a shard's log: consecutive indexes, term 1, keys equal to indexes."""

    def __init__(self, first: int = 1) -> None:
        self.next = first
        self.entries: list[pb.Entry] = []

    def _add(self, **fields: Any) -> pb.Entry:
        e = pb.Entry(term=1, index=self.next, key=self.next, **fields)
        self.next += 1
        self.entries.append(e)
        return e

    def leader_noop(self) -> pb.Entry:
        return self._add()

    def cmd(self, cmd: bytes, client_id: int = 99) -> pb.Entry:
        """A command through a no-op session."""
        return self._add(client_id=client_id, cmd=cmd)

    def session_cmd(
        self, client_id: int, series_id: int, responded_to: int, cmd: bytes
    ) -> pb.Entry:
        return self._add(
            client_id=client_id, series_id=series_id, responded_to=responded_to, cmd=cmd
        )

    def register(self, client_id: int) -> pb.Entry:
        return self._add(client_id=client_id, series_id=SERIES_ID_REGISTER)

    def unregister(self, client_id: int) -> pb.Entry:
        return self._add(client_id=client_id, series_id=SERIES_ID_UNREGISTER)

    def config(self, cc: pb.ConfigChange) -> pb.Entry:
        return self._add(type=pb.CONFIG_CHANGE, cmd=cc.SerializeToString())

    def add_node(self, replica_id: int, initialize: bool = False) -> pb.Entry:
        return self.config(
            pb.ConfigChange(
                type=pb.ADD_NODE,
                replica_id=replica_id,
                address=f"127.0.0.1:{20000 + replica_id}",
                initialize=initialize,
            )
        )

    def metadata(self) -> pb.Entry:
        return self._add(type=pb.METADATA, client_id=99)

    def bootstrap(self, replicas: int = 3) -> list[pb.Entry]:
        return [self.add_node(r, initialize=True) for r in range(1, replicas + 1)]
