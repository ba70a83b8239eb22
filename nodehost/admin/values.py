"""The values the admin service answers with, and the offline tools report.

Rules:
- Plain dataclasses of ints, strings, bools, lists and dicts: `as_json()` gives what the
  `nodehost` command prints with `--format json` and what travels over the admin
  socket, and `from_json` reads it back, checking every field's type, so a malformed
  answer is an error naming the field, never a half-filled value.
- Replica ids are ints here and strings in JSON (JSON object keys are strings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


class MalformedValue(ValueError):
    """A JSON document does not have the shape of the value it should hold."""


def _get(data: Any, name: str, kind: type[T], where: str) -> T:
    if not isinstance(data, dict):
        raise MalformedValue(f"{where} is not an object")
    value = data.get(name)
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise MalformedValue(f"{where}.{name} is not an integer")
    if not isinstance(value, kind):
        raise MalformedValue(f"{where}.{name} is not a {kind.__name__}")
    return value


def _optional_str(data: dict[str, Any], name: str, where: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise MalformedValue(f"{where}.{name} is not a string")
    return value


def _members(data: Any, name: str, where: str) -> dict[int, str]:
    raw = _get(data, name, dict, where)
    out: dict[int, str] = {}
    for key, target in raw.items():
        if not isinstance(key, str) or not key.isdigit() or not isinstance(target, str):
            raise MalformedValue(f"{where}.{name} holds {key!r}: {target!r}")
        out[int(key)] = target
    return out


def _ids(data: Any, name: str, where: str) -> list[int]:
    raw = _get(data, name, list, where)
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in raw):
        raise MalformedValue(f"{where}.{name} is not a list of integers")
    return [int(i) for i in raw]


@dataclass
class MembershipView:
    """A shard's members by role (replica id -> address, or NodeHost id when hosts are
    addressed by id); removed ids can never come back."""

    config_change_id: int
    voters: dict[int, str]
    non_votings: dict[int, str] = field(default_factory=dict)
    witnesses: dict[int, str] = field(default_factory=dict)
    removed: list[int] = field(default_factory=list)

    def target_of(self, replica_id: int) -> str | None:
        for group in (self.voters, self.non_votings, self.witnesses):
            if replica_id in group:
                return group[replica_id]
        return None

    def role_of(self, replica_id: int) -> str:
        if replica_id in self.voters:
            return "voter"
        if replica_id in self.non_votings:
            return "non-voting"
        if replica_id in self.witnesses:
            return "witness"
        if replica_id in self.removed:
            return "removed"
        return "none"

    def as_json(self) -> dict[str, Any]:
        return {
            "config_change_id": self.config_change_id,
            "voters": {str(k): v for k, v in sorted(self.voters.items())},
            "non_votings": {str(k): v for k, v in sorted(self.non_votings.items())},
            "witnesses": {str(k): v for k, v in sorted(self.witnesses.items())},
            "removed": sorted(self.removed),
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "membership") -> MembershipView:
        return cls(
            config_change_id=_get(data, "config_change_id", int, where),
            voters=_members(data, "voters", where),
            non_votings=_members(data, "non_votings", where),
            witnesses=_members(data, "witnesses", where),
            removed=_ids(data, "removed", where),
        )


@dataclass
class ShardStatus:
    """One replica running on a NodeHost, as that host sees it now (no quorum needed)."""

    shard_id: int
    replica_id: int
    role: str  # leader, follower, non-voting, witness, failed
    leader_id: int  # 0: no leader known
    term: int
    applied_index: int
    state_machine: str  # REGULAR, CONCURRENT, ON_DISK
    membership: MembershipView
    failed: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "shard_id": self.shard_id,
            "replica_id": self.replica_id,
            "role": self.role,
            "leader_id": self.leader_id,
            "term": self.term,
            "applied_index": self.applied_index,
            "state_machine": self.state_machine,
            "membership": self.membership.as_json(),
            "failed": self.failed,
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "shard") -> ShardStatus:
        return cls(
            shard_id=_get(data, "shard_id", int, where),
            replica_id=_get(data, "replica_id", int, where),
            role=_get(data, "role", str, where),
            leader_id=_get(data, "leader_id", int, where),
            term=_get(data, "term", int, where),
            applied_index=_get(data, "applied_index", int, where),
            state_machine=_get(data, "state_machine", str, where),
            membership=MembershipView.from_json(data.get("membership"), f"{where}.membership"),
            failed=_optional_str(data, "failed", where),
        )


@dataclass
class HostInfo:
    """A running NodeHost: who it is, where it listens, what it runs, and which replicas
    it holds data of without running them (stopped ones)."""

    node_host_id: str
    raft_address: str
    shards: list[ShardStatus]
    stopped: list[tuple[int, int]] = field(default_factory=list)  # (shard_id, replica_id)
    hosts: dict[str, str] = field(default_factory=dict)  # NodeHost id -> address (by id)

    def as_json(self) -> dict[str, Any]:
        return {
            "node_host_id": self.node_host_id,
            "raft_address": self.raft_address,
            "shards": [s.as_json() for s in self.shards],
            "stopped": [{"shard_id": s, "replica_id": r} for s, r in self.stopped],
            "hosts": dict(sorted(self.hosts.items())),
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "info") -> HostInfo:
        shards = _get(data, "shards", list, where)
        stopped = _get(data, "stopped", list, where)
        hosts = _get(data, "hosts", dict, where)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in hosts.items()):
            raise MalformedValue(f"{where}.hosts is not an object of strings")
        return cls(
            node_host_id=_get(data, "node_host_id", str, where),
            raft_address=_get(data, "raft_address", str, where),
            shards=[ShardStatus.from_json(s, f"{where}.shards[{i}]") for i, s in enumerate(shards)],
            stopped=[
                (
                    _get(s, "shard_id", int, f"{where}.stopped[{i}]"),
                    _get(s, "replica_id", int, f"{where}.stopped[{i}]"),
                )
                for i, s in enumerate(stopped)
            ],
            hosts=dict(hosts),
        )


@dataclass
class LeaderView:
    """Who leads a shard, as the asked host's replica knows it."""

    shard_id: int
    leader_id: int  # 0: none known
    term: int
    target: str | None  # the leader's address (or NodeHost id), when known

    @property
    def known(self) -> bool:
        return self.leader_id != 0

    def as_json(self) -> dict[str, Any]:
        return {
            "shard_id": self.shard_id,
            "leader_id": self.leader_id,
            "term": self.term,
            "known": self.known,
            "target": self.target,
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "leader") -> LeaderView:
        return cls(
            shard_id=_get(data, "shard_id", int, where),
            leader_id=_get(data, "leader_id", int, where),
            term=_get(data, "term", int, where),
            target=_optional_str(data, "target", where),
        )


@dataclass
class SnapshotView:
    """A snapshot taken on request; `path` is set when it was exported."""

    shard_id: int
    index: int
    path: str | None

    def as_json(self) -> dict[str, Any]:
        return {"shard_id": self.shard_id, "index": self.index, "path": self.path}

    @classmethod
    def from_json(cls, data: Any, where: str = "snapshot") -> SnapshotView:
        return cls(
            shard_id=_get(data, "shard_id", int, where),
            index=_get(data, "index", int, where),
            path=_optional_str(data, "path", where),
        )
