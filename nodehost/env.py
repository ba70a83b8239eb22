"""The NodeHost directory: an exclusive lock, a persistent id, and a flag file.

Layout of `node_host_dir`:
    LOCK            flock()ed while a NodeHost uses the directory
    NODEHOST.ID     this NodeHost's id (a UUID), kept across restarts
    nodehost.json   the settings the data was written with; changing them refuses to start
    logdb/          the log store (or NodeHostConfig.wal_dir)
    snapshots/      one directory per replica
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from pathlib import Path

from nodehost.errors import DirectoryLocked, InvalidConfig

FORMAT_VERSION = 1


class Env:
    def __init__(self, node_host_dir: str, wal_dir: str, raft_address: str, deployment_id: int):
        self.root = Path(node_host_dir)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidConfig(f"node_host_dir {node_host_dir!r}: {exc}") from exc
        self._lock_fd = os.open(self.root / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise DirectoryLocked(
                f"{node_host_dir} is used by another NodeHost (LOCK is held)"
            ) from None
        try:
            self.node_host_id = self._load_id()
            self._check_flags(raft_address, deployment_id)
        except BaseException:
            self.close()
            raise
        self.logdb_dir = Path(wal_dir) if wal_dir else self.root / "logdb"
        self.snapshot_root = self.root / "snapshots"
        self.snapshot_root.mkdir(exist_ok=True)

    def snapshot_dir(self, shard_id: int, replica_id: int) -> Path:
        return self.snapshot_root / f"shard-{shard_id}-replica-{replica_id}"

    def tombstone(self, shard_id: int, replica_id: int) -> Path:
        """Present once a replica's data was removed: it can never start again."""
        return self.snapshot_root / f"shard-{shard_id}-replica-{replica_id}.removed"

    def close(self) -> None:
        if self._lock_fd >= 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _load_id(self) -> str:
        path = self.root / "NODEHOST.ID"
        if path.exists():
            text = path.read_text().strip()
            try:
                return str(uuid.UUID(text))
            except ValueError as exc:
                raise InvalidConfig(f"{path} holds no NodeHost id: {text[:40]!r}") from exc
        node_host_id = str(uuid.uuid4())
        _write_atomic(path, node_host_id + "\n")
        return node_host_id

    def _check_flags(self, raft_address: str, deployment_id: int) -> None:
        path = self.root / "nodehost.json"
        wanted = {
            "format": FORMAT_VERSION,
            "raft_address": raft_address,
            "deployment_id": deployment_id,
        }
        if not path.exists():
            _write_atomic(path, json.dumps(wanted, indent=1) + "\n")
            return
        try:
            found = json.loads(path.read_text())
            if not isinstance(found, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            raise InvalidConfig(f"{path} is damaged: {exc}") from exc
        if found.get("format") != FORMAT_VERSION:
            raise InvalidConfig(
                f"{path}: data format {found.get('format')!r}, this version reads {FORMAT_VERSION}"
            )
        for key in ("raft_address", "deployment_id"):
            if found.get(key) != wanted[key]:
                raise InvalidConfig(
                    f"{key} is {wanted[key]!r} but the data in {self.root} was written with "
                    f"{found.get(key)!r}; other replicas know this NodeHost by the old value"
                )


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
