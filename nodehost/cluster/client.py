"""A blocking client of a member: its control socket, or its network listener.

    client = Client.local("/tmp/mc1")                     # HTTP over control.socket
    client = Client.remote("/tmp/mc2", "127.0.0.1:9001")  # HTTPS with mc2's certificate
    client.members(); client.add_token("mc2"); client.request("POST", "/1.0/extended")

Rules:
- One request per connection, JSON in and out. An answer is {"type": "sync",
  "status_code": 200, "metadata": ...} or {"type": "error", "error_code": 409,
  "error": "..."}; an error is raised as the ClusterError class of its status.
- A member that cannot be reached, a daemon that is not running, a member that does not
  present the cluster's certificate, or one that refuses ours, each has its own message.
- Every call is bounded by a timeout; answers are bounded in size.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nodehost.cluster.errors import (
    BadRequest,
    ClusterError,
    Forbidden,
    Unavailable,
    Unreachable,
    error_for_status,
)
from nodehost.cluster.names import check_address
from nodehost.cluster.pem import fingerprint_der
from nodehost.cluster.statedir import StateDir
from nodehost.cluster.tls import member_client_context, unverified_client_context

NOTIFICATION_HEADER = "X-Nodehost-Notification"
MAX_ANSWER = 64 * 1024 * 1024
DEFAULT_TIMEOUT = 30.0


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self._path))
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class _PinnedConnection(http.client.HTTPSConnection):
    """HTTPS that checks the server certificate's fingerprint before the request leaves."""

    def __init__(
        self, host: str, port: int, context: ssl.SSLContext, pin: str | None, timeout: float
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._pin = pin

    def connect(self) -> None:
        super().connect()
        if self._pin is None:
            return
        assert isinstance(self.sock, ssl.SSLSocket)
        der = self.sock.getpeercert(binary_form=True)
        seen = fingerprint_der(der) if der else "none"
        if seen != self._pin:
            self.sock.close()
            raise _FingerprintMismatch(seen)


class WrongCluster(Forbidden):
    """The member presented a certificate other than the one the caller pinned."""


class _FingerprintMismatch(Exception):
    def __init__(self, seen: str) -> None:
        super().__init__(seen)
        self.seen = seen


class Client:
    def __init__(
        self,
        *,
        socket_path: Path | None = None,
        address: str | None = None,
        context: ssl.SSLContext | None = None,
        pin: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._socket_path = socket_path
        self._address = address
        self._context = context
        self._pin = pin
        self.timeout = timeout

    # ------------------------------------------------------------------ constructors

    @classmethod
    def local(cls, state_dir: str | Path, timeout: float = DEFAULT_TIMEOUT) -> Client:
        """The daemon running with `state_dir`, over its control socket."""
        return cls(socket_path=StateDir(state_dir).control_socket, timeout=timeout)

    @classmethod
    def remote(
        cls, state_dir: str | Path, address: str, timeout: float = DEFAULT_TIMEOUT
    ) -> Client:
        """The member at `address`, called with the identity of the member in `state_dir`
        (which must have joined the same cluster)."""
        check_address(address)
        layout = StateDir(state_dir)
        if not layout.cluster_certificate.exists():
            raise Unavailable(f"{layout.root} holds no cluster membership: initialize it first")
        context = member_client_context(
            layout.cluster_certificate, layout.server_certificate, layout.server_key
        )
        return cls(address=address, context=context, timeout=timeout)

    @classmethod
    def pinned(cls, address: str, fingerprint: str, timeout: float = 10.0) -> Client:
        """A member known only by the fingerprint of the certificate it must present."""
        check_address(address)
        return cls(
            address=address, context=unverified_client_context(), pin=fingerprint, timeout=timeout
        )

    @property
    def target(self) -> str:
        return str(self._socket_path) if self._socket_path is not None else str(self._address)

    # ------------------------------------------------------------------ core calls

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        query: Mapping[str, str] | None = None,
        notification: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Send one request; the answer's metadata, or the ClusterError it carries."""
        if not path.startswith("/"):
            raise BadRequest(f"path {path!r} must start with '/'")
        if query:
            path = f"{path}?{urllib.parse.urlencode(dict(query))}"
        headers = {"Accept": "application/json", "User-Agent": "nodehost-cluster"}
        payload: bytes | None = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if notification:
            headers[NOTIFICATION_HEADER] = "1"
        connection = self._connection(self.timeout if timeout is None else timeout)
        try:
            try:
                connection.request(method, path, body=payload, headers=headers)
                response = connection.getresponse()
                data = response.read(MAX_ANSWER + 1)
            except _FingerprintMismatch as exc:
                raise WrongCluster(
                    f"{self.target} presented a certificate with fingerprint {exc.seen}, "
                    f"not the cluster's ({self._pin}): refusing to talk to it"
                ) from None
            except (ssl.SSLEOFError, ConnectionResetError) as exc:
                raise self._cut_off(exc) from None
            except ssl.SSLError as exc:
                raise self._tls_error(exc) from None
            except FileNotFoundError:
                raise Unreachable(
                    f"the daemon is not running: no control socket at {self._socket_path}"
                ) from None
            except ConnectionRefusedError:
                raise Unreachable(
                    f"the daemon is not running: {self._socket_path} refuses connections"
                    if self._socket_path is not None
                    else f"member {self._address} is unreachable: connection refused"
                ) from None
            except TimeoutError:
                raise Unreachable(f"{self.target} did not answer in time") from None
            except (OSError, http.client.HTTPException) as exc:
                raise Unreachable(
                    f"{self.target} is unreachable: {exc or type(exc).__name__}"
                ) from None
        finally:
            connection.close()
        if len(data) > MAX_ANSWER:
            raise ClusterError(f"{self.target} sent an answer larger than {MAX_ANSWER} bytes")
        return _metadata(self.target, response.status, data)

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._socket_path is not None:
            return _UnixConnection(self._socket_path, timeout)
        assert self._address is not None and self._context is not None
        host, port = check_address(self._address)
        return _PinnedConnection(host.strip("[]"), port, self._context, self._pin, timeout)

    def _cut_off(self, exc: OSError) -> ClusterError:
        """The member hung up. A daemon's listener refuses an untrusted certificate by
        closing the connection in the handshake (asyncio drops TLS's alert), so when it
        still lets in a caller without a certificate, ours is what it refused."""
        if self._pin is not None or self._address is None or self._socket_path is not None:
            return Unreachable(f"{self.target} closed the connection: {exc}")
        host, port = check_address(self._address)
        try:
            probe = _PinnedConnection(
                host.strip("[]"), port, unverified_client_context(), None, 5.0
            )
            try:
                probe.connect()
            finally:
                probe.close()
        except (OSError, ssl.SSLError):
            return Unreachable(f"{self.target} closed the connection: {exc}")
        return Forbidden(
            f"{self.target} does not trust this member's certificate "
            "(the member is not, or no longer, in its cluster)"
        )

    def _tls_error(self, exc: ssl.SSLError) -> ClusterError:
        text = str(exc)
        if "UNKNOWN_CA" in text or "CERTIFICATE_UNKNOWN" in text or "BAD_CERTIFICATE" in text:
            return Forbidden(
                f"{self.target} does not trust this member's certificate "
                "(the member is not, or no longer, in its cluster)"
            )
        if "CERTIFICATE_VERIFY_FAILED" in text:
            return Forbidden(f"{self.target} did not present this cluster's certificate")
        return Unreachable(f"{self.target}: TLS failed: {text}")

    # ------------------------------------------------------------------ the control API

    def status(self) -> dict[str, Any]:
        return dict(self.request("GET", "/core/control/status"))

    def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until the daemon answers and its database is ready (or uninitialized)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                status = self.status()
                if status["database"] in ("ready", "uninitialized"):
                    return status
                problem: ClusterError = Unavailable(
                    f"database is {status['database']}: {status['detail']}"
                )
            except Unreachable as exc:
                problem = exc
            if time.monotonic() >= deadline:
                raise problem
            time.sleep(0.1)

    def bootstrap(
        self, name: str, address: str, config: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        body = {"name": name, "address": address, "bootstrap": True, "config": dict(config or {})}
        return dict(self.request("POST", "/core/control/init", body, timeout=120.0))

    def join(
        self, name: str, address: str, token: str, config: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        body = {"name": name, "address": address, "token": token, "config": dict(config or {})}
        return dict(self.request("POST", "/core/control/init", body, timeout=180.0))

    def members(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/core/control/members"))

    def remove_member(self, name: str, force: bool = False) -> None:
        quoted = urllib.parse.quote(name, safe="")
        self.request(
            "DELETE",
            f"/core/control/members/{quoted}",
            query={"force": "1"} if force else None,
            timeout=120.0,
        )

    def add_token(self, name: str, expire_after: str = "3h") -> str:
        return str(
            self.request(
                "POST", "/core/control/tokens", {"name": name, "expire_after": expire_after}
            )
        )

    def tokens(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/core/control/tokens"))

    def revoke_token(self, name: str) -> None:
        self.request("DELETE", f"/core/control/tokens/{urllib.parse.quote(name, safe='')}")

    def sql(self, query: str) -> dict[str, Any]:
        return dict(self.request("POST", "/core/control/sql", {"query": query}))

    def shutdown(self) -> None:
        self.request("POST", "/core/control/shutdown")


def _metadata(target: str, status: int, data: bytes) -> Any:
    try:
        document = json.loads(data)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        if status >= 400:
            raise error_for_status(status, f"{target}: HTTP {status}")
        raise ClusterError(f"{target} sent an answer that is not JSON")
    if document.get("type") == "error" or status >= 400:
        message = document.get("error")
        raise error_for_status(
            int(document.get("error_code") or status),
            str(message) if message else f"{target}: HTTP {status}",
        )
    return document.get("metadata")
