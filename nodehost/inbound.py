"""The host's side of admission: every message from a peer passes here, on the engine
loop, right before its replica's core would step it.

Rules:
- The core decides what a message may be (nodehost/raft/admission.py). Here is only
  what the host alone knows: whether a snapshot fits the replica's state machine kind
  and came with its file.
- A refused message is dropped, counted by reason (`refused`, and the
  nodehost_refused_messages metric), and described in at most one log line per reason
  every LOG_EVERY seconds, saying how many more there were. A flood of bad messages
  costs a counter increment each.
- Addresses come only from memberships: the initial members, the membership a replica
  applied, and the one a leader or candidate presents in a message that passed
  admission (how a joining replica learns where to answer). A presented membership only
  fills in replicas without an address, never moves one. What a batch says about its
  own source is never used.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Protocol

from nodehost.config import Config
from nodehost.metrics import Metrics
from nodehost.raft import Peer, Refusal, describe_message
from protos import raft_pb2 as pb
from statemachine import StateMachineType
from transport.registry import Registry

log = logging.getLogger("nodehost.admission")

LOG_EVERY = 1.0  # seconds between two log lines of the same reason

_INSTALL_SNAPSHOT = pb.INSTALL_SNAPSHOT
_CHECKSUM_BYTES = 32  # sha256 of the snapshot file's payload


class Node(Protocol):
    """What admission reads of a replica (nodehost.replica.stepping.LoopSide)."""

    @property
    def shard_id(self) -> int: ...
    @property
    def replica_id(self) -> int: ...
    @property
    def config(self) -> Config: ...
    @property
    def peer(self) -> Peer: ...
    @property
    def kind(self) -> StateMachineType: ...


class Admission:
    """Admits messages for the replicas of one NodeHost (used on the engine loop only)."""

    def __init__(self, registry: Registry, metrics: Metrics) -> None:
        self._registry = registry
        self._metrics = metrics
        self.refused: Counter[Refusal] = Counter()
        self._logged: dict[Refusal, tuple[float, int]] = {}

    def admit(self, node: Node, m: pb.Message) -> bool:
        """True if `m` may be stepped into `node`'s core; else it was counted and logged."""
        refusal = node.peer.check(m)
        if refusal is None and m.type == _INSTALL_SNAPSHOT:
            refusal = snapshot_misfit(node, m.snapshot)
        if refusal is not None:
            self.refuse(node, m, refusal)
            return False
        if m.HasField("snapshot"):
            learn_routes(self._registry, node.shard_id, m.snapshot.membership, replace=False)
        return True

    def check_snapshot(self, node: Node, m: pb.Message) -> bool:
        """Before a received snapshot's files are moved into the replica's store: the
        same checks, without learning anything (the message is stepped, and checked
        again, only after the files are in place)."""
        refusal = node.peer.check(m) or snapshot_misfit(node, m.snapshot)
        if refusal is not None:
            self.refuse(node, m, refusal)
            return False
        return True

    def refuse(self, node: Node, m: pb.Message, refusal: Refusal) -> None:
        self.refused[refusal] += 1
        self._metrics.refused(refusal.value)
        now = time.monotonic()
        last, logged_total = self._logged.get(refusal, (-LOG_EVERY, 0))
        if now - last < LOG_EVERY:
            return
        total = self.refused[refusal]
        more = total - logged_total - 1
        log.warning(
            "shard %d replica %d refused a message (%s): %s%s",
            node.shard_id,
            node.replica_id,
            refusal.value,
            _describe(m),
            f" ({more} more since the last report)" if more > 0 else "",
        )
        self._logged[refusal] = (now, total)


def snapshot_misfit(node: Node, s: pb.Snapshot) -> Refusal | None:
    """A snapshot the replica's state machine could not take: the core cannot tell
    (it knows no state machine), and the replica would stop recovering from it."""
    if node.config.is_witness:
        return None  # metadata only, checked by the core
    kind = node.kind
    if s.type and s.type != kind.value:
        return Refusal.BAD_SNAPSHOT
    if s.dummy:
        # Only an on-disk state machine keeps its own data; any other needs the file.
        return None if kind is StateMachineType.ON_DISK else Refusal.BAD_SNAPSHOT
    if not s.filepath or len(s.checksum) != _CHECKSUM_BYTES:
        return Refusal.BAD_SNAPSHOT
    return None


def learn_routes(
    registry: Registry, shard_id: int, membership: pb.Membership, replace: bool
) -> None:
    """Record the addresses of `membership`'s replicas; with `replace` False only of
    those the registry has none for. An address the transport could not dial is
    logged and skipped: a replica cannot be reached there, but nothing else breaks."""
    for group in (membership.addresses, membership.non_votings, membership.witnesses):
        for rid, address in group.items():
            if not replace and registry.resolve(shard_id, rid) is not None:
                continue
            try:
                registry.add(shard_id, rid, address)
            except ValueError as exc:
                log.warning("shard %d: no route to replica %d: %s", shard_id, rid, exc)


def _describe(m: pb.Message) -> str:
    try:
        text = describe_message(m)
    except Exception:  # a config change that does not decode, say: still describe it
        text = f"{m.from_id}->{m.to} type {m.type} t={m.term}"
    if len(text) > 300:
        text = text[:297] + "..."
    return f"shard {m.shard_id} {text}"
