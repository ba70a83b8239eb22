"""The bootstrap record: what a replica was first started with, checked on every restart.

A restart that contradicts it (other initial members, another join flag, another state
machine type) would silently build a different shard, so it is refused with
InvalidShardSettings.
"""

from __future__ import annotations

from logdb import ILogDB
from nodehost import errors
from nodehost.config import Config
from protos import raft_pb2 as pb
from statemachine import StateMachineType

PB_KIND = {
    StateMachineType.REGULAR: pb.REGULAR_STATE_MACHINE,
    StateMachineType.CONCURRENT: pb.CONCURRENT_STATE_MACHINE,
    StateMachineType.ON_DISK: pb.ON_DISK_STATE_MACHINE,
}


def check_bootstrap(
    logdb: ILogDB, members: dict[int, str], join: bool, config: Config, kind: StateMachineType
) -> bool:
    """Compare the arguments with the record of the first start; True for a new replica."""
    shard_id, replica_id = config.shard_id, config.replica_id
    bootstrap = logdb.get_bootstrap(shard_id, replica_id)
    if bootstrap is not None:
        if bootstrap.type != PB_KIND[kind]:
            raise errors.InvalidShardSettings(
                f"shard {shard_id} replica {replica_id} was started with another "
                f"state machine type ({pb.StateMachineType.Name(bootstrap.type)})"
            )
        if members and dict(bootstrap.addresses) != members:
            raise errors.InvalidShardSettings(
                f"initial_members differ from the first start: {dict(bootstrap.addresses)}"
            )
        if members and join != bootstrap.join:
            raise errors.InvalidShardSettings(
                f"join={join} but the replica first started with join={bootstrap.join}"
            )
        if join and not bootstrap.join:
            raise errors.InvalidShardSettings(
                "join=True but the replica first started as an initial member"
            )
        return False
    if join and members:
        raise errors.InvalidShardSettings("a joining replica takes no initial_members")
    if not join:
        if not members:
            raise errors.InvalidShardSettings(
                f"shard {shard_id} replica {replica_id} has no data here: a new shard needs "
                "initial_members, a replica added later needs join=True"
            )
        if replica_id not in members:
            raise errors.InvalidShardSettings(
                f"replica {replica_id} is not among initial_members {sorted(members)}"
            )
    logdb.save_bootstrap(
        shard_id,
        replica_id,
        pb.Bootstrap(addresses=members, join=join, type=PB_KIND[kind]),
    )
    return True
