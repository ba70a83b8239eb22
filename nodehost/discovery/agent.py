"""The discovery agent of one node: find (or found) the cluster, then keep the store
and the membership in step with it.

    agent = Discovery(config, node_id=4, raft_addr="10.0.0.4:12000",
                      api_addr="10.0.0.4:11000", probe=probe, join=join)
    joined = await agent.find_cluster()   # False: bootstrap {4: raft_addr}; True: join
    ...start the replicas, serve the application's API (answering probes with
    agent.status(nh, shard_id))...
    await agent.maintain(nh, [shard_id, ...])   # runs until cancelled

Rules:
- Only the public NodeHost API is used. Joining goes through the application's own
  API (`join`), as the application decides how a member adds a node.
- `find_cluster` retries with capped, jittered back-off until `patience` runs out; every
  wait says why, in one log line, when the reason changes and then every 10 s. It
  bootstraps only on a `decide` verdict, never because something failed.
- `maintain` never stops the cluster: it runs `publisher.publish_leader` (etcd) and
  `departures.remove_departed` (dns, dns-srv with remove_after), which log failures
  and retry; serving goes on, since discovery is needed only by nodes that join.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence

from nodehost import NodeHost
from nodehost.discovery.config import DiscoveryConfig, EtcdConfig
from nodehost.discovery.decide import (
    Bootstrap,
    Decision,
    Join,
    Wait,
    decide_by_peers,
    decide_by_record,
)
from nodehost.discovery.departures import remove_departed
from nodehost.discovery.errors import (
    GaveUp,
    PeerUnavailable,
    StoreAnswerInvalid,
    StoreUnavailable,
)
from nodehost.discovery.etcd import EtcdStore
from nodehost.discovery.host import peer_status
from nodehost.discovery.logline import Repeats
from nodehost.discovery.publisher import publish_leader
from nodehost.discovery.records import LeaderRecord, PeerStatus
from nodehost.discovery.sources import AddressSource, source_for

log = logging.getLogger("nodehost.discovery")

Probe = Callable[[str], Awaitable[PeerStatus]]
"""Ask the node at an API address who it is; raise PeerUnavailable when it cannot say."""
Joiner = Callable[[str], Awaitable[None]]
"""Ask the member at an API address to add this node; JoinRefused is final, PeerUnavailable
is retried."""

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
        self.repeats = Repeats(log)

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
        return peer_status(nh, me, shard_id)

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
            self.repeats.say(
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
            me = LeaderRecord(self.node_id, self.raft_addr, self.api_addr)
            tasks.append(publish_leader(self.store, nh, shard_ids[0], me, self.repeats))
        if self.source is not None and self.config.remove_after > 0:
            tasks.append(
                remove_departed(
                    self.source,
                    self._probe_all,
                    nh,
                    list(shard_ids),
                    self.status(),
                    self.config.remove_after,
                    self.repeats,
                )
            )
        if tasks:
            await asyncio.gather(*tasks)
