"""A stopped NodeHost's directory, opened by the offline commands.

Rules:
- A directory a running NodeHost holds is refused (HostInUse): its LOCK is flock()ed,
  and the offline commands take the same lock for as long as they work, so a NodeHost
  cannot start under them either.
- `read_only` changes nothing at all: the lock is a shared flock (no write), and the
  log store is opened read-only through a private directory of links to its files,
  because rocksdict rewrites a file of its own in any directory it opens. RocksDB
  replays the write-ahead log in memory, so what a crash left unflushed is seen too.
- `writable` opens the directory as a NodeHost would (nodehost.env.Env: the same lock,
  identity and settings checks) and the log store through its public interface.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from logdb import CorruptionError, LogDBError, RocksLogDB
from nodehost.env import (
    FLAGS_FILE,
    ID_FILE,
    LOCK_FILE,
    LOGDB_DIR,
    Env,
    read_flags,
)
from nodehost.errors import DirectoryLocked, InvalidConfig
from nodehost.tools.errors import HostInUse, ToolError
from nodehost.tools.members import is_node_host_id

_ROCKSDICT_OWN = "rocksdict-config.json"


@dataclass(frozen=True, slots=True)
class HostDirectory:
    """What a NodeHost directory says about the host that wrote it."""

    root: Path
    node_host_id: str
    raft_address: str  # "" when hosts are addressed by NodeHost id
    deployment_id: int
    logdb_dir: Path
    by_node_host_id: bool = False

    @property
    def target(self) -> str:
        """What memberships name this host by."""
        return self.node_host_id if self.by_node_host_id else self.raft_address


@dataclass(frozen=True, slots=True)
class NewHost:
    """How to create the directory of a host that never ran (an import into it): the
    target members name it by, a host:port or (hosts addressed by id) a NodeHost id."""

    target: str
    deployment_id: int = 0

    @property
    def by_node_host_id(self) -> bool:
        return is_node_host_id(self.target)


def _in_use(directory: Path) -> HostInUse:
    return HostInUse(
        f"{directory} is in use by a running NodeHost (its {LOCK_FILE} is held); "
        "stop that host first: offline commands work on a stopped host's directory"
    )


def is_host_directory(directory: Path) -> bool:
    return (directory / ID_FILE).is_file() or (directory / FLAGS_FILE).is_file()


def describe(directory: str | Path, wal_dir: str = "") -> HostDirectory:
    """Read the identity of the host that wrote `directory`; reads only."""
    root = Path(directory).absolute()
    if not root.is_dir():
        raise ToolError(f"{root} is not a directory")
    if not is_host_directory(root):
        raise ToolError(f"{root} is not a NodeHost directory (it has no {ID_FILE})")
    try:
        flags = read_flags(root) or {}
        node_host_id = (root / ID_FILE).read_text().strip() if (root / ID_FILE).exists() else ""
    except (InvalidConfig, OSError) as exc:
        raise ToolError(f"cannot read {root}: {exc}") from None
    address = flags.get("raft_address")
    deployment = flags.get("deployment_id", 0)
    if not isinstance(deployment, int):
        raise ToolError(f"{root / FLAGS_FILE}: deployment_id {deployment!r} is not an integer")
    return HostDirectory(
        root=root,
        node_host_id=node_host_id,
        raft_address=address if isinstance(address, str) else "",
        deployment_id=deployment,
        logdb_dir=Path(wal_dir).absolute() if wal_dir else root / LOGDB_DIR,
        by_node_host_id=bool(flags.get("address_by_node_host_id", False)),
    )


def _no_store(host: HostDirectory, wal_dir: str) -> ToolError:
    hint = "" if wal_dir else " (if the host keeps its log elsewhere, give --wal-dir)"
    return ToolError(f"{host.logdb_dir} holds no log store{hint}")


def _store_error(host: HostDirectory, exc: LogDBError) -> ToolError:
    if isinstance(exc, CorruptionError):
        return ToolError(
            f"the log store of {host.root} is damaged and was not read: {exc}. Its replicas "
            "cannot be used; recover the shard from another member"
        )
    return ToolError(f"cannot open the log store of {host.root}: {exc}")


@contextlib.contextmanager
def _shared_lock(root: Path) -> Iterator[None]:
    path = root / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield  # no NodeHost ever ran here, so none holds it
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _in_use(root) from None
        yield
    finally:
        os.close(fd)  # releases the flock


@contextlib.contextmanager
def read_only(
    directory: str | Path, wal_dir: str = ""
) -> Iterator[tuple[HostDirectory, RocksLogDB]]:
    """The host's identity and its log store, opened without changing a byte."""
    host = describe(directory, wal_dir)
    with _shared_lock(host.root):
        if not (host.logdb_dir / "CURRENT").is_file():
            raise _no_store(host, wal_dir)
        shadow = tempfile.mkdtemp(prefix="nodehost-inspect-")
        try:
            for name in os.listdir(host.logdb_dir):
                if name != _ROCKSDICT_OWN:
                    os.symlink(host.logdb_dir / name, os.path.join(shadow, name))
            try:
                logdb = RocksLogDB(shadow, host.deployment_id, read_only=True)
            except LogDBError as exc:
                raise _store_error(host, exc) from None
            try:
                yield host, logdb
            finally:
                logdb.close()
        finally:
            shutil.rmtree(shadow, ignore_errors=True)


@contextlib.contextmanager
def writable(
    directory: str | Path, wal_dir: str = "", *, create: NewHost | None = None
) -> Iterator[tuple[HostDirectory, Env, RocksLogDB]]:
    """The host's directory opened as a NodeHost opens it (locked), and its log store.

    `create` allows a directory that holds no NodeHost yet: it is set up for a host
    at `create.raft_address`, as that host's first start would.
    """
    root = Path(directory).absolute()
    if root.exists() and not root.is_dir():
        raise ToolError(f"{root} is not a directory")
    fresh = not (root.is_dir() and is_host_directory(root))
    if fresh:
        if create is None:
            raise ToolError(f"{root} is not a NodeHost directory (it has no {ID_FILE})")
        if root.is_dir() and any(root.iterdir()):
            raise ToolError(f"{root} is not empty and holds no NodeHost; give an empty directory")
        by_id, deployment = create.by_node_host_id, create.deployment_id
        address = "" if by_id else create.target
        wanted_id = create.target if by_id else ""
    else:
        found = describe(root, wal_dir)
        address, deployment = found.raft_address, found.deployment_id
        by_id, wanted_id = found.by_node_host_id, ""
    try:
        env = Env(
            str(root),
            wal_dir,
            address,
            deployment,
            node_host_id=wanted_id,
            address_by_node_host_id=by_id,
        )
    except DirectoryLocked:
        raise _in_use(root) from None
    except InvalidConfig as exc:
        raise ToolError(f"cannot open {root}: {exc}") from None
    try:
        host = HostDirectory(root, env.node_host_id, address, deployment, env.logdb_dir, by_id)
        if not fresh and not (env.logdb_dir / "CURRENT").is_file():
            raise _no_store(host, wal_dir)
        try:
            logdb = RocksLogDB(str(env.logdb_dir), deployment)
        except LogDBError as exc:
            raise _store_error(host, exc) from None
        try:
            yield host, env, logdb
        finally:
            logdb.close()
    finally:
        env.close()
