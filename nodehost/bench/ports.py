"""Free loopback ports, chosen by the kernel (bind to port 0).

Rule: all the ports one call returns are taken while every socket is still open, so
one call never returns the same port twice; they are released together before the
caller binds them (a small window another program could win: benchmarks accept it).
"""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    if count < 0:
        raise ValueError(f"free_ports: count must be >= 0, got {count}")
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(held)
            held.bind((host, 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for held in sockets:
            held.close()


def free_port(host: str = LOOPBACK) -> int:
    [port] = free_ports(1, host)
    return port


def free_port_pairs(count: int, offset: int, host: str = LOOPBACK) -> list[int]:
    """`count` ports p, each free together with p + offset (a service whose second
    port is derived from its first, as nodehost.sqlite's Raft port is)."""
    if count < 0 or offset <= 0:
        raise ValueError(f"free_port_pairs: need count >= 0 and offset > 0, got {count}, {offset}")
    found: list[int] = []
    held: list[socket.socket] = []
    try:
        for _ in range(64 * max(count, 1)):  # bounded: a busy machine fails, never hangs
            if len(found) == count:
                return found
            first = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(first)
            first.bind((host, 0))
            port = int(first.getsockname()[1])
            if port + offset >= 65536:
                continue
            second = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(second)
            try:
                second.bind((host, port + offset))
            except OSError:
                continue
            found.append(port)
        if len(found) == count:
            return found
        raise OSError(f"no {count} free port pairs {offset} apart on {host}")
    finally:
        for socket_ in held:
            socket_.close()
