"""The core's settings, in ticks and bytes. Validated by the public `nodehost.Config`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class RaftConfig:
    shard_id: int
    replica_id: int
    election_rtt: int = 10
    heartbeat_rtt: int = 1
    check_quorum: bool = False
    pre_vote: bool = False
    ordered_config_change: bool = False
    # Bytes of memory held by entries not yet applied (pacing.py counts each entry as
    # its command plus ENTRY_MEMORY_OVERHEAD), past which proposals are refused; 0: off.
    max_in_mem_log_size: int = 0
    is_non_voting: bool = False
    is_witness: bool = False
    quiesce: bool = False
    # Flow control: bytes of entries (commands plus ENTRY_OVERHEAD each) per REPLICATE
    # or PROPOSE_FORWARD message (one bigger entry goes alone), and REPLICATE messages
    # in flight per follower before the leader waits for acknowledgements. The host
    # derives the first from its transport's message limit, so no message is too big.
    max_replicate_bytes: int = 4 * 1024 * 1024
    max_inflight: int = 256
