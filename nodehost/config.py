"""NodeHost and per-replica settings, validated when built.

Every value is checked in `__post_init__`, so a bad setting fails at the line that made
it, with `InvalidConfig` naming the field, never later inside the engine.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nodehost.errors import InvalidConfig
from nodehost.limits import (
    DEFAULT_MAX_IN_MEM_LOG_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_PENDING_PROPOSAL_BYTES,
    DEFAULT_MAX_PENDING_PROPOSALS,
    DEFAULT_MAX_PENDING_READS,
    DEFAULT_MAX_QUEUE_DELAY_MS,
    MAX_MAX_MESSAGE_SIZE,
    MIN_MAX_MESSAGE_SIZE,
    largest_entry,
    message_size_for,
)
from nodehost.rsm import CompressionType as CompressionType
from transport.kinds import TRANSPORT_KINDS

if TYPE_CHECKING:
    from nodehost.events import IRaftEventListener, ISystemEventListener

MAX_ID = 2**64 - 1


def parse_address(address: str, field_name: str) -> tuple[str, int]:
    """Split "host:port" (IPv6 as "[::1]:port"); raise InvalidConfig naming the field."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise InvalidConfig(f"{field_name}: {address!r} is not host:port")
    port = int(port_text)
    if not 0 < port < 65536:
        raise InvalidConfig(f"{field_name}: port {port} is out of range")
    if host.startswith("["):
        if not host.endswith("]"):
            raise InvalidConfig(f"{field_name}: {address!r} has an unclosed '['")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError as exc:
            raise InvalidConfig(f"{field_name}: {host!r} is not an IPv6 address") from exc
    elif any(c.isspace() or c in "/[]" for c in host):
        raise InvalidConfig(f"{field_name}: {host!r} is not a host name")
    return host, port


def _check_id(value: int, field_name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidConfig(f"{field_name} must be an int, got {type(value).__name__}")
    if not 0 < value <= MAX_ID:
        raise InvalidConfig(f"{field_name} must be in 1..2**64-1, got {value}")


def _check_non_negative(value: int, field_name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidConfig(f"{field_name} must be a non-negative int, got {value!r}")


@dataclass
class NodeHostConfig:
    """Settings of one NodeHost (one per process).

    `rtt_millisecond` is the tick: election and heartbeat intervals of every replica are
    counted in it, so it should be about the round trip time between NodeHosts.
    """

    node_host_dir: str
    raft_address: str
    rtt_millisecond: int = 200
    listen_address: str = ""
    wal_dir: str = ""
    deployment_id: int = 0
    mutual_tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    # Bytes queued per remote NodeHost before messages to it are dropped (and counted);
    # 0 picks twice max_message_size (128 MiB). Never unbounded: a dead peer must not
    # eat the memory. At least max_message_size, so that any message fits.
    max_send_queue_size: int = 0
    # Bytes of messages received from all peers and not yet taken by the engine; past
    # it, messages carrying entries are dropped and counted (Raft sends them again),
    # and past it by a quarter, every message. 0 picks twice max_message_size (128
    # MiB). At least max_message_size.
    max_receive_queue_size: int = 0
    notify_commit: bool = False
    raft_event_listener: IRaftEventListener | None = None
    system_event_listener: ISystemEventListener | None = None
    enable_metrics: bool = False
    # Largest command accepted in one proposal (bytes); a bigger one raises
    # PayloadTooBig at once. It must fit in one message (see max_message_size).
    max_entry_size: int = 8 * 1024 * 1024
    # Largest frame sent to or accepted from a peer NodeHost (bytes); the same on every
    # NodeHost of a deployment. Messages are cut to fit it; max_entry_size plus the
    # headers (a few hundred bytes, limits.frame_overhead) must fit in it.
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    # Worker threads that apply committed entries (a shard always uses the same one).
    apply_workers: int = 2
    # Use uvloop for the engine loop where available.
    use_uvloop: bool = True
    # False skips the fsync of the log: writes survive a crash of the process but not
    # of the machine. For benchmarks that want the figure without the disk; never for
    # data anyone needs.
    fsync: bool = True
    # How NodeHosts talk: "grpc" (gRPC streams) or "tcp" (length-prefixed frames on
    # TCP or TLS, the same batches and checks at a fraction of the per-frame cost).
    # Every NodeHost of a deployment must use the same one.
    transport: str = "grpc"
    # The admin service the `nodehost` command talks to (nodehost.admin): "" = off;
    # "unix:PATH" = a local socket only this user and root may use; "host:port" =
    # TCP with mutual TLS, using ca_file/cert_file/key_file (mutual_tls must be on).
    admin_address: str = ""
    # Address hosts by NodeHost id (Dragonboat v4's NodeHost-id addressing): memberships
    # and initial members name NodeHost ids instead of host:port, and each host's current
    # address is learned from the hosts themselves (transport/hosts.py), starting from
    # `seeds` (host:port of other NodeHosts). A host may then restart on another address
    # and keep its replicas; raft_address is no longer pinned by the data directory.
    address_by_node_host_id: bool = False
    seeds: list[str] = field(default_factory=list)
    # This host's id (a UUID) when its directory is new; "" picks a random one. Later
    # starts must give the same id or none.
    node_host_id: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.node_host_dir, str) or not self.node_host_dir:
            raise InvalidConfig("node_host_dir is required")
        parse_address(self.raft_address, "raft_address")
        if not self.listen_address:
            self.listen_address = self.raft_address
        else:
            parse_address(self.listen_address, "listen_address")
        if isinstance(self.rtt_millisecond, bool) or not isinstance(self.rtt_millisecond, int):
            raise InvalidConfig("rtt_millisecond must be an int")
        if not 1 <= self.rtt_millisecond <= 60_000:
            raise InvalidConfig(f"rtt_millisecond must be in 1..60000, got {self.rtt_millisecond}")
        _check_non_negative(self.deployment_id, "deployment_id")
        if self.deployment_id > MAX_ID:
            raise InvalidConfig("deployment_id must fit in 64 bits")
        self._check_sizes()
        if not isinstance(self.fsync, bool):
            raise InvalidConfig(f"fsync must be a bool, got {self.fsync!r}")
        if self.transport not in TRANSPORT_KINDS:
            raise InvalidConfig(
                f"transport must be one of {', '.join(map(repr, TRANSPORT_KINDS))}, "
                f"got {self.transport!r}"
            )
        if not 1 <= self.apply_workers <= 64:
            raise InvalidConfig(f"apply_workers must be in 1..64, got {self.apply_workers}")
        if self.mutual_tls:
            for name in ("ca_file", "cert_file", "key_file"):
                if not getattr(self, name):
                    raise InvalidConfig(f"{name} is required when mutual_tls is on")
        _check_admin_address(self)
        _check_addressing(self)

    def _check_sizes(self) -> None:
        """Every message must fit in a frame, and every queue must hold a message."""
        for name in ("max_entry_size", "max_message_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidConfig(f"{name} must be a positive int, got {value!r}")
        limit = self.max_message_size
        if not MIN_MAX_MESSAGE_SIZE <= limit <= MAX_MAX_MESSAGE_SIZE:
            raise InvalidConfig(
                f"max_message_size must be in {MIN_MAX_MESSAGE_SIZE}..{MAX_MAX_MESSAGE_SIZE}, "
                f"got {limit}"
            )
        largest = largest_entry(limit, self.raft_address, self.deployment_id)
        if self.max_entry_size > largest:
            raise InvalidConfig(
                f"max_entry_size ({self.max_entry_size}) does not fit in one message of "
                f"max_message_size ({limit}): with the headers the largest entry is "
                f"{largest} bytes; raise max_message_size to at least "
                f"{message_size_for(self.max_entry_size)} or lower max_entry_size"
            )
        for name in ("max_send_queue_size", "max_receive_queue_size"):
            value = getattr(self, name)
            _check_non_negative(value, name)
            if 0 < value < limit:
                raise InvalidConfig(
                    f"{name} ({value}) must be 0 (twice max_message_size) or at least "
                    f"max_message_size ({limit}): a queue must hold the largest message"
                )


def _check_addressing(config: NodeHostConfig) -> None:
    if not isinstance(config.address_by_node_host_id, bool):
        raise InvalidConfig("address_by_node_host_id must be a bool")
    if config.node_host_id:
        try:
            canonical = str(uuid.UUID(config.node_host_id))
        except (ValueError, TypeError, AttributeError):
            raise InvalidConfig(f"node_host_id {config.node_host_id!r} is not a UUID") from None
        config.node_host_id = canonical
    if not isinstance(config.seeds, list | tuple):
        raise InvalidConfig("seeds must be a list of host:port")
    config.seeds = list(config.seeds)
    if config.seeds and not config.address_by_node_host_id:
        raise InvalidConfig("seeds are used only with address_by_node_host_id")
    for i, seed in enumerate(config.seeds):
        if not isinstance(seed, str):
            raise InvalidConfig(f"seeds[{i}]: {seed!r} is not host:port")
        parse_address(seed, f"seeds[{i}]")


def _check_admin_address(config: NodeHostConfig) -> None:
    """An admin service is only ever reachable by those who already control the host:
    a local socket, or TCP behind the transport's mutual TLS."""
    text = config.admin_address
    if not isinstance(text, str):
        raise InvalidConfig(f"admin_address must be a string, got {text!r}")
    if not text or text.startswith("unix:") or "/" in text:
        return  # a socket path: checked when the service binds it
    parse_address(text, "admin_address")
    if not config.mutual_tls:
        raise InvalidConfig(
            "admin_address: a TCP admin service needs mutual_tls (with ca_file, cert_file "
            "and key_file); use unix:PATH for a local socket"
        )
    if text in (config.raft_address, config.listen_address):
        raise InvalidConfig(f"admin_address {text} is the Raft transport's address")


@dataclass
class Config:
    """Settings of one replica. Times are in ticks of NodeHostConfig.rtt_millisecond.

    The `max_*` bounds keep an overloaded replica from taking the process's memory:
    past one of them a call raises SystemBusy at once (nothing was done; retry later).
    """

    shard_id: int
    replica_id: int
    election_rtt: int = 10
    heartbeat_rtt: int = 1
    check_quorum: bool = False
    pre_vote: bool = False
    snapshot_entries: int = 0
    compaction_overhead: int = 0
    ordered_config_change: bool = False
    # Memory held by log entries not yet applied, on this replica or (as the leader
    # hears it) on any of its shard's replicas, past which proposals get SystemBusy
    # until it falls below 70%. Each entry counts its command plus 512 bytes. 0: off.
    max_in_mem_log_size: int = DEFAULT_MAX_IN_MEM_LOG_SIZE
    # Proposals made on this replica and not finished (applied, dropped or timed out),
    # by count and by bytes of command; one more gets SystemBusy. A single proposal
    # bigger than the byte bound is still taken when none is pending.
    max_pending_proposals: int = DEFAULT_MAX_PENDING_PROPOSALS
    max_pending_proposal_bytes: int = DEFAULT_MAX_PENDING_PROPOSAL_BYTES
    # Linearizable reads (read_index, sync_read) made on this replica and not finished.
    max_pending_reads: int = DEFAULT_MAX_PENDING_READS
    # A proposal (or read) that would wait longer than this behind the ones pending
    # here (their number over the rate this replica finishes them) gets SystemBusy at
    # once, instead of waiting until its caller times out while more comes in than the
    # shard can commit. Keep it well below the timeouts callers use. 0: off.
    max_queue_delay_ms: int = DEFAULT_MAX_QUEUE_DELAY_MS
    snapshot_compression: CompressionType = CompressionType.NONE
    is_non_voting: bool = False
    is_witness: bool = False
    quiesce: bool = False
    wait_ready: bool = False

    def __post_init__(self) -> None:
        _check_id(self.shard_id, "shard_id")
        _check_id(self.replica_id, "replica_id")
        for name in ("election_rtt", "heartbeat_rtt"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidConfig(f"{name} must be a positive int, got {value!r}")
        if self.election_rtt <= 2 * self.heartbeat_rtt:
            raise InvalidConfig(
                f"election_rtt ({self.election_rtt}) must be more than twice "
                f"heartbeat_rtt ({self.heartbeat_rtt})"
            )
        _check_non_negative(self.snapshot_entries, "snapshot_entries")
        _check_non_negative(self.compaction_overhead, "compaction_overhead")
        _check_non_negative(self.max_in_mem_log_size, "max_in_mem_log_size")
        for name in ("max_pending_proposals", "max_pending_proposal_bytes", "max_pending_reads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidConfig(f"{name} must be a positive int, got {value!r}")
        _check_non_negative(self.max_queue_delay_ms, "max_queue_delay_ms")
        if self.is_witness and self.is_non_voting:
            raise InvalidConfig("is_witness and is_non_voting cannot both be set")
        if self.is_witness and self.snapshot_entries:
            raise InvalidConfig("snapshot_entries must be 0 on a witness (it has no state)")
        try:
            self.snapshot_compression = CompressionType(self.snapshot_compression)
        except ValueError as exc:
            raise InvalidConfig(f"snapshot_compression: {exc}") from exc
