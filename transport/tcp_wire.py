"""The TCP transport's wire format (version 1), shared by its two ends.

- A connection opens with an 8-byte preamble: `PREAMBLE` (6 bytes), the wire version
  `TCP_WIRE_VERSION` (1 byte), and the kind of stream (1 byte): `BATCHES`, `SNAPSHOT`
  or `IDENTIFY`. A connection with any other preamble is closed unread and counted.
- Then frames: a 4-byte big-endian length and that many bytes. A frame is exactly
  what a gRPC message of the same call carries (frames.py: a MessageBatch built from
  pre-encoded messages, a SnapshotChunk, a HostHello), so inbound.py,
  snapshot_recv.py and hosts.py check both transports' input the same way.
- A batch stream is one way: the receiver never writes on it, and a sender that reads
  a byte there closes the connection.
- A snapshot stream ends with the sender's half-close, or, on TLS (no half-close), an
  empty frame; an Identify stream carries one frame. The receiver answers either with
  one frame: status `ANSWER_OK` and the answer's bytes (an Ack, a HostHello), or
  `ANSWER_REFUSED` and the reason in UTF-8; then it closes. An answer is at most
  `MAX_ANSWER` bytes.
- This is not gRPC on the wire: every member of a deployment must use the same
  transport. A gRPC peer dialling a TCP member (or the reverse) fails the preamble or
  the HTTP/2 handshake, is counted, and keeps being reported unreachable.
"""

from __future__ import annotations

import asyncio
import socket

from transport.config import MiB

PREAMBLE = b"NHRAFT"
TCP_WIRE_VERSION = 1
BATCHES = 1
SNAPSHOT = 2
IDENTIFY = 3
KINDS = (BATCHES, SNAPSHOT, IDENTIFY)
PREAMBLE_SIZE = len(PREAMBLE) + 2
LENGTH = 4
# Frames this far above max_message_size still reach inbound.py's size check (and are
# counted as oversized there); a longer announced length closes the connection unread.
SLACK = 1 * MiB
ANSWER_OK = 0
ANSWER_REFUSED = 1
MAX_ANSWER = 1 * MiB

# A connection nobody has written on for this long gets a TCP keepalive probe, and is
# closed by the kernel after the probes go unanswered: a peer that vanished without a
# FIN (power loss, a cut cable) frees its connection within ~25 s, as gRPC's 10 s
# keepalive pings with a 5 s timeout do.
_KEEPALIVE_IDLE = 10
_KEEPALIVE_INTERVAL = 5
_KEEPALIVE_COUNT = 3


def preamble(kind: int) -> bytes:
    return PREAMBLE + bytes((TCP_WIRE_VERSION, kind))


def frame_bytes(frame: bytes) -> bytes:
    """One frame as it travels (also for tests and tools that speak the wire directly)."""
    return len(frame).to_bytes(LENGTH, "big") + frame


def answer_bytes(status: int, body: bytes) -> bytes:
    return frame_bytes(bytes((status,)) + body)


def keep_alive(transport: asyncio.BaseTransport) -> None:
    """Turn on TCP keepalive for the connection (best effort: a platform without the
    options keeps its defaults)."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, _KEEPALIVE_IDLE)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, _KEEPALIVE_INTERVAL)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, _KEEPALIVE_COUNT)
    except OSError:
        pass
