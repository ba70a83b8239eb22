"""`import`: rebuild a replica from an exported snapshot (Dragonboat's ImportSnapshot).

For a shard that lost its quorum for good, or whose surviving logs cannot be trusted:
the state in an exported snapshot (`nodehost snapshot SHARD --export DIR`, or
`request_snapshot` with an exported SnapshotOption) becomes the shard's state, and the
given members its membership. Run it, with the same snapshot and the same members, on
the stopped host of every member of the new membership, then start them all.

Rules, and why:
- Every write made after the snapshot is lost; that is what the operator chooses.
- The snapshot is checked whole (metadata, sizes, digests) before anything is written:
  a damaged or incomplete export is refused.
- Members keep the rules of the membership: a removed id never returns, a witness or a
  non-voting member cannot become a voter this way, a member's address cannot change;
  the member this host is must have this host's address. Members of the snapshot's
  membership left out are recorded as removed: they can never come back.
- The replica's old log and snapshots on this host are replaced. When its log holds
  entries past the snapshot, importing discards them: refused unless `force`.
- Its term never goes back on this disk (a vote cast in a term must stay cast).
- If it is interrupted, run it again: it starts over from the exported snapshot.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logdb import LogDBError
from nodehost.admin.values import MembershipView
from nodehost.rsm import SnapshotError, SnapshotStore
from nodehost.rsm.store import (
    METADATA_FILE,
    complete_indexes,
    read_snapshot_dir,
    snapshot_dir_name,
    verify_files,
)
from nodehost.tools import hostdir, logview
from nodehost.tools.errors import ToolError, UnsafeOperation
from protos import raft_pb2 as pb


@dataclass
class ImportResult:
    shard_id: int
    replica_id: int
    index: int
    term: int
    membership: MembershipView
    snapshot_path: str
    replaced: bool  # the replica had data here, now replaced

    def as_json(self) -> dict[str, Any]:
        return {
            "shard_id": self.shard_id,
            "replica_id": self.replica_id,
            "index": self.index,
            "term": self.term,
            "membership": self.membership.as_json(),
            "snapshot_path": self.snapshot_path,
            "replaced": self.replaced,
        }


def find_exported(path: str | Path) -> Path:
    """The exported snapshot's own directory: `path` itself, or the one snapshot in it."""
    root = Path(path).absolute()
    if not root.is_dir():
        raise ToolError(f"{root} is not a directory")
    if (root / METADATA_FILE).is_file():
        return root
    indexes = complete_indexes(str(root))
    if not indexes:
        raise ToolError(f"{root} holds no exported snapshot (no {METADATA_FILE})")
    if len(indexes) > 1:
        names = ", ".join(snapshot_dir_name(i) for i in indexes)
        raise ToolError(f"{root} holds {len(indexes)} snapshots ({names}); name one of them")
    return root / snapshot_dir_name(indexes[0])


def read_exported(path: str | Path) -> pb.Snapshot:
    """The exported snapshot's metadata, once every file was checked against it."""
    directory = find_exported(path)
    try:
        snapshot = read_snapshot_dir(str(directory))
        verify_files(snapshot)
    except SnapshotError as exc:
        raise ToolError(f"the snapshot in {directory} is damaged or incomplete: {exc}") from None
    if snapshot.dummy or snapshot.witness or not snapshot.filepath:
        raise ToolError(f"the snapshot in {directory} holds no state machine data")
    if snapshot.index == 0:
        raise ToolError(f"the snapshot in {directory} is at index 0")
    return snapshot


def _check_members(old: pb.Membership, members: dict[int, str], replica_id: int) -> None:
    if replica_id not in members:
        raise ToolError(
            f"replica {replica_id} is not among the members "
            f"({', '.join(map(str, sorted(members)))}): this host must be one of them"
        )
    for rid, target in sorted(members.items()):
        if rid in old.removed:
            raise ToolError(f"replica {rid} was removed from the shard and can never come back")
        if rid in old.witnesses:
            raise ToolError(f"replica {rid} is a witness; a witness cannot become a voter")
        if rid in old.non_votings:
            raise ToolError(
                f"replica {rid} is a non-voting member; it cannot become a voter by an import"
            )
        if rid in old.addresses and old.addresses[rid] != target:
            raise ToolError(
                f"replica {rid} is at {old.addresses[rid]} in the snapshot's membership, not "
                f"{target}: give the new host a new replica id"
            )


def _membership(old: pb.Membership, members: dict[int, str], index: int) -> pb.Membership:
    m = pb.Membership(config_change_id=index)
    for rid, target in members.items():
        m.addresses[rid] = target
    for rid in [*old.removed, *old.addresses, *old.non_votings, *old.witnesses]:
        if rid not in members:
            m.removed[rid] = True
    return m


def import_snapshot(
    directory: str | Path,
    shard_id: int,
    replica_id: int,
    snapshot_dir: str | Path,
    members: dict[int, str],
    *,
    force: bool = False,
    wal_dir: str = "",
    deployment_id: int | None = None,
) -> ImportResult:
    """Make replica `replica_id` of `shard_id` in the stopped host's `directory` (created
    when it does not exist yet) own the exported snapshot, with `members` as the
    shard's membership."""
    exported = read_exported(snapshot_dir)
    if exported.shard_id != shard_id:
        raise ToolError(f"the snapshot is of shard {exported.shard_id}, not of shard {shard_id}")
    _check_members(exported.membership, members, replica_id)
    target = members[replica_id]
    create = hostdir.NewHost(target, deployment_id or 0)
    with hostdir.writable(directory, wal_dir, create=create) as (host, env, logdb):
        if host.target != target:
            what = "NodeHost" if host.by_node_host_id else "host at"
            raise ToolError(
                f"{host.root} is the {what} {host.target}, but the members put "
                f"replica {replica_id} at {target}"
            )
        if deployment_id is not None and deployment_id != host.deployment_id:
            raise ToolError(
                f"{host.root} belongs to deployment {host.deployment_id}, not {deployment_id}"
            )
        if env.tombstone(shard_id, replica_id).exists():
            raise ToolError(
                f"shard {shard_id} replica {replica_id} was removed from this host; "
                "use a new replica id"
            )
        for s, r in logdb.list_node_info():
            if s == shard_id and r != replica_id:
                raise ToolError(
                    f"{host.root} holds replica {r} of shard {shard_id}; a host runs one "
                    f"replica per shard: remove its data first (nodehost remove-data "
                    f"{shard_id} {r} --dir {host.root})"
                )
        log = logview.load(logdb, shard_id, replica_id)
        kind = exported.type
        if log is not None and log.bootstrap is not None and log.bootstrap.type != kind:
            raise ToolError(
                f"shard {shard_id} replica {replica_id} here runs a "
                f"{pb.StateMachineType.Name(log.bootstrap.type)}, the snapshot is of a "
                f"{pb.StateMachineType.Name(kind)}"
            )
        if log is not None and log.last_index > exported.index and not force:
            raise UnsafeOperation(
                f"shard {shard_id} replica {replica_id} here holds entries up to index "
                f"{log.last_index}, past the snapshot's index {exported.index}: importing "
                "discards them; --force imports anyway"
            )
        term = max(exported.term, log.state.term if log is not None else 0)
        bootstrap = (
            log.bootstrap
            if log is not None and log.bootstrap is not None
            else pb.Bootstrap(join=True, type=kind)
        )
        membership = _membership(exported.membership, members, exported.index)
        try:
            if log is not None:
                logdb.remove_node_data(shard_id, replica_id)
            store_root = env.snapshot_dir(shard_id, replica_id)
            shutil.rmtree(store_root, ignore_errors=True)
            final = _copy_into_store(str(store_root), shard_id, replica_id, exported, membership)
            logdb.save_bootstrap(shard_id, replica_id, bootstrap)
            logdb.save(
                [
                    logview.Record(
                        shard_id,
                        replica_id,
                        pb.State(term=term, vote=0, commit=exported.index),
                        [],
                        snapshot=final,
                    )
                ]
            )
        except (LogDBError, SnapshotError, OSError) as exc:
            raise ToolError(
                f"the import into {host.root} failed part way ({exc}); run it again"
            ) from None
        return ImportResult(
            shard_id=shard_id,
            replica_id=replica_id,
            index=exported.index,
            term=term,
            membership=logview.view(membership),
            snapshot_path=os.path.dirname(final.filepath),
            replaced=log is not None,
        )


def _copy_into_store(
    root: str,
    shard_id: int,
    replica_id: int,
    exported: pb.Snapshot,
    membership: pb.Membership,
) -> pb.Snapshot:
    """Copy the exported files into the replica's snapshot store as its snapshot."""
    store = SnapshotStore(root, shard_id, replica_id)
    pending = store.begin(exported.index)
    try:
        snapshot = pb.Snapshot()
        snapshot.CopyFrom(exported)
        snapshot.membership.CopyFrom(membership)
        snapshot.imported = True
        snapshot.filepath = _copy(exported.filepath, pending.temp_dir)
        for f in snapshot.files:
            f.filepath = _copy(f.filepath, pending.temp_dir)
    except BaseException:
        pending.abort()
        raise
    return store.commit(pending, snapshot, replace=True)


def _copy(source: str, directory: str) -> str:
    target = os.path.join(directory, os.path.basename(source))
    shutil.copyfile(source, target)
    with open(target, "rb") as f:
        os.fsync(f.fileno())
    return target
