"""Transport settings, filled by NodeHost from NodeHostConfig.

Rules:
- Every limit has a finite default: 0 means "the default", never "unbounded", because
  what a peer sends, and what we queue for a slow peer, must never grow without a bound.
- Validated once, at construction; an error names the field and the value.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

from transport.errors import TransportConfigError

MiB = 1024 * 1024

DEFAULT_SEND_QUEUE_BYTES = 32 * MiB
DEFAULT_MAX_MESSAGE_SIZE = 64 * MiB
DEFAULT_SNAPSHOT_CHUNK_SIZE = 2 * MiB
# A frame carries at most this many bytes of messages (one bigger message still goes
# alone): big enough that a gRPC message costs little per Raft message, small enough
# that one frame does not hold the stream for long.
DEFAULT_BATCH_BYTES = 4 * MiB


def is_node_host_id(text: str) -> bool:
    """A NodeHost id is a UUID in its canonical text form."""
    try:
        return str(uuid.UUID(text)) == text
    except (ValueError, TypeError, AttributeError):
        return False


def split_address(address: str) -> tuple[str, int]:
    """ "host:port" (or "[v6]:port") -> (host, port); ValueError on anything else."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"address {address!r} is not host:port")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"address {address!r} has port {port} > 65535")
    if host.startswith("[") != host.endswith("]"):
        raise ValueError(f"address {address!r} has an unbalanced IPv6 bracket")
    return host, port


@dataclass
class TransportConfig:
    raft_address: str  # what peers dial; sent as the source of every batch
    listen_address: str  # what we bind; "" = raft_address
    deployment_id: int  # batches and chunks of another deployment are rejected
    mutual_tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    max_send_queue_size: int = 0  # bytes queued per target; 0 = see send_queue_bytes
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE  # bigger frames are rejected
    snapshot_chunk_size: int = DEFAULT_SNAPSHOT_CHUNK_SIZE
    batch_bytes: int = DEFAULT_BATCH_BYTES
    connect_timeout: float = 3.0  # seconds to reach READY before the target counts as down
    write_timeout: float = 10.0  # a frame stuck this long (peer frozen) marks the target down
    backoff_min: float = 0.1  # first reconnect delay; doubles per failure, with jitter
    backoff_max: float = 2.0
    snapshot_chunk_timeout: float = 30.0  # an incoming transfer silent this long is dropped
    max_snapshot_streams: int = 8  # concurrent transfers each way
    # Hosts addressed by NodeHost id (hosts.py): memberships name ids, resolved to the
    # addresses hosts answer Identify at; seeds are addresses of hosts to ask first.
    address_by_node_host_id: bool = False
    node_host_id: str = ""
    seeds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("raft_address",) + (("listen_address",) if self.listen_address else ()):
            try:
                split_address(getattr(self, name))
            except ValueError as e:
                raise TransportConfigError(f"{name}: {e}") from None
        if not 0 <= self.deployment_id < 2**64:
            raise TransportConfigError(f"deployment_id {self.deployment_id} is not a uint64")
        _at_least("max_send_queue_size", self.max_send_queue_size, 0)
        _at_least("max_message_size", self.max_message_size, 64 * 1024)
        _at_least("snapshot_chunk_size", self.snapshot_chunk_size, 1)
        _at_least("batch_bytes", self.batch_bytes, 1)
        _at_least("max_snapshot_streams", self.max_snapshot_streams, 1)
        if self.snapshot_chunk_size > self.max_message_size // 2:
            raise TransportConfigError(
                f"snapshot_chunk_size {self.snapshot_chunk_size} must be at most half of "
                f"max_message_size {self.max_message_size}"
            )
        for name in ("connect_timeout", "write_timeout", "snapshot_chunk_timeout"):
            if not getattr(self, name) > 0:
                raise TransportConfigError(f"{name} must be > 0, not {getattr(self, name)}")
        if not 0 < self.backoff_min <= self.backoff_max:
            raise TransportConfigError(
                f"need 0 < backoff_min <= backoff_max, got {self.backoff_min}, {self.backoff_max}"
            )
        if self.address_by_node_host_id and not is_node_host_id(self.node_host_id):
            raise TransportConfigError(
                f"node_host_id {self.node_host_id!r} is not a NodeHost id (a UUID)"
            )
        for seed in self.seeds:
            try:
                split_address(seed)
            except ValueError as e:
                raise TransportConfigError(f"seeds: {e}") from None
        if self.mutual_tls:
            for name in ("ca_file", "cert_file", "key_file"):
                path = getattr(self, name)
                if not path:
                    raise TransportConfigError(f"mutual_tls needs {name}")
                if not os.path.isfile(path):
                    raise TransportConfigError(f"{name} {path!r} is not a readable file")

    @property
    def bind_address(self) -> str:
        return self.listen_address or self.raft_address

    @property
    def send_queue_bytes(self) -> int:
        # The default holds two of the largest frames: a queue that cannot take one
        # would drop every message that big.
        return self.max_send_queue_size or max(DEFAULT_SEND_QUEUE_BYTES, 2 * self.max_message_size)


def _at_least(name: str, value: int, low: int) -> None:
    if value < low:
        raise TransportConfigError(f"{name} must be >= {low}, not {value}")
