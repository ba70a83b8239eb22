"""Heartbeats: the leader's round, and what the other members do with one.

Rules:
- Only the member whose database replica leads runs rounds, every heartbeat interval.
  A round sends every other member the member list (name, address, certificate), so
  each refreshes whom it trusts; the members that answer within the interval get their
  `heartbeat` time set (the leader's too), and every member's `role` is set from the
  database's membership (voter, stand-by, spare; PENDING until the database knows it).
  Join tokens expired for long (tokenrecords.PURGE_AFTER) are deleted in the same
  transaction.
- A member that is in the database's membership but in no row of the member table is a
  stray (a member removed with --force that came back, a join that failed half-way).
  The leader removes it from the database once it has stayed a stray for
  STRAY_ROUNDS rounds, so a member in the middle of joining is never caught.
- A heartbeat whose list leaves out the receiving member is not applied to its trust
  store: that member is being removed, and finds out by itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nodehost.cluster.errors import BadRequest, ClusterError
from nodehost.cluster.hooks import RoleChange
from nodehost.cluster.members import Cursor, Member, Role, now_text, parse_time, read_members
from nodehost.cluster.names import database_address
from nodehost.cluster.state import Host
from nodehost.cluster.tokenrecords import purge_expired
from nodehost.cluster.truststore import Remote
from nodehost.sqlite import NodeInfo
from nodehost.sqlite import Role as DatabaseRole

log = logging.getLogger("nodehost.cluster")

STRAY_ROUNDS = 3
ROLE_NAMES = {
    DatabaseRole.VOTER: Role.VOTER,
    DatabaseRole.STANDBY: Role.STANDBY,
    DatabaseRole.SPARE: Role.SPARE,
}


@dataclass(frozen=True, slots=True)
class RoundResult:
    members: list[Member]
    answered: set[str]
    roles: dict[str, RoleChange]
    strays: list[NodeInfo]  # database members to remove now


class StrayTracker:
    """Counts the consecutive rounds each database member has been a stray."""

    def __init__(self, rounds: int = STRAY_ROUNDS) -> None:
        self._rounds = rounds
        self._seen: dict[int, int] = {}

    def update(self, strays: Iterable[NodeInfo]) -> list[NodeInfo]:
        current = {node.id: node for node in strays}
        self._seen = {node_id: self._seen.get(node_id, 0) + 1 for node_id in current}
        return [current[i] for i, count in sorted(self._seen.items()) if count >= self._rounds]


def payload(host: Host, members: list[Member]) -> dict[str, Any]:
    return {
        "leader": host.name,
        "members": [
            {"name": m.name, "address": m.address, "certificate": m.certificate} for m in members
        ],
    }


async def run_round(host: Host, strays: StrayTracker) -> RoundResult:
    members = await host.in_thread(host.database.read, read_members)
    nodes = await host.in_thread(host.database.nodes)
    roles = {node.address: ROLE_NAMES[node.role] for node in nodes}
    message = payload(host, members)
    timeout = max(host.heartbeat_interval, 1.0)

    async def beat(member: Member) -> str | None:
        def send() -> None:
            host.peer(member.address, timeout).request("POST", "/core/internal/heartbeat", message)

        try:
            await host.in_thread(send)
        except ClusterError as exc:
            log.info("heartbeat to %s (%s) failed: %s", member.name, member.address, exc)
            return None
        return member.name

    answers = await asyncio.gather(*(beat(m) for m in members if m.name != host.name))
    answered = {name for name in answers if name is not None} | {host.name}
    now = now_text()
    changes = await host.in_thread(
        host.database.transaction, lambda cursor: record(cursor, answered, roles, now)
    )
    host.trust.replace(remotes_of(members))
    known = {database_address(m.address) for m in members}
    removable = strays.update(node for node in nodes if node.address not in known)
    return RoundResult(members, answered, changes, removable)


def record(
    cursor: Cursor, answered: set[str], roles: dict[str, Role], now: str
) -> dict[str, RoleChange]:
    """Set heartbeat times and roles (inside the round's transaction)."""
    changes: dict[str, RoleChange] = {}
    for member in read_members(cursor):
        role = roles.get(database_address(member.address)) or _role(member.role)
        heartbeat = now if member.name in answered else member.heartbeat
        if role != member.role or heartbeat != member.heartbeat:
            cursor.execute(
                "UPDATE core_cluster_members SET role = ?, heartbeat = ? WHERE name = ?",
                (str(role), heartbeat, member.name),
            )
        changes[member.name] = RoleChange(member.role, str(role))
    moment = parse_time(now)
    assert moment is not None
    purge_expired(cursor, moment)
    return changes


def receive(host: Host, body: Any, own_fingerprint: str) -> bool:
    """Apply a leader's heartbeat; False when the list leaves this member out."""
    if not isinstance(body, dict) or not isinstance(body.get("members"), list):
        raise BadRequest("a heartbeat carries a list of members")
    remotes = [Remote.from_json(item) for item in body["members"]]
    if not any(r.name == host.name and r.fingerprint == own_fingerprint for r in remotes):
        return False
    host.trust.replace(remotes)
    return True


def remotes_of(members: Iterable[Member]) -> list[Remote]:
    return [Remote(m.name, m.address, m.certificate, m.fingerprint) for m in members]


def _role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        return Role.SPARE  # a row someone edited by hand: the database does not know it
