"""Removing a member, from any member, the removed one included.

Order (Microcluster's):
1. Refuse what cannot be done: an unknown name; the cluster's last member; the last
   voter when no stand-by can take its vote (otherwise a stand-by is promoted first).
2. The member being removed runs its pre_remove hook. If it cannot be reached, the
   removal stops here with a message to use --force (nothing has changed); with --force
   it goes on.
3. If it leads the database, leadership moves to another voter.
4. Its row leaves the member table (from then on it is not trusted), then its replica
   leaves the database.
5. It is told to reset: it stops its database and forgets the cluster, back to
   "uninitialized" (with --force a failure here is only logged).
6. Every remaining member runs post_remove.

A member asked to remove itself, or one whose replica hears no leader, hands the request
to another member (a forwarded request is never handed on again); the member removing
itself answers once it has been reset.
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import Any, Protocol

from nodehost.cluster.errors import ClusterError, Conflict, NotFound, Unavailable, Unreachable
from nodehost.cluster.members import Member, Role, delete_member, read_members
from nodehost.cluster.names import database_address
from nodehost.cluster.state import Host
from nodehost.sqlite import NodeInfo
from nodehost.sqlite import Role as DatabaseRole
from nodehost.sqlite import errors as sql_errors

log = logging.getLogger("nodehost.cluster")

HOOK_TIMEOUT = 30.0


class RemovalHost(Host, Protocol):
    async def run_hook(self, name: str, *args: Any) -> None: ...
    async def wait_reset(self, timeout: float) -> bool: ...


async def remove(host: RemovalHost, name: str, force: bool, *, forwarded: bool) -> None:
    members = await host.in_thread(host.database.read, read_members)
    target = next((m for m in members if m.name == name), None)
    if target is None:
        raise NotFound(f"no member named {name!r} in the cluster")
    others = [m for m in members if m.name != name]
    if not [m for m in others if m.role != Role.PENDING]:
        raise Conflict(
            f"cannot remove {name!r}: it is the cluster's last member and its last voter "
            "(a cluster cannot be left without one)"
        )
    itself = name == host.name  # asked now: once reset, this member has no name
    if itself or not host.database.has_replica():
        if forwarded:
            raise Unavailable(
                "this member cannot carry out the removal now: its database hears no leader"
            )
        await _forward(host, name, force, [m for m in others if m.name != host.name])
        if itself and not await host.wait_reset(30.0):
            raise ClusterError(f"{name!r} was removed, but this member did not reset in time")
        return
    await _carry_out(host, target, force)


async def _forward(host: RemovalHost, name: str, force: bool, candidates: list[Member]) -> None:
    problems = []
    path = f"/core/internal/members/{urllib.parse.quote(name, safe='')}"
    query = {"force": "1" if force else "0"}
    for member in sorted(candidates, key=lambda m: m.role != Role.VOTER):
        client = host.peer(member.address, HOOK_TIMEOUT * 3)
        try:
            await host.in_thread(lambda c=client: c.request("DELETE", path, query=query))
            return
        except (Unreachable, Unavailable) as exc:
            problems.append(f"{member.name}: {exc}")
    raise Unavailable(
        "no other member could carry out the removal: " + ("; ".join(problems) or "none left")
    )


async def _carry_out(host: RemovalHost, target: Member, force: bool) -> None:
    name = target.name
    app = host.database.require_app()
    nodes = await host.in_thread(host.database.nodes)
    node = next((n for n in nodes if n.address == database_address(target.address)), None)
    if node is not None and node.role is DatabaseRole.VOTER:
        await _keep_a_voter(host, node, nodes)

    try:
        await host.in_thread(
            lambda: host.peer(target.address, HOOK_TIMEOUT).request(
                "POST", "/core/internal/hooks/pre-remove", {"force": force}
            )
        )
    except ClusterError as exc:
        if not force:
            raise type(exc)(
                f"{name!r} ({target.address}) could not run its pre-remove hook: {exc}. "
                "Nothing was changed; use --force to remove a member that is gone for good"
            ) from None
        log.warning("removing %s with --force: pre-remove hook: %s", name, exc)

    leader = app.leader()
    if node is not None and leader is not None and leader.id == node.id:
        voters = [n for n in nodes if n.role is DatabaseRole.VOTER and n.id != node.id]
        if voters:
            await _database_call(host, lambda: app.transfer(voters[0].id, 10.0))

    await host.in_thread(host.database.transaction, lambda cursor: delete_member(cursor, name))
    host.trust.remove(name)
    if node is not None:
        await _database_call(host, lambda: app.remove_member(node.id, 10.0))
    log.info("member %s removed from the cluster (force=%s)", name, force)

    try:
        await host.in_thread(
            lambda: host.peer(target.address, HOOK_TIMEOUT).request("POST", "/core/internal/reset")
        )
    except ClusterError as exc:
        message = f"{name!r} was removed, but could not be told to reset its state: {exc}"
        if not force:
            raise Unreachable(message) from None
        log.info(message)

    await host.run_hook("post_remove", force)
    try:
        await host.in_thread(lambda: _broadcast_post_remove(host, {name, host.name}, force))
    except ClusterError as exc:
        log.warning("post-remove hooks after removing %s: %s", name, exc)


async def _keep_a_voter(host: RemovalHost, node: NodeInfo, nodes: list[NodeInfo]) -> None:
    """When `node` is the last voter, give its vote to a stand-by first."""
    if any(n.role is DatabaseRole.VOTER and n.id != node.id for n in nodes):
        return
    standby = next((n for n in nodes if n.role is DatabaseRole.STANDBY), None)
    if standby is None:
        raise Conflict(
            "cannot remove the last voter: no other member holds a replica that could take its vote"
        )
    app = host.database.require_app()
    await _database_call(host, lambda: app.assign(standby.id, int(DatabaseRole.VOTER), 10.0))


async def _database_call(host: RemovalHost, call: Any) -> None:
    try:
        await host.in_thread(call)
    except sql_errors.Error as exc:
        raise Unavailable(f"the database could not change its membership: {exc}") from None


def _broadcast_post_remove(host: RemovalHost, skip: set[str], force: bool) -> None:
    failures = []
    for remote in host.trust.remotes():
        if remote.name in skip:
            continue
        try:
            host.peer(remote.address, HOOK_TIMEOUT).request(
                "POST", "/core/internal/hooks/post-remove", {"force": force}, notification=True
            )
        except ClusterError as exc:
            failures.append(f"{remote.name}: {exc}")
    if failures:
        raise ClusterError("; ".join(failures))
