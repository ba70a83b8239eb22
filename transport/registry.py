"""Where each replica lives: (shard_id, replica_id) -> its host's address.

A replica's target is what its shard's membership names: "host:port", or, when hosts
are addressed by NodeHost id (`by_node_host_id`), that id, resolved through the
host table (hosts.py) as the host's current address is learned.

Rules:
- Filled only by the NodeHost, from memberships: the initial members, applied
  membership changes, and the membership a leader or candidate presents in a message
  that passed admission (how a joining replica places its peers; that fills in replicas
  without a target, never moves one: nodehost/inbound.py). Never from what a peer
  claims about itself: by id, a batch's source address is only dialled to learn which
  host answers there (hosts.py, `look_at`).
- Thread-safe: writers hold a lock; `resolve` and the transport's per-message lookup
  are single dict reads, atomic under the GIL, and take no lock. `_routes` holds only
  replicas whose address is known: a replica on a host not located yet is unreachable.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from transport.config import is_node_host_id, split_address


class Registry:
    def __init__(
        self,
        by_node_host_id: bool = False,
        locate: Callable[[str], str | None] | None = None,
        missing: Callable[[], None] | None = None,
    ) -> None:
        self.by_node_host_id = by_node_host_id
        self._locate = locate or (lambda _: None)
        self._missing = missing or (lambda: None)
        self._targets: dict[tuple[int, int], str] = {}  # as the membership names them
        self._routes: dict[tuple[int, int], str] = {}  # read by BaseTransport.send
        self._shards: dict[int, set[int]] = {}  # shard_id -> replica ids, for remove_shard
        self._lock = threading.Lock()

    def check_target(self, target: str) -> None:
        """ValueError unless `target` is what this registry's memberships name."""
        if self.by_node_host_id:
            if not is_node_host_id(target):
                raise ValueError(f"target {target!r} is not a NodeHost id")
        else:
            split_address(target)

    def add(self, shard_id: int, replica_id: int, target: str) -> None:
        """Record (or move) a replica: `target` is a host:port or, by id, a NodeHost id."""
        if shard_id < 0 or replica_id <= 0:
            raise ValueError(f"bad replica ({shard_id}, {replica_id}): ids are >= 1")
        self.check_target(target)
        address = self._locate(target) if self.by_node_host_id else target
        with self._lock:
            key = (shard_id, replica_id)
            self._targets[key] = target
            if address is None:
                self._routes.pop(key, None)
            else:
                self._routes[key] = address
            self._shards.setdefault(shard_id, set()).add(replica_id)
        if address is None:
            self._missing()  # a host to locate

    def host_moved(self, node_host_id: str, address: str) -> None:
        """The host `node_host_id` answers at `address` now: route its replicas there."""
        with self._lock:
            for key, target in self._targets.items():
                if target == node_host_id:
                    self._routes[key] = address

    def host_ids(self) -> set[str]:
        """The NodeHost ids replicas are placed on (by id only)."""
        if not self.by_node_host_id:
            return set()
        with self._lock:
            return set(self._targets.values())

    def remove(self, shard_id: int, replica_id: int) -> None:
        with self._lock:
            self._targets.pop((shard_id, replica_id), None)
            self._routes.pop((shard_id, replica_id), None)
            replicas = self._shards.get(shard_id)
            if replicas is not None:
                replicas.discard(replica_id)
                if not replicas:
                    del self._shards[shard_id]

    def remove_shard(self, shard_id: int) -> None:
        with self._lock:
            for replica_id in self._shards.pop(shard_id, ()):
                self._targets.pop((shard_id, replica_id), None)
                self._routes.pop((shard_id, replica_id), None)

    def resolve(self, shard_id: int, replica_id: int) -> str | None:
        return self._routes.get((shard_id, replica_id))

    def target(self, shard_id: int, replica_id: int) -> str | None:
        return self._targets.get((shard_id, replica_id))

    def replicas_at(self, address: str) -> list[tuple[int, int]]:
        """Every (shard_id, replica_id) at `address`: who to report when it goes down."""
        with self._lock:
            routes = list(self._routes.items())
        return [key for key, a in routes if a == address]
