"""`inspect`: what a stopped NodeHost's directory holds, without changing anything.

For every replica with data: its hard state (term, vote, commit), its log range and the
term of its last entry (the figure that decides which member a quorum-loss recovery
starts from: the highest last log term, then index), its latest snapshot, and the
membership its log leads to. The report is also the input the `recover` safety checks
take for the other members (`--inspected`), so it carries the term at the commit index
too: another member's committed entries must be in the chosen log.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodehost.admin.values import MalformedValue, MembershipView
from nodehost.env import replica_snapshot_dir, tombstone_path
from nodehost.rsm.errors import SnapshotCorrupt
from nodehost.rsm.store import complete_indexes, read_snapshot_dir, snapshot_dir_name, store_dir
from nodehost.tools import hostdir, logview
from nodehost.tools.errors import ToolError
from protos import raft_pb2 as pb

_KINDS = {
    pb.REGULAR_STATE_MACHINE: "REGULAR",
    pb.CONCURRENT_STATE_MACHINE: "CONCURRENT",
    pb.ON_DISK_STATE_MACHINE: "ON_DISK",
}


@dataclass
class SnapshotReport:
    index: int
    term: int
    path: str | None  # its directory in the replica's snapshot store, when there
    imported: bool = False
    damaged: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "term": self.term,
            "path": self.path,
            "imported": self.imported,
            "damaged": self.damaged,
        }


@dataclass
class ReplicaReport:
    shard_id: int
    replica_id: int
    node_host_id: str
    state_machine: str
    joined: bool  # started with join=True (added after the shard was founded)
    term: int
    vote: int
    commit: int
    commit_term: int | None  # None when the entry at `commit` is compacted away
    first_index: int
    last_index: int
    last_term: int
    snapshot: SnapshotReport | None
    membership: MembershipView  # as of the commit index: what a restart applies
    pending_changes: list[str] = field(default_factory=list)  # config changes past commit
    removed: bool = False  # its data was deleted or the shard removed it

    @property
    def last_entry(self) -> tuple[int, int]:
        """(term, index) of the last entry: the newer log has the greater pair."""
        return (self.last_term, self.last_index)

    def as_json(self) -> dict[str, Any]:
        return {
            "shard_id": self.shard_id,
            "replica_id": self.replica_id,
            "node_host_id": self.node_host_id,
            "state_machine": self.state_machine,
            "joined": self.joined,
            "term": self.term,
            "vote": self.vote,
            "commit": self.commit,
            "commit_term": self.commit_term,
            "first_index": self.first_index,
            "last_index": self.last_index,
            "last_term": self.last_term,
            "snapshot": None if self.snapshot is None else self.snapshot.as_json(),
            "membership": self.membership.as_json(),
            "pending_changes": list(self.pending_changes),
            "removed": self.removed,
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> ReplicaReport:
        """Read one replica of an `inspect --format json` document back (for recover)."""

        def get(name: str, kind: type) -> Any:
            if not isinstance(data, dict):
                raise MalformedValue(f"{where} is not an object")
            value = data.get(name)
            if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise MalformedValue(f"{where}.{name} is not an integer")
            if not isinstance(value, kind):
                raise MalformedValue(f"{where}.{name} is not a {kind.__name__}")
            return value

        commit_term = data.get("commit_term") if isinstance(data, dict) else None
        if commit_term is not None and (
            isinstance(commit_term, bool) or not isinstance(commit_term, int)
        ):
            raise MalformedValue(f"{where}.commit_term is not an integer")
        return cls(
            shard_id=get("shard_id", int),
            replica_id=get("replica_id", int),
            node_host_id=get("node_host_id", str),
            state_machine=get("state_machine", str),
            joined=get("joined", bool),
            term=get("term", int),
            vote=get("vote", int),
            commit=get("commit", int),
            commit_term=commit_term,
            first_index=get("first_index", int),
            last_index=get("last_index", int),
            last_term=get("last_term", int),
            snapshot=None,
            membership=MembershipView.from_json(get("membership", dict), f"{where}.membership"),
            removed=get("removed", bool),
        )


@dataclass
class HostReport:
    directory: str
    node_host_id: str
    raft_address: str
    deployment_id: int
    replicas: list[ReplicaReport]

    def as_json(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "node_host_id": self.node_host_id,
            "raft_address": self.raft_address,
            "deployment_id": self.deployment_id,
            "replicas": [r.as_json() for r in self.replicas],
        }

    def replica_of(self, shard_id: int) -> ReplicaReport | None:
        for r in self.replicas:
            if r.shard_id == shard_id and not r.removed:
                return r
        return None


def inspect(directory: str | Path, wal_dir: str = "") -> HostReport:
    """Report on every replica of the stopped NodeHost in `directory`; reads only."""
    with hostdir.read_only(directory, wal_dir) as (host, logdb):
        replicas = []
        for shard_id, replica_id in logdb.list_node_info():
            log = logview.load(logdb, shard_id, replica_id)
            if log is None:
                continue
            replicas.append(_report(host, logdb, log))
        return HostReport(
            directory=str(host.root),
            node_host_id=host.node_host_id,
            raft_address=host.raft_address,
            deployment_id=host.deployment_id,
            replicas=replicas,
        )


def _report(host: hostdir.HostDirectory, logdb: Any, log: logview.ReplicaLog) -> ReplicaReport:
    shard_id, replica_id = log.shard_id, log.replica_id
    commit = log.state.commit
    found = logview.config_changes(logdb, log)
    committed, _ = logview.replay(log, found, commit)
    _, changes = logview.replay(log, found, log.last_index)
    pending = [
        f"{c.index}: {logview.describe_change(c.change)}"
        + (f" (refused: {c.refused})" if c.refused else "")
        for c in changes
        if c.index > commit
    ]
    bootstrap = log.bootstrap
    removed = (
        tombstone_path(host.root, shard_id, replica_id).exists() or replica_id in committed.removed
    )
    return ReplicaReport(
        shard_id=shard_id,
        replica_id=replica_id,
        node_host_id=host.node_host_id,
        state_machine=_KINDS.get(bootstrap.type, "UNKNOWN") if bootstrap else "UNKNOWN",
        joined=bool(bootstrap and bootstrap.join),
        term=log.state.term,
        vote=log.state.vote,
        commit=commit,
        commit_term=logview.term_at(logdb, log, commit),
        first_index=log.first_index,
        last_index=log.last_index,
        last_term=log.last_term,
        snapshot=_snapshot(host.root, log),
        membership=logview.view(committed),
        pending_changes=pending,
        removed=removed,
    )


def _snapshot(root: Path, log: logview.ReplicaLog) -> SnapshotReport | None:
    record = log.snapshot
    if record is None or record.index == 0:
        return None
    report = SnapshotReport(record.index, record.term, None, record.imported)
    directory = store_dir(
        str(replica_snapshot_dir(root, log.shard_id, log.replica_id)), log.shard_id, log.replica_id
    )
    if record.dummy or record.witness:
        return report  # metadata only: the state machine keeps its own data
    if not os.path.isdir(directory) or record.index not in complete_indexes(directory):
        report.damaged = "its files are missing from the snapshot store"
        return report
    report.path = os.path.join(directory, snapshot_dir_name(record.index))
    try:
        read_snapshot_dir(report.path)
    except SnapshotCorrupt as exc:
        report.damaged = str(exc)
    return report


def load_reports(path: str) -> list[ReplicaReport]:
    """The replicas of a saved `inspect --format json` document (a file, or "-")."""
    try:
        if path == "-":
            import sys

            text = sys.stdin.read()
        else:
            text = Path(path).read_text()
        document = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ToolError(f"--inspected {path}: cannot read an inspect report: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("replicas"), list):
        raise ToolError(f"--inspected {path}: not the JSON of `nodehost inspect --format json`")
    try:
        return [
            ReplicaReport.from_json(r, f"{path}: replicas[{i}]")
            for i, r in enumerate(document["replicas"])
        ]
    except MalformedValue as exc:
        raise ToolError(f"--inspected {path}: {exc}") from None
