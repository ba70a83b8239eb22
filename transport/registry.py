"""Where each replica lives: (shard_id, replica_id) -> "host:port".

Rules:
- Filled only by the NodeHost, from initial members and applied membership changes;
  never from what a peer claims about itself (a batch's source address is unverified).
- Thread-safe: writers hold a lock; `resolve` and the transport's per-message lookup
  are single dict reads, atomic under the GIL, and take no lock.
"""

from __future__ import annotations

import threading

from transport.config import split_address


class Registry:
    def __init__(self) -> None:
        self._routes: dict[tuple[int, int], str] = {}  # read by BaseTransport.send
        self._shards: dict[int, set[int]] = {}  # shard_id -> replica ids, for remove_shard
        self._lock = threading.Lock()

    def add(self, shard_id: int, replica_id: int, address: str) -> None:
        """Record (or move) a replica's address."""
        if shard_id < 0 or replica_id <= 0:
            raise ValueError(f"bad replica ({shard_id}, {replica_id}): ids are >= 1")
        split_address(address)
        with self._lock:
            self._routes[(shard_id, replica_id)] = address
            self._shards.setdefault(shard_id, set()).add(replica_id)

    def remove(self, shard_id: int, replica_id: int) -> None:
        with self._lock:
            self._routes.pop((shard_id, replica_id), None)
            replicas = self._shards.get(shard_id)
            if replicas is not None:
                replicas.discard(replica_id)
                if not replicas:
                    del self._shards[shard_id]

    def remove_shard(self, shard_id: int) -> None:
        with self._lock:
            for replica_id in self._shards.pop(shard_id, ()):
                self._routes.pop((shard_id, replica_id), None)

    def resolve(self, shard_id: int, replica_id: int) -> str | None:
        return self._routes.get((shard_id, replica_id))

    def replicas_at(self, address: str) -> list[tuple[int, int]]:
        """Every (shard_id, replica_id) at `address`: who to report when it goes down."""
        with self._lock:
            routes = list(self._routes.items())
        return [key for key, a in routes if a == address]
