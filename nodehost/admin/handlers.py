"""What each admin operation does, through the NodeHost's public API only.

Rules:
- Every argument is checked here before the NodeHost sees it; a bad one is a
  BadArgument naming it (answered as kind "BadRequest").
- Every operation that waits is bounded by the request's `timeout` (seconds).
- Handlers run on worker threads (the NodeHost's `sync_*` calls block), never on the
  service's event loop.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

from nodehost import errors
from nodehost.admin.values import (
    HostInfo,
    LeaderView,
    MembershipView,
    ShardStatus,
    SnapshotView,
)
from nodehost.config import NodeHostConfig
from nodehost.info import (
    Membership,
    NodeHostInfo,
    NodeHostInfoOption,
    ShardInfo,
    SnapshotOption,
)
from nodehost.rsm.store import snapshot_dir_name

MAX_ID = 2**64 - 1
MAX_TIMEOUT = 3600.0
DEFAULT_TIMEOUT = 10.0
ROLES = ("voter", "non-voting", "witness")


class NodeHost(Protocol):
    """The part of the public NodeHost API the admin operations use."""

    config: NodeHostConfig

    def get_node_host_info(self, option: NodeHostInfoOption | None = None) -> NodeHostInfo: ...
    def sync_get_shard_membership(self, shard_id: int, timeout: float) -> Membership: ...
    def get_leader_id(self, shard_id: int) -> tuple[int, int, bool]: ...
    def sync_request_add_replica(
        self, shard_id: int, replica_id: int, target: str, config_change_index: int, timeout: float
    ) -> None: ...
    def sync_request_add_non_voting(
        self, shard_id: int, replica_id: int, target: str, config_change_index: int, timeout: float
    ) -> None: ...
    def sync_request_add_witness(
        self, shard_id: int, replica_id: int, target: str, config_change_index: int, timeout: float
    ) -> None: ...
    def sync_request_delete_replica(
        self, shard_id: int, replica_id: int, config_change_index: int, timeout: float
    ) -> None: ...
    def request_leader_transfer(self, shard_id: int, target_replica_id: int) -> None: ...
    def sync_request_snapshot(
        self, shard_id: int, option: SnapshotOption | None, timeout: float
    ) -> int: ...
    def stop_shard(self, shard_id: int) -> None: ...
    def sync_remove_data(self, shard_id: int, replica_id: int, timeout: float) -> None: ...


class BadArgument(ValueError):
    """A request argument is missing or malformed; the message names it."""


def _id(args: dict[str, Any], name: str) -> int:
    value = args.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise BadArgument(f"{name} must be an integer in 1..2**64-1, got {value!r}")
    return value


def _timeout(args: dict[str, Any]) -> float:
    value = args.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadArgument(f"timeout must be a number of seconds, got {value!r}")
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
        raise BadArgument(f"timeout must be in (0, {MAX_TIMEOUT:g}] seconds, got {value!r}")
    return float(value)


def _text(args: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = args.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise BadArgument(f"{name} must be a non-empty string, got {value!r}")
    return value


def membership_view(m: Membership) -> MembershipView:
    return MembershipView(
        config_change_id=m.config_change_id,
        voters=dict(m.nodes),
        non_votings=dict(m.non_votings),
        witnesses=dict(m.witnesses),
        removed=sorted(m.removed),
    )


def _local_membership(s: ShardInfo) -> MembershipView:
    return MembershipView(
        config_change_id=s.config_change_index,
        voters=dict(s.nodes),
        non_votings=dict(s.non_votings),
        witnesses=dict(s.witnesses),
        removed=sorted(s.removed),
    )


def _role(s: ShardInfo) -> str:
    if s.failed is not None:
        return "failed"
    if s.is_leader:
        return "leader"
    if s.is_witness:
        return "witness"
    if s.is_non_voting:
        return "non-voting"
    return "follower"


def _status(s: ShardInfo) -> ShardStatus:
    return ShardStatus(
        shard_id=s.shard_id,
        replica_id=s.replica_id,
        role=_role(s),
        leader_id=s.leader_id,
        term=s.term,
        applied_index=s.applied_index,
        state_machine=s.state_machine_type.name,
        membership=_local_membership(s),
        failed=s.failed,
    )


def _shard_info(nh: NodeHost, shard_id: int) -> ShardInfo:
    info = nh.get_node_host_info(NodeHostInfoOption(skip_log_info=True))
    for s in info.shard_info_list:
        if s.shard_id == shard_id:
            return s
    raise errors.ShardNotFound(f"shard {shard_id} does not run on this NodeHost")


def info(nh: NodeHost, args: dict[str, Any]) -> dict[str, Any]:
    host = nh.get_node_host_info()
    running = {(s.shard_id, s.replica_id) for s in host.shard_info_list}
    return HostInfo(
        node_host_id=host.node_host_id,
        raft_address=host.raft_address,
        shards=[_status(s) for s in sorted(host.shard_info_list, key=lambda s: s.shard_id)],
        stopped=[key for key in host.log_info if key not in running],
        hosts=dict(host.hosts),
    ).as_json()


def members(nh: NodeHost, args: dict[str, Any]) -> dict[str, Any]:
    shard_id = _id(args, "shard_id")
    if args.get("local", False) is True:
        return _local_membership(_shard_info(nh, shard_id)).as_json()
    return membership_view(nh.sync_get_shard_membership(shard_id, _timeout(args))).as_json()


def leader(nh: NodeHost, args: dict[str, Any]) -> dict[str, Any]:
    shard_id = _id(args, "shard_id")
    leader_id, term, valid = nh.get_leader_id(shard_id)
    target = _local_membership(_shard_info(nh, shard_id)).target_of(leader_id) if valid else None
    return LeaderView(shard_id, leader_id if valid else 0, term, target).as_json()


def add(nh: NodeHost, args: dict[str, Any]) -> dict[str, Any]:
    shard_id = _id(args, "shard_id")
    replica_id = _id(args, "replica_id")
    target = _text(args, "target")
    role = args.get("role", "voter")
    if role not in ROLES:
        raise BadArgument(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    index = args.get("config_change_index", 0)
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise BadArgument(f"config_change_index must be a non-negative integer, got {index!r}")
    timeout = _timeout(args)
    start = time.monotonic()
    change: Callable[[int, int, str, int, float], None] = {
        "voter": nh.sync_request_add_replica,
        "non-voting": nh.sync_request_add_non_voting,
        "witness": nh.sync_request_add_witness,
    }[role]
    change(shard_id, replica_id, target, index, timeout)
    return _membership_after(nh, shard_id, timeout - (time.monotonic() - start))


def remove(nh: NodeHost, args: dict[str, Any]) -> dict[str, Any]:
    shard_id = _id(args, "shard_id")
    replica_id = _id(args, "replica_id")
    index = args.get("config_change_index", 0)
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise BadArgument(f"config_change_index must be a non-negative integer, got {index!r}")
    timeout = _timeout(args)
    start = time.monotonic()
    nh.sync_request_delete_replica(shard_id, replica_id, index, timeout)
    return _membership_after(nh, shard_id, timeout - (time.monotonic() - start))


def _membership_after(nh: NodeHost, shard_id: int, left: float) -> dict[str, Any]:
    """The membership once the change is applied here: a linearizable read when time is
    left, else this replica's view (the change itself already completed)."""
    if left > 0.05:
        try:
            return membership_view(nh.sync_get_shard_membership(shard_id, left)).as_json()
        except errors.Timeout:
            pass
    return _local_membership(_shard_info(nh, shard_id)).as_json()


def transfer(nh: NodeHost, args: dict[str, Any]) -> dict[str, Any]:
    shard_id = _id(args, "shard_id")
    target = _id(args, "replica_id")
    timeout = _timeout(args)
    local = _local_membership(_shard_info(nh, shard_id))
    if target not in local.voters:
        raise errors.InvalidOperation(
            f"replica {target} is not a voting member of shard {shard_id} "
            f"(voters: {', '.join(map(str, sorted(local.voters))) or 'none'})"
        )
    deadline = time.monotonic() + timeout
    pause = nh.config.rtt_millisecond / 1000.0
    asked_at = 0.0
    while True:
        leader_id, term, valid = nh.get_leader_id(shard_id)
        if valid and leader_id == target:
            return LeaderView(shard_id, leader_id, term, local.target_of(leader_id)).as_json()
        now = time.monotonic()
        if now >= deadline:
            now_leading = f"replica {leader_id}" if valid else "no replica"
            raise errors.Timeout(
                f"leadership of shard {shard_id} did not move to replica {target} within "
                f"{timeout:g}s ({now_leading} leads in term {term})"
            )
        # Ask again now and then: a transfer the leader dropped (a change in progress,
        # a target behind) is not retried by the leader itself.
        if valid and now - asked_at >= 20 * pause:
            nh.request_leader_transfer(shard_id, target)
            asked_at = now
        time.sleep(min(pause, max(0.0, deadline - now)))


def snapshot(nh: NodeHost, args: dict[str, Any]) -> dict[str, Any]:
    shard_id = _id(args, "shard_id")
    export = _text(args, "export_path", required=False)
    timeout = _timeout(args)
    if export and not os.path.isabs(export):
        raise BadArgument(f"export_path must be absolute on the NodeHost's machine: {export!r}")
    option = SnapshotOption(exported=bool(export), export_path=export)
    index = nh.sync_request_snapshot(shard_id, option, timeout)
    path = os.path.join(export, snapshot_dir_name(index)) if export else None
    return SnapshotView(shard_id, index, path).as_json()


def stop(nh: NodeHost, args: dict[str, Any]) -> dict[str, Any]:
    shard_id = _id(args, "shard_id")
    replica_id = _shard_info(nh, shard_id).replica_id
    nh.stop_shard(shard_id)
    return {"shard_id": shard_id, "replica_id": replica_id, "stopped": True}


def remove_data(nh: NodeHost, args: dict[str, Any]) -> dict[str, Any]:
    shard_id = _id(args, "shard_id")
    replica_id = _id(args, "replica_id")
    nh.sync_remove_data(shard_id, replica_id, _timeout(args))
    return {"shard_id": shard_id, "replica_id": replica_id, "removed": True}


HANDLERS: dict[str, Callable[[NodeHost, dict[str, Any]], dict[str, Any]]] = {
    "info": info,
    "members": members,
    "leader": leader,
    "add": add,
    "remove": remove,
    "transfer": transfer,
    "snapshot": snapshot,
    "stop": stop,
    "remove_data": remove_data,
}
