"""Why a request could not be served, in words that say what to do.

A 503 during a failover and a 503 with most nodes down call for different things (retry
now, or bring nodes back), and a node removed from the cluster can never serve again.
This module tells them apart from what the node knows locally.

Rules:
- `ClusterWatch` only records: which peer addresses answered the last dial (the
  NodeHost's connection events) and whether a membership changed since last asked.
- `unavailable` is pure: the same knowledge gives the same words, so each case is
  tested alone.
- A peer counts as down only once this node dialled it and failed: followers never
  dial each other, and "no quorum" must never be a guess. Without proof of a lost
  quorum, a request that found no leader, or whose leader changed or stopped
  answering, is a leader change: worth retrying at once.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from nodehost import ConnectionInfo, ISystemEventListener, NodeInfo


class ClusterWatch(ISystemEventListener):
    """Called on the NodeHost's event thread; read from the service's loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reached: dict[str, bool] = {}
        self._membership_changed = threading.Event()
        self._membership_changed.set()  # nothing was checked yet

    def connection_established(self, info: ConnectionInfo) -> None:
        with self._lock:
            self._reached[info.address] = True

    def connection_failed(self, info: ConnectionInfo) -> None:
        with self._lock:
            self._reached[info.address] = False

    def membership_changed(self, info: NodeInfo) -> None:
        self._membership_changed.set()

    def node_ready(self, info: NodeInfo) -> None:
        self._membership_changed.set()

    def reached(self) -> dict[str, bool]:
        with self._lock:
            return dict(self._reached)

    def take_membership_change(self) -> bool:
        """True once after each membership change (and at first)."""
        if not self._membership_changed.is_set():
            return False
        self._membership_changed.clear()
        return True


@dataclass(frozen=True, slots=True)
class Leader:
    """A shard's leader as this node knew it at one moment (0: none known)."""

    leader_id: int
    term: int


def down_without_quorum(
    node_id: int, members: Mapping[int, str], reached: Mapping[str, bool]
) -> list[int]:
    """The members known to be down when, without them, no majority is left; else []."""
    down = sorted(n for n, a in members.items() if n != node_id and reached.get(a) is False)
    majority = len(members) // 2 + 1
    return down if members and len(members) - len(down) < majority else []


def unavailable(
    *,
    what: str,
    timeout: float,
    timed_out_write: bool,
    node_id: int,
    before: Leader,
    now: Leader,
    members: Mapping[int, str],
    reached: Mapping[str, bool],
) -> str:
    """The error text of a request that failed for want of a leader or a quorum.

    `timed_out_write`: a write was sent and not answered, so it may still be applied."""
    maybe = " (it may still be applied)" if timed_out_write else ""
    down = down_without_quorum(node_id, members, reached)
    if down:
        names = ", ".join(f"node {n} ({members[n]})" for n in down)
        return (
            f"{what} failed after {timeout:g}s: no quorum, {len(members) - len(down)} of "
            f"{len(members)} nodes are up and {names} "
            f"{'does' if len(down) == 1 else 'do'} not answer{maybe}; start "
            f"{'it' if len(down) == 1 else 'them'} or wait for the network, then retry"
        )
    leader_down = now.leader_id != 0 and reached.get(members.get(now.leader_id, "")) is False
    if now.leader_id == 0:
        detail = (
            f"no leader is known yet (node {before.leader_id} was the leader)"
            if before.leader_id
            else "no leader is known yet"
        )
    elif (now.leader_id, now.term) != (before.leader_id, before.term) and before.leader_id:
        detail = f"the leader changed from node {before.leader_id} to node {now.leader_id}"
    elif leader_down:
        detail = f"the leader, node {now.leader_id}, does not answer; an election is due"
    elif timed_out_write:
        return (
            f"{what} timed out after {timeout:g}s: the leader, node {now.leader_id}, did "
            f"not commit it in time{maybe}; retry if that is safe, or use cas"
        )
    else:
        detail = f"the leader, node {now.leader_id}, did not answer in time"
    tail = "; retry if that is safe, or use cas" if timed_out_write else "; retry"
    return f"{what} failed after {timeout:g}s: leader changing, {detail}{maybe}{tail}"


def removed_text(node_id: int, state_dir: str) -> str:
    return (
        f"node {node_id} was removed from the cluster and can never serve again: stop it "
        f"and delete {state_dir}; to add a node here again, start one with a new --id and "
        "--join"
    )
