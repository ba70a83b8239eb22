"""A client of a running NodeHost's admin service (NodeHostConfig.admin_address).

    with AdminClient("unix:/var/lib/myapp/admin.sock") as admin:
        admin.info(); admin.members(1); admin.add(1, 4, "10.0.0.4:63001")

Over TCP it needs mutual TLS: the CA that signed the cluster's certificates and a
certificate of its own from that CA (the files a NodeHost of the cluster uses will do).
Blocking, one request at a time; every call is bounded by `timeout` plus a margin for
the answer to travel. Errors are ToolErrors: AdminError when the NodeHost refused or
failed the operation (`kind` names its error), ConnectionFailed when it was not reached.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Callable
from typing import Any, TypeVar

from nodehost.admin import protocol
from nodehost.admin.address import AdminAddress
from nodehost.admin.values import (
    HostInfo,
    LeaderView,
    MalformedValue,
    MembershipView,
    SnapshotView,
)
from nodehost.errors import InvalidConfig
from nodehost.tools.errors import AdminError, ConnectionFailed, ToolError

T = TypeVar("T")
CONNECT_SECONDS = 5.0
MARGIN_SECONDS = 5.0


def client_tls_context(ca_file: str, cert_file: str, key_file: str) -> ssl.SSLContext:
    for name, path in (
        ("--ca-file", ca_file),
        ("--cert-file", cert_file),
        ("--key-file", key_file),
    ):
        if not path:
            raise ToolError(f"a TCP admin address needs mutual TLS: {name} is missing")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_verify_locations(cafile=ca_file)
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ToolError(f"cannot load the TLS files: {exc}") from None
    return context


class AdminClient:
    def __init__(
        self,
        address: str,
        *,
        ca_file: str = "",
        cert_file: str = "",
        key_file: str = "",
        server_name: str = "",
        timeout: float = 10.0,
    ) -> None:
        try:
            self.address = AdminAddress.parse(address, "admin address")
        except InvalidConfig as exc:
            raise ToolError(str(exc)) from None
        if not timeout > 0:
            raise ToolError(f"timeout must be positive, got {timeout}")
        self.timeout = timeout
        self._tls: ssl.SSLContext | None = None
        self._server_name = server_name or self.address.host
        if not self.address.is_unix:
            self._tls = client_tls_context(ca_file, cert_file, key_file)
        self._sock: socket.socket | None = None

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # ------------------------------------------------------------------ operations

    def info(self) -> HostInfo:
        """The host's id and address, and every replica it runs (its own view)."""
        return self._value(HostInfo.from_json, self.call("info", {}))

    def members(self, shard_id: int, *, local: bool = False) -> MembershipView:
        """The shard's membership: a linearizable read, or with `local` this replica's
        view without asking a quorum (for a shard that lost its quorum)."""
        args: dict[str, Any] = {"shard_id": shard_id, "timeout": self.timeout, "local": local}
        return self._value(MembershipView.from_json, self.call("members", args))

    def leader(self, shard_id: int) -> LeaderView:
        return self._value(LeaderView.from_json, self.call("leader", {"shard_id": shard_id}))

    def add(
        self,
        shard_id: int,
        replica_id: int,
        target: str,
        *,
        role: str = "voter",
        config_change_index: int = 0,
    ) -> MembershipView:
        """Add a replica ("voter", "non-voting" or "witness"); the membership after."""
        args = {
            "shard_id": shard_id,
            "replica_id": replica_id,
            "target": target,
            "role": role,
            "config_change_index": config_change_index,
            "timeout": self.timeout,
        }
        return self._value(MembershipView.from_json, self.call("add", args))

    def remove(
        self, shard_id: int, replica_id: int, *, config_change_index: int = 0
    ) -> MembershipView:
        args = {
            "shard_id": shard_id,
            "replica_id": replica_id,
            "config_change_index": config_change_index,
            "timeout": self.timeout,
        }
        return self._value(MembershipView.from_json, self.call("remove", args))

    def transfer(self, shard_id: int, replica_id: int) -> LeaderView:
        """Move leadership to `replica_id`; returns once it leads (Timeout otherwise)."""
        args = {"shard_id": shard_id, "replica_id": replica_id, "timeout": self.timeout}
        return self._value(LeaderView.from_json, self.call("transfer", args))

    def snapshot(self, shard_id: int, export_path: str | None = None) -> SnapshotView:
        """Snapshot the shard now; with `export_path` (absolute, on the NodeHost's machine)
        the snapshot is exported there for backup or `import`."""
        args = {"shard_id": shard_id, "export_path": export_path or "", "timeout": self.timeout}
        return self._value(SnapshotView.from_json, self.call("snapshot", args))

    def stop(self, shard_id: int) -> dict[str, Any]:
        """Stop this host's replica of the shard (not a membership change)."""
        return self._object(self.call("stop", {"shard_id": shard_id}))

    def remove_data(self, shard_id: int, replica_id: int) -> dict[str, Any]:
        """Delete a stopped replica's data on the host (NodeHost.sync_remove_data)."""
        args = {"shard_id": shard_id, "replica_id": replica_id, "timeout": self.timeout}
        return self._object(self.call("remove_data", args))

    # ------------------------------------------------------------------ exchange

    def call(self, op: str, args: dict[str, Any]) -> Any:
        """Send one request and return its `ok` value; AdminError for an error answer."""
        sock = self._connected()
        try:
            sock.settimeout(self.timeout + MARGIN_SECONDS)
            sock.sendall(protocol.encode(protocol.request(op, args)))
            prefix = self._read(sock, protocol.LENGTH_SIZE)
            answer = protocol.decode(self._read(sock, protocol.frame_length(prefix)))
        except TimeoutError:
            self.close()
            raise ConnectionFailed(
                f"{self.address} did not answer {op} within {self.timeout + MARGIN_SECONDS:g}s"
            ) from None
        except protocol.FrameError as exc:
            self.close()
            raise ConnectionFailed(
                f"{self.address} answered {op} with a bad frame: {exc}"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            self.close()
            raise ConnectionFailed(f"the connection to {self.address} broke: {exc}") from None
        if "error" in answer:
            error = answer["error"]
            if not isinstance(error, dict):
                raise ConnectionFailed(f"{self.address} answered {op} with a malformed error")
            raise AdminError(str(error.get("kind", "Error")), str(error.get("message", "")))
        if "ok" not in answer:
            raise ConnectionFailed(f"{self.address} answered {op} with neither ok nor error")
        return answer["ok"]

    def _value(self, read: Callable[[Any], T], data: Any) -> T:
        try:
            return read(data)
        except MalformedValue as exc:
            raise ConnectionFailed(f"{self.address} sent a malformed answer: {exc}") from None

    def _object(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise ConnectionFailed(f"{self.address} sent a malformed answer: {data!r}")
        return data

    def _read(self, sock: socket.socket, size: int) -> bytes:
        chunks = []
        while size:
            chunk = sock.recv(min(size, 1 << 16))
            if not chunk:
                raise ConnectionError("the service closed the connection")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def _connected(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        address = self.address
        try:
            if address.unix_path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(CONNECT_SECONDS)
                try:
                    sock.connect(address.unix_path)
                except BaseException:
                    sock.close()
                    raise
            else:
                raw = socket.create_connection((address.host, address.port), CONNECT_SECONDS)
                assert self._tls is not None
                try:
                    sock = self._tls.wrap_socket(raw, server_hostname=self._server_name)
                except BaseException:
                    raw.close()
                    raise
        except PermissionError:
            raise ConnectionFailed(
                f"permission denied on {address}: only the NodeHost's user and root may use "
                "its admin socket"
            ) from None
        except ssl.SSLError as exc:
            raise ConnectionFailed(f"TLS with {address} failed: {exc.reason or exc}") from None
        except (FileNotFoundError, ConnectionRefusedError):
            raise ConnectionFailed(
                f"nothing serves {address}: is the NodeHost running, with admin_address set?"
            ) from None
        except OSError as exc:
            raise ConnectionFailed(f"cannot reach {address}: {exc.strerror or exc}") from None
        self._sock = sock
        return sock


def default_address() -> str:
    """The admin address from the environment (NODEHOST_ADMIN), or ""."""
    return os.environ.get("NODEHOST_ADMIN", "")
