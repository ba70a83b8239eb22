"""The two documents discovery exchanges, and their strict JSON forms.

- `LeaderRecord`: what the etcd key holds. Written first by the node that wins the
  bootstrap race (`bootstrapped: false`: "I am creating the cluster"), then by every
  leader (`bootstrapped: true`) with its Raft and API addresses and its term.
- `PeerStatus`: what a node answers a probe with: who it is, and whether it is a member
  of a running cluster (and which members it knows).

Rules: a document read from the network or the store is hostile until parsed here;
anything malformed is an error naming the field, never a guess. Sizes are bounded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FORMAT = 1
MAX_DOCUMENT_BYTES = 256 * 1024
_MAX_ID = 2**64 - 1
_MAX_TEXT = 512


class DocumentError(ValueError):
    """A record or a status that does not parse; the message names the field."""


@dataclass(frozen=True, slots=True)
class LeaderRecord:
    node_id: int
    raft_addr: str
    api_addr: str
    term: int = 0
    bootstrapped: bool = True

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "format": FORMAT,
                "node_id": self.node_id,
                "raft_addr": self.raft_addr,
                "api_addr": self.api_addr,
                "term": self.term,
                "bootstrapped": self.bootstrapped,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> LeaderRecord:
        obj = _object(data)
        if obj.get("format") != FORMAT:
            raise DocumentError(f"format {obj.get('format')!r} is not {FORMAT}")
        bootstrapped = obj.get("bootstrapped")
        if not isinstance(bootstrapped, bool):
            raise DocumentError(f"bootstrapped must be true or false, got {bootstrapped!r}")
        return cls(
            node_id=_integer(obj, "node_id", 1),
            raft_addr=_text(obj, "raft_addr"),
            api_addr=_text(obj, "api_addr"),
            term=_integer(obj, "term", 0),
            bootstrapped=bootstrapped,
        )


@dataclass(frozen=True, slots=True)
class PeerStatus:
    key: str
    node_id: int
    raft_addr: str
    api_addr: str
    member: bool = False  # runs a replica of a cluster that has (or had) a leader
    leader_id: int = 0
    term: int = 0
    members: Mapping[int, str] = field(default_factory=dict)

    @property
    def is_leader(self) -> bool:
        return self.member and self.leader_id == self.node_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "key": self.key,
            "node_id": self.node_id,
            "raft_addr": self.raft_addr,
            "api_addr": self.api_addr,
            "member": self.member,
            "leader_id": self.leader_id,
            "term": self.term,
            "members": {str(k): v for k, v in sorted(self.members.items())},
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> PeerStatus:
        obj = _object(data)
        if obj.get("format") != FORMAT:
            raise DocumentError(f"format {obj.get('format')!r} is not {FORMAT}")
        member = obj.get("member")
        if not isinstance(member, bool):
            raise DocumentError(f"member must be true or false, got {member!r}")
        raw_members = obj.get("members")
        if not isinstance(raw_members, dict) or len(raw_members) > 10_000:
            raise DocumentError("members must be an object of id -> address")
        members: dict[int, str] = {}
        for name, address in raw_members.items():
            if not name.isdigit() or not 1 <= int(name) <= _MAX_ID:
                raise DocumentError(f"members: {name!r} is not a node id")
            if not isinstance(address, str) or not 0 < len(address) <= _MAX_TEXT:
                raise DocumentError(f"members: node {name}'s address is not a string")
            members[int(name)] = address
        return cls(
            key=_text(obj, "key"),
            node_id=_integer(obj, "node_id", 1),
            raft_addr=_text(obj, "raft_addr"),
            api_addr=_text(obj, "api_addr"),
            member=member,
            leader_id=_integer(obj, "leader_id", 0),
            term=_integer(obj, "term", 0),
            members=members,
        )


def _object(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"{len(data)} bytes is over the {MAX_DOCUMENT_BYTES} byte limit")
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DocumentError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise DocumentError(f"a JSON object was expected, not {type(obj).__name__}")
    return obj


def _integer(obj: Mapping[str, Any], name: str, low: int) -> int:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= _MAX_ID:
        raise DocumentError(f"{name} must be an integer {low}..2^64-1, got {value!r}")
    return value


def _text(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_TEXT:
        raise DocumentError(f"{name} must be a non-empty string, got {value!r:.80}")
    return value
