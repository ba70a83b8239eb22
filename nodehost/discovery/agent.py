"""The discovery agent of one node: find (or found) the cluster, then keep the store
and the membership in step with it.

    agent = Discovery(config, node_id=4, raft_addr="10.0.0.4:12000",
                      api_addr="10.0.0.4:11000", probe=probe, join=join)
    joined = await agent.find_cluster()   # False: bootstrap {4: raft_addr}; True: join
    ...start the replicas, serve the application's API (answering probes with
    agent.status(nh, shard_id))...
    await agent.maintain(nh, [shard_id, ...])   # runs until cancelled

Rules:
- Only the public NodeHost API is used: get_leader_id, get_node_host_info and
  request_delete_replica. Joining goes through the application's own API (`join`), as
  the application decides how a member adds a node.
- `find_cluster` retries with capped, jittered back-off until `patience` runs out; every
  wait says why, in one log line, when the reason changes and then every 10 s. It
  bootstraps only on a `decide` verdict, never because something failed.
- `maintain` never stops the cluster: a store or DNS failure is logged (once per
  outage, and when it ends) and retried; serving goes on, since discovery is needed
  only by nodes that join.
- etcd: the leader of the first shard writes its record with check-and-set: created if
  absent, else swapped only at the revision it read, and never over a record of a
  higher term (a deposed leader cannot overwrite its successor). It re-reads the key
  every few seconds, so an edit or a deletion is repaired.
- dns, dns-srv with `remove_after`: the leader removes a member only after it has been
  missing for that long while every discovered peer answered (so it knows who is
  there); a peer that does not answer stops the clock for everyone. One removal at a
  time, never this node.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence

from nodehost import NodeHost, NodeHostInfoOption, RaftError, ResultCode
from nodehost.discovery.config import DiscoveryConfig, EtcdConfig
from nodehost.discovery.decide import (
    Bootstrap,
    Decision,
    Join,
    Wait,
    decide_by_peers,
    decide_by_record,
)
from nodehost.discovery.errors import (
    DiscoveryError,
    GaveUp,
    PeerUnavailable,
    StoreAnswerInvalid,
    StoreUnavailable,
)
from nodehost.discovery.etcd import EtcdStore, Stored
from nodehost.discovery.records import LeaderRecord, PeerStatus
from nodehost.discovery.sources import AddressSource, source_for

log = logging.getLogger("nodehost.discovery")

Probe = Callable[[str], Awaitable[PeerStatus]]
"""Ask the node at an API address who it is; raise PeerUnavailable when it cannot say."""
Joiner = Callable[[str], Awaitable[None]]
"""Ask the member at an API address to add this node; JoinRefused is final, PeerUnavailable
is retried."""

LEADER_CHECK_SECONDS = 0.2  # how often a node asks the host whether it leads
REREAD_SECONDS = 5.0  # how often a publishing leader re-reads the key it holds
REPEAT_LOG_SECONDS = 10.0
OUTAGE_LOG_SECONDS = 60.0
_FIRST_DELAY = 0.2
_MAX_WAIT_DELAY = 1.0
_MAX_STORE_DELAY = 5.0


class Discovery:
    def __init__(
        self,
        config: DiscoveryConfig,
        *,
        node_id: int,
        raft_addr: str,
        api_addr: str,
        probe: Probe,
        join: Joiner,
    ) -> None:
        self.config = config
        self.node_id = node_id
        self.raft_addr = raft_addr
        self.api_addr = api_addr
        self._probe = probe
        self._join = join
        backend = config.backend
        self.store = EtcdStore(backend, config.key) if isinstance(backend, EtcdConfig) else None
        self.source: AddressSource | None = (
            None if isinstance(backend, EtcdConfig) else source_for(backend)
        )
        self._said: dict[str, tuple[str, float]] = {}  # topic -> (last line, when)

    def describe(self) -> str:
        if self.store is not None:
            return self.store.describe()
        assert self.source is not None
        return self.source.describe()

    async def close(self) -> None:
        if self.store is not None:
            await self.store.close()

    # ------------------------------------------------------------ who we are

    def status(self, nh: NodeHost | None = None, shard_id: int = 1) -> PeerStatus:
        """This node's answer to a probe: a member once its replica of `shard_id` runs
        and lists it; before that (or after its removal) not a member."""
        me = PeerStatus(self.config.key, self.node_id, self.raft_addr, self.api_addr)
        if nh is None:
            return me
        try:
            info = nh.get_node_host_info(NodeHostInfoOption(skip_log_info=True))
        except RaftError:
            return me
        for shard in info.shard_info_list:
            if shard.shard_id == shard_id:
                running = shard.failed is None and self.node_id in shard.nodes
                return PeerStatus(
                    self.config.key,
                    self.node_id,
                    self.raft_addr,
                    self.api_addr,
                    member=running,
                    leader_id=shard.leader_id,
                    term=shard.term,
                    members=dict(shard.nodes),
                )
        return me

    # ------------------------------------------------------------ finding a cluster

    async def find_cluster(self) -> bool:
        """Wait until this node may bootstrap (False) or was added to a cluster (True)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.patience
        delay = _FIRST_DELAY
        log.info("node %d looks for its cluster through %s", self.node_id, self.describe())
        while True:
            store_down = warn = False
            try:
                decision = await self._decide()
                if isinstance(decision, Bootstrap):
                    log.info("node %d bootstraps the cluster: %s", self.node_id, decision.reason)
                    return False
                if isinstance(decision, Join):
                    try:
                        await self._join_through(decision)
                    except PeerUnavailable as exc:
                        raise PeerUnavailable(f"{decision.reason}, but {exc}") from None
                    return True
                reason = decision.reason
            except StoreUnavailable as exc:
                reason, store_down, warn = str(exc), True, True
            except StoreAnswerInvalid as exc:
                reason, warn = str(exc), True
            except PeerUnavailable as exc:
                reason = str(exc)
            left = deadline - loop.time()
            if left <= 0:
                raise GaveUp(
                    f"no cluster found through {self.describe()} in "
                    f"{self.config.patience:g}s: {reason}"
                )
            delay = min(delay * 1.5, _MAX_STORE_DELAY if store_down else _MAX_WAIT_DELAY)
            pause = min(left, delay * random.uniform(0.8, 1.2))
            self._say(
                "find",
                logging.WARNING if warn else logging.INFO,
                f"node {self.node_id}: {reason}; retrying in {pause:.1f}s",
                key=reason,
            )
            await asyncio.sleep(pause)

    async def _decide(self) -> Decision:
        me = self.status()
        if self.store is not None:
            return await self._decide_by_store(me)
        assert self.source is not None
        addresses = await self.source.addresses()
        if not addresses:
            return Wait(f"{self.source.describe()} lists no address yet")
        answers = await self._probe_all(addresses)
        return decide_by_peers(me, answers, self.config.bootstrap_expect)

    async def _decide_by_store(self, me: PeerStatus) -> Decision:
        assert self.store is not None
        where = f"key {self.store.path.decode()}"
        stored = await self.store.read()
        if stored is None:
            claim = LeaderRecord(
                self.node_id, self.raft_addr, self.api_addr, term=0, bootstrapped=False
            )
            if await self.store.create(claim):
                return Bootstrap(f"this node created {where} first")
            stored = await self.store.read()
            if stored is None:
                return Wait(f"{where} was created and deleted again")
        return decide_by_record(me, stored.record, where)

    async def _probe_all(self, addresses: Sequence[str]) -> dict[str, PeerStatus | str]:
        async def one(address: str) -> PeerStatus | str:
            try:
                return await self._probe(address)
            except PeerUnavailable as exc:
                return str(exc)

        results = await asyncio.gather(*(one(a) for a in addresses))
        return dict(zip(addresses, results, strict=True))

    async def _join_through(self, decision: Join) -> None:
        if self.store is not None:
            # The key may name a node that is not serving yet, or an address that another
            # cluster now uses: ask who is there before asking to be added.
            peer = await self._probe(decision.via)
            if peer.key != self.config.key:
                raise PeerUnavailable(
                    f"{decision.via} serves the cluster of key {peer.key!r}, not "
                    f"{self.config.key!r}"
                )
            if not peer.member:
                raise PeerUnavailable(
                    f"node {peer.node_id} at {decision.via} is not serving its cluster yet"
                )
        log.info("node %d joins: %s", self.node_id, decision.reason)
        await self._join(decision.via)
        log.info("node %d was added to the cluster through %s", self.node_id, decision.via)

    # ------------------------------------------------------------ keeping in step

    async def maintain(self, nh: NodeHost, shard_ids: Sequence[int]) -> None:
        """Publish the leader (etcd) or remove departed members (dns, remove_after)
        until cancelled. The first shard's leader acts for the cluster."""
        tasks = []
        if self.store is not None:
            tasks.append(self._publish_leader(nh, shard_ids[0]))
        if self.config.remove_after > 0:
            tasks.append(self._remove_departed(nh, list(shard_ids)))
        if tasks:
            await asyncio.gather(*tasks)

    def _leads(self, nh: NodeHost, shard_id: int) -> int | None:
        """This node's term when it leads `shard_id`, else None."""
        try:
            leader_id, term, valid = nh.get_leader_id(shard_id)
        except RaftError:
            return None
        return term if valid and leader_id == self.node_id else None

    async def _publish_leader(self, nh: NodeHost, shard_id: int) -> None:
        assert self.store is not None
        loop = asyncio.get_running_loop()
        known: Stored | None = None
        read_at = -REREAD_SECONDS
        outage_since: float | None = None
        while True:
            await asyncio.sleep(LEADER_CHECK_SECONDS)
            term = self._leads(nh, shard_id)
            if term is None:
                known = None
                continue
            desired = LeaderRecord(self.node_id, self.raft_addr, self.api_addr, term, True)
            now = loop.time()
            if known is not None and known.record == desired and now - read_at < REREAD_SECONDS:
                continue
            try:
                known = await self.store.read()
                read_at = now
                if outage_since is not None:
                    log.warning(
                        "discovery store %s is reachable again after %.0fs",
                        self.describe(),
                        now - outage_since,
                    )
                    outage_since = None
                if known is not None and known.record == desired:
                    continue
                if known is not None and known.record.term > term:
                    self._say(
                        "stale",
                        logging.INFO,
                        f"{self.describe()} names node {known.record.node_id} with term "
                        f"{known.record.term} > {term}: this node is no longer the leader",
                    )
                    continue
                if known is None:
                    wrote = await self.store.create(desired)
                else:
                    wrote = await self.store.swap(desired, known.mod_revision)
                known, read_at = None, -REREAD_SECONDS  # read the revision back next time
                if wrote:
                    log.info(
                        "published node %d (raft %s, api %s, term %d) as leader under %s",
                        self.node_id,
                        self.raft_addr,
                        self.api_addr,
                        term,
                        self.describe(),
                    )
            except StoreUnavailable as exc:
                known = None
                if outage_since is None:
                    outage_since = now
                    self._said.pop("outage", None)
                self._say(
                    "outage",
                    logging.WARNING,
                    f"discovery store unreachable ({exc}); the cluster keeps serving, "
                    "but a node started now cannot find it until the store is back",
                    every=OUTAGE_LOG_SECONDS,
                )
            except StoreAnswerInvalid as exc:
                known = None
                self._say("invalid", logging.ERROR, f"cannot publish the leader: {exc}")

    async def _remove_departed(self, nh: NodeHost, shard_ids: list[int]) -> None:
        assert self.source is not None
        loop = asyncio.get_running_loop()
        remove_after = self.config.remove_after
        every = min(max(remove_after / 10, 0.5), 10.0)
        missing_since: dict[int, float] = {}
        while True:
            await asyncio.sleep(every)
            if self._leads(nh, shard_ids[0]) is None:
                missing_since.clear()
                continue
            try:
                addresses = await self.source.addresses()
            except StoreUnavailable as exc:
                missing_since.clear()
                self._say("prune", logging.WARNING, f"cannot tell who left: {exc}")
                continue
            answers = await self._probe_all(addresses)
            silent = sorted(a for a, s in answers.items() if isinstance(s, str))
            if silent:
                missing_since.clear()  # someone we cannot identify may be a member
                self._say(
                    "prune",
                    logging.INFO,
                    f"no member is removed while {', '.join(silent)} does not answer",
                )
                continue
            present = {
                s.node_id
                for s in answers.values()
                if isinstance(s, PeerStatus) and s.key == self.config.key
            }
            members = (await asyncio.to_thread(self.status, nh, shard_ids[0])).members
            now = loop.time()
            for node_id in list(missing_since):
                if node_id not in members or node_id in present:
                    del missing_since[node_id]
            for node_id in members:
                if node_id != self.node_id and node_id not in present:
                    missing_since.setdefault(node_id, now)
            due = [n for n, since in sorted(missing_since.items()) if now - since >= remove_after]
            if due:
                node_id = due[0]
                log.warning(
                    "removing node %d (%s): missing from %s for %.0fs",
                    node_id,
                    members.get(node_id, "?"),
                    self.describe(),
                    now - missing_since[node_id],
                )
                if await self._remove(nh, shard_ids, node_id):
                    del missing_since[node_id]

    async def _remove(self, nh: NodeHost, shard_ids: list[int], node_id: int) -> bool:
        for shard_id in shard_ids:
            try:
                membership = await nh.aio_get_shard_membership(shard_id, 5.0)
                if node_id not in membership.nodes and node_id not in membership.non_votings:
                    continue
                outcome = await nh.request_delete_replica(shard_id, node_id, 0, 5.0)
                if outcome.code is not ResultCode.COMPLETED:
                    outcome.raise_for_code()
            except (RaftError, DiscoveryError) as exc:
                log.warning("removing node %d from shard %d failed: %s", node_id, shard_id, exc)
                return False
        log.warning("removed node %d from the cluster", node_id)
        return True

    # ------------------------------------------------------------ logging

    def _say(
        self,
        topic: str,
        level: int,
        line: str,
        *,
        key: str | None = None,
        every: float = REPEAT_LOG_SECONDS,
    ) -> None:
        """Log `line` when it differs from the last one on `topic`, or `every` seconds."""
        now = time.monotonic()
        key = line if key is None else key
        last = self._said.get(topic)
        if last is not None and last[0] == key and now - last[1] < every:
            return
        self._said[topic] = (key, now)
        log.log(level, "%s", line)
