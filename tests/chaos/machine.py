"""The replicated object of the chaos suite: a map of registers, strings and sets.

Commands are compact JSON so a history line and a log entry say the same thing:
  {"op": "put", "k", "v"}           -> Result(0)
  {"op": "cas", "k", "old", "v"}    -> Result(1) if the value was `old` (None: absent)
  {"op": "delete", "k"}             -> Result(0)
  {"op": "append", "k", "v"}        -> Result(len of the new string)
  {"op": "add", "k", "v"}           -> Result(size of the set)
Queries: ("get", k) -> value or None | ("dump", prefix) -> {key: value} of the keys
starting with `prefix` (sets as sorted lists).

Deterministic and hashable (IHash): replicas that applied the same entries have equal
hashes, which is what the suite compares after every run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, BinaryIO

from statemachine import Entry, IHash, IStateMachine, Result, SnapshotFile, SnapshotFileCollection


def command(op: str, key: str, value: Any = None, old: Any = None) -> bytes:
    doc: dict[str, Any] = {"op": op, "k": key}
    if value is not None:
        doc["v"] = value
    if op == "cas":
        doc["old"] = old
    return json.dumps(doc, separators=(",", ":")).encode()


class ChaosKV(IStateMachine, IHash):
    def __init__(self, shard_id: int = 0, replica_id: int = 0) -> None:
        self.data: dict[str, Any] = {}

    def update(self, entry: Entry) -> Result:
        cmd = json.loads(entry.cmd)
        op, key = cmd["op"], cmd["k"]
        data = self.data
        if op == "put":
            data[key] = cmd["v"]
        elif op == "cas":
            if data.get(key) != cmd["old"]:
                return Result(0)
            data[key] = cmd["v"]
            return Result(1)
        elif op == "delete":
            data.pop(key, None)
        elif op == "append":
            data[key] = data.get(key, "") + cmd["v"]
            return Result(len(data[key]))
        elif op == "add":
            members = data.setdefault(key, [])
            members.append(cmd["v"])
            return Result(len(members))
        else:
            raise ValueError(f"unknown command {op!r}")
        return Result(0)

    def lookup(self, query: Any) -> Any:
        kind = query[0]
        if kind == "get":
            value = self.data.get(query[1])
            return sorted(value) if isinstance(value, list) else value
        if kind == "dump":
            prefix = query[1]
            return {
                k: sorted(v) if isinstance(v, list) else v
                for k, v in self.data.items()
                if k.startswith(prefix)
            }
        raise ValueError(f"unknown query {query!r}")

    def save_snapshot(
        self, writer: BinaryIO, files: SnapshotFileCollection, stopped: Callable[[], bool]
    ) -> None:
        writer.write(json.dumps(self.data, sort_keys=True).encode())

    def recover_from_snapshot(
        self, reader: BinaryIO, files: list[SnapshotFile], stopped: Callable[[], bool]
    ) -> None:
        self.data = json.loads(reader.read())

    def get_hash(self) -> int:
        encoded = json.dumps(self.data, sort_keys=True).encode()
        return int.from_bytes(hashlib.blake2b(encoded, digest_size=8).digest(), "big")
