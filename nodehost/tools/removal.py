"""`remove-data --dir`: delete a replica's data from a stopped host's directory, as
NodeHost.remove_data does on a running one (Dragonboat's RemoveData).

Rules:
- Only for a replica its shard has removed: deleting the data of a member the shard
  still counts on loses its vote and its copy of the log. When the replica's own log
  still lists it as a member, this is refused unless `force` (the shard may have
  removed it while this host was down, and this log never heard of it).
- The id can never start on this host again: a tombstone is written first, then the
  log and the snapshots go, so a crash part way leaves a replica that refuses to start,
  never one that starts with half its data. Running it again finishes the job.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logdb import LogDBError
from nodehost.tools import hostdir, logview
from nodehost.tools.errors import ToolError, UnsafeOperation


@dataclass
class RemovalResult:
    shard_id: int
    replica_id: int
    was_member: str  # its role as its own log last knew it ("removed" when it knew)

    def as_json(self) -> dict[str, Any]:
        return {
            "shard_id": self.shard_id,
            "replica_id": self.replica_id,
            "removed": True,
            "was_member": self.was_member,
        }


def remove_data(
    directory: str | Path,
    shard_id: int,
    replica_id: int,
    *,
    force: bool = False,
    wal_dir: str = "",
) -> RemovalResult:
    with hostdir.writable(directory, wal_dir) as (host, env, logdb):
        name = f"shard {shard_id} replica {replica_id}"
        tombstone = env.tombstone(shard_id, replica_id)
        snapshots = env.snapshot_dir(shard_id, replica_id)
        log = logview.load(logdb, shard_id, replica_id)
        if log is None and not snapshots.exists():
            if tombstone.exists():
                raise ToolError(f"{name}: its data was already removed from {host.root}")
            held = ", ".join(f"{s}/{r}" for s, r in logdb.list_node_info()) or "none"
            raise ToolError(f"{host.root} holds no data of {name} (shard/replica held: {held})")
        role = "unknown"
        if log is not None:
            membership, _ = logview.membership_at(logdb, log, log.last_index)
            role = logview.view(membership).role_of(replica_id)
            if role not in ("removed", "none") and not force:
                raise UnsafeOperation(
                    f"{name} is still a member ({role}) as far as its log knows: remove it "
                    f"from the shard first (nodehost remove {shard_id} {replica_id}, against a "
                    "running member), or --force if the shard removed it while this host was "
                    "down"
                )
        try:
            tombstone.write_text("removed\n")
            logdb.remove_node_data(shard_id, replica_id)
            shutil.rmtree(snapshots, ignore_errors=True)
        except (LogDBError, OSError) as exc:
            raise ToolError(f"{name}: removal failed part way ({exc}); run it again") from None
        return RemovalResult(shard_id, replica_id, role)
