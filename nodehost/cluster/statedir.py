"""The state directory of one member: what is where, written so a crash leaves no half file.

    control.socket            HTTP over a unix socket, mode 0600 (owner only)
    daemon.lock               held (flock) by the running daemon: one daemon per directory
    daemon.json               {"name", "address"}: written last by init, so its presence
                              means "this member belongs to a cluster"
    server.crt / server.key   the member's own identity (self-signed)
    cluster.crt / cluster.key the cluster's certificate and key (handed over on join)
    database.crt              the member's database certificate, signed by the cluster key
    truststore.json           the members this one trusts (name, address, certificate)
    database/                 the replicated SQLite member (Raft log and SQLite files)

Rules: the directory is created 0700; private keys are 0600; every file is written to a
temporary name, fsynced and renamed; a file that exists but cannot be parsed is an error
naming the file, never silently replaced.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodehost.cluster.errors import ClusterError
from nodehost.cluster.pem import KeyPair

MAX_SOCKET_PATH = 107  # sun_path is 108 bytes with the terminating NUL


class StateDirError(ClusterError):
    """The state directory is unusable: locked by another daemon, unreadable, bad files."""


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    name: str
    address: str


class StateDir:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.control_socket = self.root / "control.socket"
        self.lock_file = self.root / "daemon.lock"
        self.config_file = self.root / "daemon.json"
        self.server_certificate = self.root / "server.crt"
        self.server_key = self.root / "server.key"
        self.cluster_certificate = self.root / "cluster.crt"
        self.cluster_key = self.root / "cluster.key"
        self.database_certificate = self.root / "database.crt"
        self.truststore = self.root / "truststore.json"
        self.database = self.root / "database"
        self._lock_fd: int | None = None

    # ------------------------------------------------------------------ lifetime

    def create(self) -> None:
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StateDirError(f"cannot create the state directory {self.root}: {exc}") from None
        if len(os.fsencode(self.control_socket)) > MAX_SOCKET_PATH:
            raise StateDirError(
                f"the state directory {self.root} is too long for a unix socket path "
                f"(at most {MAX_SOCKET_PATH - len('/control.socket')} bytes)"
            )

    def lock(self) -> None:
        """Hold the directory for this process; another daemon on it is refused."""
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateDirError(
                f"another daemon is running with the state directory {self.root}"
            ) from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ------------------------------------------------------------------ config

    def load_config(self) -> DaemonConfig | None:
        data = self.read_json(self.config_file)
        if data is None:
            return None
        name, address = data.get("name"), data.get("address")
        if not isinstance(name, str) or not isinstance(address, str):
            raise StateDirError(f"{self.config_file}: expected a name and an address")
        return DaemonConfig(name, address)

    def save_config(self, config: DaemonConfig) -> None:
        self.write_json(self.config_file, {"name": config.name, "address": config.address})

    # ------------------------------------------------------------------ key pairs

    def load_pair(self, certificate: Path, key: Path) -> KeyPair | None:
        if not certificate.exists() and not key.exists():
            return None
        try:
            return KeyPair(certificate.read_text(), key.read_text())
        except OSError as exc:
            raise StateDirError(f"cannot read {certificate.name}/{key.name}: {exc}") from None

    def save_pair(self, pair: KeyPair, certificate: Path, key: Path) -> None:
        self.write(key, pair.key, private=True)
        self.write(certificate, pair.certificate)

    # ------------------------------------------------------------------ files

    def read_json(self, path: Path) -> dict[str, Any] | None:
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateDirError(f"cannot read {path}: {exc}") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise StateDirError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise StateDirError(f"{path}: expected a JSON object")
        return data

    def write_json(self, path: Path, data: object) -> None:
        self.write(path, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def write(self, path: Path, text: str, *, private: bool = False) -> None:
        temporary = path.with_name(path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
        directory = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def remove_membership(self) -> None:
        """Forget the cluster: everything but the lock and the socket, so the next init
        starts from nothing (a new identity too: its certificate carries the old name)."""
        for path in (
            self.config_file,
            self.cluster_certificate,
            self.cluster_key,
            self.database_certificate,
            self.truststore,
            self.server_certificate,
            self.server_key,
        ):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.database, ignore_errors=True)
