"""Free loopback ports, chosen by the kernel (bind to port 0).

Rule: all the ports one run needs are taken while every socket is still open, so two
calls in one run never return the same port; they are released together before the
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
