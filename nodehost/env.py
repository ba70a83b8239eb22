"""The NodeHost directory: an exclusive lock, a persistent id, and a flag file.

Layout of `node_host_dir`:
    LOCK            flock()ed while a NodeHost uses the directory
    NODEHOST.ID     this NodeHost's id (a UUID), kept across restarts
    nodehost.json   the settings the data was written with; changing them refuses to start
    logdb/          the log store (or NodeHostConfig.wal_dir)
    snapshots/      one directory per replica

Rules:
- Every directory problem found at start is an InvalidConfig naming the setting and the
  path: missing permission, a read-only file system, a full disk. A NodeHost that
  started must not fail at its first write for a reason that was already there.
- "Full" means less than MIN_FREE_BYTES can be reserved (fallocate, so quotas count
  too) in node_host_dir and in wal_dir: one memtable flush of the log store writes
  about that much at once.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import uuid
from pathlib import Path

from nodehost.errors import DirectoryLocked, InvalidConfig

FORMAT_VERSION = 1
MIN_FREE_BYTES = 16 * 1024 * 1024
_PROBE = ".nodehost-space-probe"
LOCK_FILE = "LOCK"
ID_FILE = "NODEHOST.ID"
FLAGS_FILE = "nodehost.json"
LOGDB_DIR = "logdb"
SNAPSHOT_ROOT = "snapshots"


def replica_snapshot_dir(root: Path, shard_id: int, replica_id: int) -> Path:
    """Where a replica's snapshot store lives under a NodeHost directory."""
    return root / SNAPSHOT_ROOT / f"shard-{shard_id}-replica-{replica_id}"


def tombstone_path(root: Path, shard_id: int, replica_id: int) -> Path:
    """Present once a replica's data was removed: it can never start again."""
    return root / SNAPSHOT_ROOT / f"shard-{shard_id}-replica-{replica_id}.removed"


def read_flags(root: Path) -> dict[str, object] | None:
    """The settings the data in `root` was written with (nodehost.json); None when
    the file does not exist. Reads only; InvalidConfig when it is damaged."""
    path = root / FLAGS_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        found = json.loads(text)
        if not isinstance(found, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        raise InvalidConfig(f"{path} is damaged: {exc}") from exc
    if found.get("format") != FORMAT_VERSION:
        raise InvalidConfig(
            f"{path}: data format {found.get('format')!r}, this version reads {FORMAT_VERSION}"
        )
    return found


class Env:
    def __init__(
        self,
        node_host_dir: str,
        wal_dir: str,
        raft_address: str,
        deployment_id: int,
        *,
        node_host_id: str = "",
        address_by_node_host_id: bool = False,
    ):
        self.root = Path(node_host_dir)
        self._lock_fd = -1
        with _named("node_host_dir", self.root):
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise DirectoryLocked(
                f"{node_host_dir} is used by another NodeHost (LOCK is held)"
            ) from None
        try:
            with _named("node_host_dir", self.root):
                self.node_host_id = self._load_id(node_host_id)
                self._check_flags(raft_address, deployment_id, address_by_node_host_id)
                check_room(self.root)
                self.snapshot_root = self.root / SNAPSHOT_ROOT
                self.snapshot_root.mkdir(exist_ok=True)
            self.logdb_dir = Path(wal_dir) if wal_dir else self.root / LOGDB_DIR
            if wal_dir:
                with _named("wal_dir", self.logdb_dir):
                    self.logdb_dir.mkdir(parents=True, exist_ok=True)
                    check_room(self.logdb_dir)
        except BaseException:
            self.close()
            raise

    def snapshot_dir(self, shard_id: int, replica_id: int) -> Path:
        return replica_snapshot_dir(self.root, shard_id, replica_id)

    def tombstone(self, shard_id: int, replica_id: int) -> Path:
        """Present once a replica's data was removed: it can never start again."""
        return tombstone_path(self.root, shard_id, replica_id)

    def close(self) -> None:
        if self._lock_fd >= 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _load_id(self, wanted: str) -> str:
        path = self.root / ID_FILE
        if path.exists():
            text = path.read_text().strip()
            try:
                found = str(uuid.UUID(text))
            except ValueError as exc:
                raise InvalidConfig(f"{path} holds no NodeHost id: {text[:40]!r}") from exc
            if wanted and wanted != found:
                raise InvalidConfig(
                    f"node_host_id is {wanted} but the data in {self.root} belongs to "
                    f"NodeHost {found}"
                )
            return found
        node_host_id = wanted or str(uuid.uuid4())
        _write_atomic(path, node_host_id + "\n")
        return node_host_id

    def _check_flags(self, raft_address: str, deployment_id: int, by_node_host_id: bool) -> None:
        """The settings other hosts know this one by must not change under its data: its
        raft_address (unless hosts are addressed by id: then its NodeHost id, which the
        directory keeps), its deployment, and how memberships name hosts."""
        path = self.root / FLAGS_FILE
        wanted: dict[str, object] = {"format": FORMAT_VERSION}
        if by_node_host_id:
            wanted["address_by_node_host_id"] = True
        else:
            wanted["raft_address"] = raft_address
        wanted["deployment_id"] = deployment_id
        found = read_flags(self.root)
        if found is None:
            _write_atomic(path, json.dumps(wanted, indent=1) + "\n")
            return
        if bool(found.get("address_by_node_host_id", False)) != by_node_host_id:
            raise InvalidConfig(
                f"address_by_node_host_id is {by_node_host_id} but the data in {self.root} was "
                f"written with {not by_node_host_id}: its memberships name hosts the other way"
            )
        for key in [k for k in ("raft_address", "deployment_id") if k in wanted]:
            if found.get(key) != wanted[key]:
                raise InvalidConfig(
                    f"{key} is {wanted[key]!r} but the data in {self.root} was written with "
                    f"{found.get(key)!r}; other replicas know this NodeHost by the old value"
                    + (
                        " (with address_by_node_host_id hosts may change address)"
                        if key == "raft_address"
                        else ""
                    )
                )


class _named:
    """Turn an OSError inside the block into InvalidConfig naming the setting and path."""

    def __init__(self, setting: str, path: Path) -> None:
        self._setting = setting
        self._path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, OSError):
            where = ""
            if exc.filename and str(exc.filename) != str(self._path):
                where = f" ({exc.filename})"
            raise InvalidConfig(
                f"{self._setting} {str(self._path)!r}: {exc.strerror or exc}{where}"
            ) from exc


def check_room(directory: Path) -> None:
    """Reserve MIN_FREE_BYTES in `directory` and give them back; OSError (ENOSPC, EROFS,
    EACCES, EDQUOT) when that is not possible."""
    probe = directory / _PROBE
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            os.posix_fallocate(fd, 0, MIN_FREE_BYTES)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise _no_room(directory, exc) from None
            # A file system without fallocate: its free space is the best we can know.
            stat = os.statvfs(directory)
            if stat.f_bavail * stat.f_frsize < MIN_FREE_BYTES:
                full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                raise _no_room(directory, full) from None
    finally:
        os.close(fd)
        try:
            os.unlink(probe)
        except FileNotFoundError:
            pass


def _no_room(directory: Path, exc: OSError) -> OSError:
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return exc
    stat = os.statvfs(directory)
    free = stat.f_bavail * stat.f_frsize
    return OSError(
        exc.errno,
        f"{exc.strerror}: {free // 1024} KiB free, a NodeHost needs "
        f"{MIN_FREE_BYTES // (1024 * 1024)} MiB to start",
        str(directory),
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
