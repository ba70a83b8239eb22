"""Moves Raft messages and snapshots between NodeHosts.

`GrpcTransport` talks gRPC between processes, `TcpTransport` length-prefixed frames on
plain TCP or TLS (faster; every member must use the same kind, see kinds.py);
`InMemoryTransport` over an
`InMemoryNetwork` is the same thing inside one process, for tests. Both check every
input from the wire before the engine sees it, and both take a `FaultHook` for tests.
The transport never imports the engine: it talks to it through `TransportHandler`.
"""

from transport.config import TransportConfig
from transport.errors import BindError, NotStarted, TransportConfigError, TransportError
from transport.faults import FaultHook
from transport.frames import BIN_VERSION
from transport.grpc_transport import GrpcTransport
from transport.interface import ITransport, TransportHandler
from transport.kinds import TRANSPORT_KINDS, create_transport
from transport.memory import InMemoryNetwork, InMemoryTransport
from transport.registry import Registry
from transport.snapshot_recv import RECEIVING
from transport.stats import Reject, TransportStats
from transport.tcp_transport import TcpTransport

__all__ = [
    "BIN_VERSION",
    "RECEIVING",
    "TRANSPORT_KINDS",
    "BindError",
    "FaultHook",
    "GrpcTransport",
    "ITransport",
    "InMemoryNetwork",
    "InMemoryTransport",
    "NotStarted",
    "Registry",
    "Reject",
    "TcpTransport",
    "TransportConfig",
    "TransportConfigError",
    "TransportError",
    "TransportHandler",
    "TransportStats",
    "create_transport",
]
