"""The leader keeps its record in etcd (etcd-kv mode).

Rules:
- Only the leader of the first shard writes, and only with check-and-set: created if
  the key is absent, else swapped at the revision it read; never over a record of a
  higher term (a deposed leader that has not noticed yet cannot overwrite its
  successor).
- It re-reads the key every REREAD_SECONDS while it leads, so an edit or a deletion by
  someone else is repaired; a node checks whether it leads every LEADER_CHECK_SECONDS,
  so a new leader is published within an election timeout and a fraction of a second.
- An unreachable store is logged once when the outage starts (then every minute) and
  once when it ends; the cluster goes on serving, as discovery only serves joiners.
"""

from __future__ import annotations

import asyncio
import logging

from nodehost import NodeHost
from nodehost.discovery.errors import StoreAnswerInvalid, StoreUnavailable
from nodehost.discovery.etcd import EtcdStore, Stored
from nodehost.discovery.host import leader_term
from nodehost.discovery.logline import Repeats
from nodehost.discovery.records import LeaderRecord

log = logging.getLogger("nodehost.discovery")

LEADER_CHECK_SECONDS = 0.2
REREAD_SECONDS = 5.0
OUTAGE_LOG_SECONDS = 60.0


async def publish_leader(
    store: EtcdStore, nh: NodeHost, shard_id: int, me: LeaderRecord, repeats: Repeats
) -> None:
    """Keep `me` (with the current term) under the key while this node leads; forever."""
    loop = asyncio.get_running_loop()
    known: Stored | None = None
    read_at = -REREAD_SECONDS
    outage_since: float | None = None
    while True:
        await asyncio.sleep(LEADER_CHECK_SECONDS)
        term = leader_term(nh, shard_id, me.node_id)
        if term is None:
            known = None
            continue
        desired = LeaderRecord(me.node_id, me.raft_addr, me.api_addr, term, True)
        now = loop.time()
        if known is not None and known.record == desired and now - read_at < REREAD_SECONDS:
            continue
        try:
            known = await store.read()
            read_at = now
            if outage_since is not None:
                log.warning(
                    "discovery store %s is reachable again after %.0fs",
                    store.describe(),
                    now - outage_since,
                )
                outage_since = None
            if known is not None and known.record == desired:
                continue
            if known is not None and known.record.term > term:
                repeats.say(
                    "stale",
                    logging.INFO,
                    f"{store.describe()} names node {known.record.node_id} with term "
                    f"{known.record.term} > {term}: this node is no longer the leader",
                )
                continue
            if known is None:
                wrote = await store.create(desired)
            else:
                wrote = await store.swap(desired, known.mod_revision)
            known, read_at = None, -REREAD_SECONDS  # read the new revision back next time
            if wrote:
                log.info(
                    "published node %d (raft %s, api %s, term %d) as leader under %s",
                    me.node_id,
                    me.raft_addr,
                    me.api_addr,
                    term,
                    store.describe(),
                )
        except StoreUnavailable as exc:
            known = None
            if outage_since is None:
                outage_since = now
                repeats.forget("outage")
            repeats.say(
                "outage",
                logging.WARNING,
                f"discovery store unreachable ({exc}); the cluster keeps serving, "
                "but a node started now cannot find it until the store is back",
                every=OUTAGE_LOG_SECONDS,
            )
        except StoreAnswerInvalid as exc:
            known = None
            repeats.say("invalid", logging.ERROR, f"cannot publish the leader: {exc}")
