"""A dqlite wire proxy for fault tests: one listener in front of each member.

It rewrites member addresses in LEADER and CLUSTER answers into the proxies' addresses,
so a client given the proxies reaches the members only through them; and it can lose
the answer to a chosen request (the request reaches the member, its answer is dropped
and the client's connection closed), which is what a leader crash right after
committing looks like to a client.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from nodehost.sqlite.wire import codec


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return bytes(data)


def _read_frame(sock: socket.socket) -> tuple[codec.Header, bytes]:
    header = codec.Header.decode(_read_exactly(sock, codec.HEADER_SIZE))
    return header, _read_exactly(sock, header.body_size)


@dataclass
class _Fault:
    matches: Callable[[codec.Request], bool]
    remaining: int
    hits: int = 0


@dataclass
class WireProxy:
    targets: list[str]
    front: dict[str, str] = field(default_factory=dict)  # member address -> proxy address
    _listeners: list[socket.socket] = field(default_factory=list)
    _sockets: list[socket.socket] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _faults: list[_Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closed: bool = False

    def __post_init__(self) -> None:
        for target in self.targets:
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(16)
            self._listeners.append(listener)
            self.front[target] = f"127.0.0.1:{listener.getsockname()[1]}"
            self._spawn(self._accept, listener, target)

    @property
    def addresses(self) -> list[str]:
        return [self.front[target] for target in self.targets]

    def lose_answer(self, matches: Callable[[codec.Request], bool], times: int = 1) -> _Fault:
        """Lose the answers to the next `times` requests that match."""
        fault = _Fault(matches, times)
        with self._lock:
            self._faults.append(fault)
        return fault

    def close(self) -> None:
        self._closed = True
        with self._lock:
            sockets = self._listeners + self._sockets
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    # ------------------------------------------------------------------ internals

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket, target: str) -> None:
        while not self._closed:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            host, port = target.rsplit(":", 1)
            try:
                server = socket.create_connection((host, int(port)), timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            state = {"lose": False}
            self._spawn(self._requests, client, server, state)
            self._spawn(self._answers, server, client, state)

    def _requests(
        self, client: socket.socket, server: socket.socket, state: dict[str, bool]
    ) -> None:
        try:
            server.sendall(_read_exactly(client, codec.WORD))  # the handshake
            while True:
                header, body = _read_frame(client)
                request = codec.decode_request(header, body)
                with self._lock:
                    for fault in self._faults:
                        if fault.remaining > 0 and fault.matches(request):
                            fault.remaining -= 1
                            fault.hits += 1
                            state["lose"] = True
                            break
                server.sendall(header.encode() + body)
        except (OSError, ConnectionError, codec.DecodeError):
            _close(client, server)

    def _answers(
        self, server: socket.socket, client: socket.socket, state: dict[str, bool]
    ) -> None:
        try:
            while True:
                header, body = _read_frame(server)
                if state["lose"]:
                    _close(client, server)  # the request was applied; its answer is lost
                    return
                response = codec.decode_response(header, body)
                if isinstance(response, codec.ServerResponse):
                    address = self.front.get(response.address, response.address)
                    data = codec.encode_response(codec.ServerResponse(response.node_id, address))
                elif isinstance(response, codec.ServersResponse):
                    servers = tuple(
                        codec.NodeInfo(s.node_id, self.front.get(s.address, s.address), s.role)
                        for s in response.servers
                    )
                    data = codec.encode_response(codec.ServersResponse(servers))
                else:
                    data = header.encode() + body
                client.sendall(data)
        except (OSError, ConnectionError, codec.DecodeError):
            _close(client, server)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
