"""Removing members that left (dns and dns-srv with `remove_after`).

Rules:
- Only the leader of the first shard acts, and only on full knowledge: a member is
  missing when every discovered peer answered its probe and none of them is that
  member. A peer that is listed but silent (a pod restarting) may be anyone, so it
  stops every clock; so does a DNS failure, and losing the leadership.
- A member missing for `remove_after` seconds in a row is removed from every shard, one
  member at a time; this node never removes itself. A removal that fails is retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from nodehost import NodeHost, RaftError, ResultCode
from nodehost.discovery.errors import StoreUnavailable
from nodehost.discovery.host import leader_term, peer_status
from nodehost.discovery.logline import Repeats
from nodehost.discovery.records import PeerStatus
from nodehost.discovery.sources import AddressSource

log = logging.getLogger("nodehost.discovery")

ProbeAll = Callable[[Sequence[str]], Awaitable[Mapping[str, PeerStatus | str]]]


class DepartureClock:
    """Since when each member has been missing. Pure: the caller passes the time."""

    def __init__(self, node_id: int, remove_after: float) -> None:
        self.node_id = node_id
        self.remove_after = remove_after
        self.missing_since: dict[int, float] = {}

    def reset(self) -> None:
        """Nothing is known about who is there: every clock starts again."""
        self.missing_since.clear()

    def observe(self, now: float, members: Iterable[int], present: set[int]) -> int | None:
        """Record who is `present` among `members`; the member due for removal, if any."""
        members = set(members)
        for node_id in list(self.missing_since):
            if node_id not in members or node_id in present:
                del self.missing_since[node_id]
        for node_id in sorted(members - present - {self.node_id}):
            self.missing_since.setdefault(node_id, now)
        due = [
            n for n, since in sorted(self.missing_since.items()) if now - since >= self.remove_after
        ]
        return due[0] if due else None

    def removed(self, node_id: int) -> None:
        self.missing_since.pop(node_id, None)


async def remove_departed(
    source: AddressSource,
    probe_all: ProbeAll,
    nh: NodeHost,
    shard_ids: Sequence[int],
    me: PeerStatus,
    remove_after: float,
    repeats: Repeats,
) -> None:
    """Watch discovery and remove members gone for `remove_after` seconds; forever."""
    loop = asyncio.get_running_loop()
    every = min(max(remove_after / 10, 0.5), 10.0)
    clock = DepartureClock(me.node_id, remove_after)
    while True:
        await asyncio.sleep(every)
        if leader_term(nh, shard_ids[0], me.node_id) is None:
            clock.reset()
            continue
        try:
            addresses = await source.addresses()
        except StoreUnavailable as exc:
            clock.reset()
            repeats.say("departures", logging.WARNING, f"cannot tell who left: {exc}")
            continue
        answers = await probe_all(addresses)
        silent = sorted(a for a, s in answers.items() if isinstance(s, str))
        if silent:
            clock.reset()
            repeats.say(
                "departures",
                logging.INFO,
                f"no member is removed while {', '.join(silent)} does not answer",
            )
            continue
        present = {
            s.node_id for s in answers.values() if isinstance(s, PeerStatus) and s.key == me.key
        }
        members = (await asyncio.to_thread(peer_status, nh, me, shard_ids[0])).members
        now = loop.time()
        node_id = clock.observe(now, members, present)
        if node_id is None:
            continue
        log.warning(
            "removing node %d (%s): missing from %s for %.0fs",
            node_id,
            members.get(node_id, "?"),
            source.describe(),
            now - clock.missing_since[node_id],
        )
        if await _remove(nh, shard_ids, node_id):
            clock.removed(node_id)


async def _remove(nh: NodeHost, shard_ids: Sequence[int], node_id: int) -> bool:
    for shard_id in shard_ids:
        try:
            membership = await nh.aio_get_shard_membership(shard_id, 5.0)
            if node_id not in membership.nodes and node_id not in membership.non_votings:
                continue
            outcome = await nh.request_delete_replica(shard_id, node_id, 0, 5.0)
            if outcome.code is not ResultCode.COMPLETED:
                outcome.raise_for_code()
        except RaftError as exc:
            log.warning("removing node %d from shard %d failed: %s", node_id, shard_id, exc)
            return False
    log.warning("removed node %d from the cluster", node_id)
    return True
