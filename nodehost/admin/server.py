"""The admin service: what the `nodehost` command talks to, served by a NodeHost only when
NodeHostConfig.admin_address is set.

Rules (nobody who cannot already control the host may change membership through it):
- A unix socket is made owner-only (0600) before anyone can reach it: it is bound in a
  fresh 0700 directory, its mode set, then renamed into place. Every connection's peer
  credentials (SO_PEERCRED) are checked too: only this process's user and root are
  served, whatever the socket's mode becomes later.
- TCP is served only with mutual TLS, from the transport's own files: the client must
  present a certificate signed by the cluster's CA, as a peer NodeHost must. A client
  without one fails the TLS handshake and never reaches a handler.
- The service runs on its own thread and event loop: a slow or hostile client never
  touches the engine loop. Handlers run on a small pool of worker threads through the
  NodeHost's public, thread-safe API. Connections are bounded in number, frames in
  size, and idle connections and TLS handshakes in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import stat
import struct
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from nodehost.admin import protocol
from nodehost.admin.address import AdminAddress
from nodehost.admin.handlers import HANDLERS, BadArgument, NodeHost
from nodehost.errors import InvalidConfig, RaftError

log = logging.getLogger("nodehost.admin")

MAX_CONNECTIONS = 32
WORKERS = 4
IDLE_SECONDS = 300.0
HANDSHAKE_SECONDS = 10.0
START_SECONDS = 10.0
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def server_tls_context(ca_file: str, cert_file: str, key_file: str) -> ssl.SSLContext:
    """TLS that demands a client certificate signed by `ca_file`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
        context.load_verify_locations(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidConfig(f"admin_address: cannot load the TLS files: {exc}") from None
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class AdminServer:
    """Serves the admin operations of one NodeHost on `address`."""

    def __init__(self, nh: NodeHost, address: AdminAddress, tls: ssl.SSLContext | None) -> None:
        if not address.is_unix and tls is None:
            raise InvalidConfig("admin_address: a TCP admin service needs mutual_tls")
        self._nh = nh
        self.address = address
        self._tls = tls
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._workers = ThreadPoolExecutor(WORKERS, thread_name_prefix="nodehost-admin")
        self._connections: set[asyncio.Task[None]] = set()
        self._socket_identity: tuple[int, int] | None = None  # (st_dev, st_ino) of ours
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Bind and serve; InvalidConfig when the address cannot be used."""
        self._thread = threading.Thread(target=self._run, name="nodehost-admin", daemon=True)
        self._thread.start()
        if not self._started.wait(START_SECONDS):
            raise InvalidConfig(f"admin_address: {self.address} did not start serving")
        if self._start_error is not None:
            self._thread.join(START_SECONDS)
            if isinstance(self._start_error, InvalidConfig):
                raise self._start_error
            raise InvalidConfig(f"admin_address: {self._start_error}") from self._start_error
        log.info("admin service on %s", self.address)

    def close(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(START_SECONDS)
            self._thread = None
        self._workers.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        try:
            if self.address.unix_path is not None:
                sock = self._bind_unix(self.address.unix_path)
                self._server = await asyncio.start_unix_server(self._connection, sock=sock)
            else:
                self._server = await asyncio.start_server(
                    self._connection,
                    self.address.host,
                    self.address.port,
                    ssl=self._tls,
                    ssl_handshake_timeout=HANDSHAKE_SECONDS,
                    reuse_address=True,
                )
                self.port = self._server.sockets[0].getsockname()[1]
        except (OSError, InvalidConfig) as exc:
            self._start_error = exc
            self._started.set()
            return
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()
            self._unlink_socket()

    # ------------------------------------------------------------------ unix socket

    def _bind_unix(self, path: str) -> socket.socket:
        """A listening socket at `path` that only its owner can connect to."""
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            raise InvalidConfig(f"admin_address: directory {parent!r} does not exist")
        self._clear_stale(path)
        private = tempfile.mkdtemp(prefix=".nodehost-admin-", dir=parent)  # mode 0700
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            staged = os.path.join(private, "socket")
            sock.bind(staged)
            os.chmod(staged, 0o600)
            os.rename(staged, path)
            sock.listen(MAX_CONNECTIONS)
            info = os.stat(path)
            self._socket_identity = (info.st_dev, info.st_ino)
        except BaseException:
            sock.close()
            raise
        finally:
            with contextlib.suppress(OSError):
                os.rmdir(private)
        sock.setblocking(False)
        return sock

    @staticmethod
    def _clear_stale(path: str) -> None:
        """Remove a socket left by a process that died; refuse anything else."""
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(info.st_mode):
            raise InvalidConfig(f"admin_address: {path!r} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            os.unlink(path)  # nobody listens: a leftover
            return
        except OSError as exc:
            raise InvalidConfig(f"admin_address: {path!r}: {exc.strerror or exc}") from None
        finally:
            probe.close()
        raise InvalidConfig(f"admin_address: {path!r} is in use by another process")

    def _unlink_socket(self) -> None:
        path = self.address.unix_path
        if path is None or self._socket_identity is None:
            return
        with contextlib.suppress(OSError):
            info = os.lstat(path)
            if (info.st_dev, info.st_ino) == self._socket_identity:
                os.unlink(path)

    def _peer_allowed(self, writer: asyncio.StreamWriter) -> str | None:
        """None when the peer may use the service, else why not."""
        if self.address.unix_path is None:
            return None  # the TLS handshake checked the client's certificate
        sock = writer.get_extra_info("socket")
        try:
            raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        except (OSError, AttributeError) as exc:
            return f"cannot read the peer's credentials: {exc}"
        pid, uid, _ = _PEERCRED.unpack(raw)
        if uid in (os.geteuid(), 0):
            return None
        return f"user {uid} (pid {pid}) is neither this NodeHost's user nor root"

    # ------------------------------------------------------------------ connections

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= MAX_CONNECTIONS:
            log.warning("admin: refused a connection: %d already open", MAX_CONNECTIONS)
            writer.close()
            return
        self._connections.add(task)
        try:
            refused = self._peer_allowed(writer)
            if refused is not None:
                log.warning("admin: refused a connection: %s", refused)
                await self._send(writer, protocol.error(protocol.PERMISSION_DENIED, refused))
                return
            while True:
                try:
                    async with asyncio.timeout(IDLE_SECONDS):
                        prefix = await reader.readexactly(protocol.LENGTH_SIZE)
                        body = await reader.readexactly(protocol.frame_length(prefix))
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                except protocol.FrameError as exc:
                    await self._send(writer, protocol.error(protocol.BAD_REQUEST, str(exc)))
                    return
                try:
                    document = protocol.decode(body)
                except protocol.FrameError as exc:
                    await self._send(writer, protocol.error(protocol.BAD_REQUEST, str(exc)))
                    return
                await self._send(writer, await self._answer(document))
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _send(self, writer: asyncio.StreamWriter, document: dict[str, Any]) -> None:
        try:
            frame = protocol.encode(document)
        except protocol.FrameError as exc:
            frame = protocol.encode(protocol.error(protocol.INTERNAL, str(exc)))
        writer.write(frame)
        async with asyncio.timeout(IDLE_SECONDS):
            await writer.drain()

    async def _answer(self, document: dict[str, Any]) -> dict[str, Any]:
        if document.get("version") != protocol.VERSION:
            return protocol.error(
                protocol.BAD_REQUEST,
                f"protocol version {document.get('version')!r}; this NodeHost speaks "
                f"{protocol.VERSION}",
            )
        op = document.get("op")
        handler = HANDLERS.get(op) if isinstance(op, str) else None
        if handler is None:
            return protocol.error(protocol.BAD_REQUEST, f"unknown operation {op!r}")
        args = document.get("args", {})
        if not isinstance(args, dict):
            return protocol.error(protocol.BAD_REQUEST, "args must be an object")
        loop = asyncio.get_running_loop()
        try:
            value = await loop.run_in_executor(self._workers, handler, self._nh, args)
        except BadArgument as exc:
            return protocol.error(protocol.BAD_REQUEST, str(exc))
        except RaftError as exc:
            return protocol.error(type(exc).__name__, str(exc))
        except Exception as exc:
            log.exception("admin: %s failed", op)
            return protocol.error(protocol.INTERNAL, f"{op} failed: {exc!r}")
        return protocol.ok(value)


def start_admin(nh: NodeHost) -> AdminServer | None:
    """The admin service of `nh`, serving, when its config asks for one."""
    config = nh.config
    if not config.admin_address:
        return None
    address = AdminAddress.parse(config.admin_address)
    tls = None
    if not address.is_unix:
        tls = server_tls_context(config.ca_file, config.cert_file, config.key_file)
    server = AdminServer(nh, address, tls)
    server.start()
    return server
