"""Joining a cluster as go-dqlite's app does: ask a member (over the wire protocol) who
leads, then ask the leader to ADD this member; the leader's roles loop then assigns it a
role (stand-by or voter), and Raft brings it the data.

Rules: blocking sockets with timeouts, every member tried in turn until `timeout`;
an answer that is not the expected one (FAILURE, a malformed frame) is reported with
the member that gave it.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Sequence

from nodehost.config import parse_address
from nodehost.sqlite import errors
from nodehost.sqlite.wire import codec


class _Link:
    def __init__(self, address: str, context: ssl.SSLContext | None, timeout: float) -> None:
        host, port = parse_address(address, "address")
        raw = socket.create_connection((host.strip("[]"), port), timeout=timeout)
        self.sock: socket.socket = context.wrap_socket(raw) if context else raw
        self.sock.settimeout(timeout)
        self.frames = codec.FrameReader()
        self.sock.sendall(codec.encode_handshake())

    def ask(self, request: codec.Request) -> codec.Response:
        self.sock.sendall(codec.encode_request(request))
        while True:
            frame = self.frames.next_frame()
            if frame is not None:
                return codec.decode_response(frame.header, frame.body)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the member closed the connection")
            self.frames.feed(data)

    def close(self) -> None:
        self.sock.close()


def join(
    cluster: Sequence[str],
    member_id: int,
    address: str,
    context: ssl.SSLContext | None,
    timeout: float = 30.0,
) -> None:
    """ADD `member_id` at `address` through the leader of the cluster `cluster` names."""
    deadline = time.monotonic() + timeout
    problems: dict[str, str] = {}
    while time.monotonic() < deadline:
        for member in cluster:
            try:
                leader = _ask_leader(member, context)
                if not leader:
                    problems[member] = "knows no leader"
                    continue
                link = _Link(leader, context, 5.0)
                try:
                    welcome = link.ask(codec.ClientRequest(0))
                    if not isinstance(welcome, codec.WelcomeResponse):
                        raise errors.OperationalError(f"{leader}: unexpected answer {welcome}")
                    answer = link.ask(codec.AddRequest(member_id, address))
                finally:
                    link.close()
                if isinstance(answer, codec.EmptyResponse):
                    return
                if isinstance(answer, codec.FailureResponse):
                    problems[leader] = f"{answer.message} ({answer.code})"
                else:
                    problems[leader] = f"unexpected answer {type(answer).__name__}"
            except (OSError, codec.WireError, errors.Error) as exc:
                problems[member] = str(exc) or type(exc).__name__
        time.sleep(0.2)
    detail = "; ".join(f"{m}: {p}" for m, p in problems.items())
    raise errors.OperationalError(f"could not join the cluster within {timeout} s ({detail})")


def _ask_leader(member: str, context: ssl.SSLContext | None) -> str:
    link = _Link(member, context, 5.0)
    try:
        answer = link.ask(codec.LeaderRequest())
    finally:
        link.close()
    if isinstance(answer, codec.ServerResponse):
        return answer.address
    raise errors.OperationalError(f"{member}: unexpected answer {type(answer).__name__}")


def cluster_of(
    addresses: Sequence[str], context: ssl.SSLContext | None
) -> list[codec.NodeInfo] | None:
    """The members as the current leader lists them (CLUSTER), or None when no listed
    member can name a leader that answers."""
    for member in addresses:
        try:
            leader = _ask_leader(member, context)
            if not leader:
                continue
            link = _Link(leader, context, 5.0)
            try:
                answer = link.ask(codec.ClusterRequest(codec.ClusterFormat.V1))
            finally:
                link.close()
            if isinstance(answer, codec.ServersResponse):
                return list(answer.servers)
        except (OSError, codec.WireError, errors.Error):
            continue
    return None
