"""Which transport a NodeHost runs: chosen by name in its configuration.

- "grpc": gRPC streams (grpc.aio); the default.
- "tcp": length-prefixed frames on plain TCP or TLS (tcp_transport.py): the same
  batches and checks at a fraction of gRPC's per-frame cost.
Every member of a deployment must use the same kind: they do not speak each other's
wire format (a member of the other kind is reported unreachable, never half-read).
"""

from __future__ import annotations

from transport.base import BaseTransport
from transport.config import TransportConfig
from transport.errors import TransportConfigError
from transport.grpc_transport import GrpcTransport
from transport.interface import TransportHandler
from transport.tcp_transport import TcpTransport

TRANSPORT_KINDS = ("grpc", "tcp")


def create_transport(
    kind: str, config: TransportConfig, handler: TransportHandler
) -> BaseTransport:
    if kind == "grpc":
        return GrpcTransport(config, handler)
    if kind == "tcp":
        return TcpTransport(config, handler)
    raise TransportConfigError(
        f"transport {kind!r} is not one of {', '.join(repr(k) for k in TRANSPORT_KINDS)}"
    )
