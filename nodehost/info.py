"""Plain values the NodeHost API returns or takes: membership, host info, snapshot options."""

from __future__ import annotations

from dataclasses import dataclass, field

from statemachine import StateMachineType


@dataclass
class SnapshotOption:
    """How `request_snapshot` should snapshot.

    exported: write the snapshot to `export_path` for backup or import; it is not used
    by this replica and the log is not compacted behind it.
    override_compaction_overhead: keep `compaction_overhead` entries behind this
    snapshot instead of the replica's configured number.
    """

    exported: bool = False
    export_path: str = ""
    override_compaction_overhead: bool = False
    compaction_overhead: int = 0


@dataclass
class Membership:
    """A shard's members: replica id -> address, per role; removed ids never return."""

    config_change_id: int
    nodes: dict[int, str]
    non_votings: dict[int, str]
    witnesses: dict[int, str]
    removed: set[int]


@dataclass
class ShardInfo:
    shard_id: int
    replica_id: int
    is_leader: bool
    is_non_voting: bool
    is_witness: bool
    leader_id: int
    term: int
    config_change_index: int
    nodes: dict[int, str]
    state_machine_type: StateMachineType
    applied_index: int
    failed: str | None = None
    is_removed: bool = False  # this replica learnt it was removed: it can never serve again
    non_votings: dict[int, str] = field(default_factory=dict)
    witnesses: dict[int, str] = field(default_factory=dict)
    removed: set[int] = field(default_factory=set)


@dataclass
class NodeHostInfoOption:
    skip_log_info: bool = False


@dataclass
class NodeHostInfo:
    node_host_id: str
    raft_address: str
    shard_info_list: list[ShardInfo] = field(default_factory=list)
    log_info: list[tuple[int, int]] = field(default_factory=list)
    # NodeHost id -> address of every host located, this one included (hosts addressed
    # by NodeHost id only; empty otherwise).
    hosts: dict[str, str] = field(default_factory=dict)
