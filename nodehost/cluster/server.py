"""The two listeners of a member: the control socket and the network listener (aiohttp).

Rules:
- The control socket is created with mode 0600 in the state directory, and each
  connection's peer credentials are checked: only the daemon's own user and root get in.
  A stale socket file (no daemon behind it) is replaced; a live one means another daemon
  and is refused.
- The network listener speaks HTTPS only, with the TLS of tls.ServerTLS; the caller is
  identified by the fingerprint of the certificate it proved it holds.
- Requests are bounded (1 MiB); bodies are JSON; every answer, errors and unknown paths
  included, is the JSON envelope of rest.py.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from aiohttp import web

from nodehost.cluster.client import NOTIFICATION_HEADER
from nodehost.cluster.errors import BadRequest, ClusterError, Forbidden, NotFound
from nodehost.cluster.rest import (
    Caller,
    CallerKind,
    Endpoint,
    Handler,
    Request,
    call_handler,
    check_access,
    failure,
    success,
)
from nodehost.cluster.state import Host, State
from nodehost.cluster.statedir import StateDirError
from nodehost.cluster.tls import peer_fingerprint

log = logging.getLogger("nodehost.cluster")

MAX_REQUEST = 1024 * 1024


class Dispatcher:
    """Turns an aiohttp request into a handler call and its answer into the envelope."""

    def __init__(self, host: Host, state: State) -> None:
        self._host = host
        self._state = state

    def application(
        self, routes: Iterable[tuple[str, Endpoint]], *, network: bool
    ) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST, middlewares=[_envelope_errors])
        for prefix, endpoint in routes:
            if network and endpoint.control_only:
                continue
            for method, handler in endpoint.handlers.items():
                app.router.add_route(
                    method, prefix + endpoint.path, self._route(endpoint, handler, network)
                )
        return app

    def _route(
        self, endpoint: Endpoint, handler: Handler, network: bool
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def serve(raw: web.Request) -> web.StreamResponse:
            try:
                caller = self._caller(raw, network)
                check_access(endpoint, caller)
                if not endpoint.allowed_before_ready:
                    self._host.database.check_ready()
                request = Request(
                    method=raw.method,
                    path=raw.path,
                    parameters=dict(raw.match_info),
                    query=dict(raw.query),
                    body=await _body(raw),
                    caller=caller,
                    notification=caller.trusted and raw.headers.get(NOTIFICATION_HEADER) == "1",
                )
                status, body = success(
                    await call_handler(handler, self._state, request, self._host.in_thread)
                )
            except Exception as exc:
                status, body = failure(exc)
            return web.Response(status=status, body=body, content_type="application/json")

        return serve

    def _caller(self, raw: web.Request, network: bool) -> Caller:
        if not network:
            _check_peer_credentials(raw)
            return Caller(CallerKind.CONTROL)
        transport = raw.transport
        connection = transport.get_extra_info("ssl_object") if transport is not None else None
        fingerprint = peer_fingerprint(connection)
        remote = self._host.trust.by_fingerprint(fingerprint) if fingerprint else None
        if remote is None:
            return Caller(CallerKind.ANONYMOUS)
        return Caller(CallerKind.MEMBER, remote.name)


async def _body(raw: web.Request) -> Any:
    try:
        data = await raw.read()
    except web.HTTPRequestEntityTooLarge:
        raise BadRequest(f"the request body is larger than {MAX_REQUEST} bytes") from None
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError as exc:
        raise BadRequest(f"the request body is not JSON: {exc}") from None


@web.middleware
async def _envelope_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    raw = request
    try:
        return await handler(raw)
    except web.HTTPException as exc:
        error: ClusterError = (
            NotFound(f"no endpoint {raw.method} {raw.path}")
            if exc.status in (404, 405)
            else ClusterError(exc.reason)
        )
        if exc.status not in (404, 405):
            error.status = exc.status
        status, body = failure(error)
        return web.Response(status=status, body=body, content_type="application/json")


def _check_peer_credentials(raw: web.Request) -> None:
    if not hasattr(socket, "SO_PEERCRED"):
        return  # the socket file's mode (0600) is the only guard there
    transport = raw.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        raise Forbidden("cannot identify the caller on the control socket")
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", data)
    if uid not in (0, os.getuid()):
        raise Forbidden("the control socket is for the daemon's owner and root only")


class Listener:
    """One running aiohttp site; `close` stops it and waits for its requests."""

    def __init__(self, runner: web.AppRunner) -> None:
        self._runner = runner

    async def close(self) -> None:
        await self._runner.cleanup()


async def serve_control(app: web.Application, path: Path) -> Listener:
    sock = _bind_unix(path)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
    except BaseException:
        await runner.cleanup()
        raise
    return Listener(runner)


async def serve_network(
    app: web.Application, host: str, port: int, context: ssl.SSLContext
) -> Listener:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host.strip("[]"), port, ssl_context=context).start()
    except OSError as exc:
        await runner.cleanup()
        raise ClusterError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return Listener(runner)


def _bind_unix(path: Path) -> socket.socket:
    if path.exists() or path.is_symlink():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # left by a daemon that died: nobody answers on it
        else:
            raise StateDirError(f"another daemon answers on {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)  # the socket is born 0600: no window where others connect
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise StateDirError(f"cannot create the control socket {path}: {exc}") from None
    finally:
        os.umask(previous)
    os.chmod(path, 0o600)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def port_free(host: str, port: int) -> str | None:
    """None when `host:port` can be bound now, else why not."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"cannot resolve {host}: {exc.strerror}"
    family, kind, proto, _, address = infos[0]
    probe = socket.socket(family, kind, proto)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
    except OSError as exc:
        return f"{host}:{port} cannot be used: {exc.strerror or exc}"
    finally:
        with contextlib.suppress(OSError):
            probe.close()
    return None
