"""The core's LogReader over LogDB, with the newest entries cached in memory.

A leader replicates entries it has just saved, so nearly every read hits the cache; only
a follower far behind makes the core read RocksDB. The cache keeps a bounded amount of
memory per replica, always a contiguous run ending at the last saved entry. An entry
counts its encoded size plus what a protobuf object costs beyond it
(ENTRY_MEMORY_OVERHEAD): counted by encoded size alone, a cache of small entries held
twenty times its bound, and a host of many busy replicas grew without a useful one.

Rules: the engine loop is the only thread that calls this object; LogDB is the source of
truth, this is a view of what `save` has already made durable.
"""

from __future__ import annotations

from collections import deque

from logdb import ILogDB
from nodehost.raft import CompactedError, UnavailableError
from nodehost.raft.messages import ENTRY_MEMORY_OVERHEAD
from protos import raft_pb2 as pb

# Seconds of a busy shard's entries (thousands of small ones, or half of one 8 MiB
# command: the newest entry always stays), for each replica a host runs.
DEFAULT_CACHE_BYTES = 4 * 1024 * 1024


class CachedLogReader:
    def __init__(
        self,
        logdb: ILogDB,
        shard_id: int,
        replica_id: int,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self._logdb = logdb
        self._shard_id = shard_id
        self._replica_id = replica_id
        self._cache_limit = cache_bytes
        self._state = pb.State()
        self._snapshot = pb.Snapshot()
        self._first = 1
        self._last = 0
        # The entry just before `_first`: its term is needed as the previous-entry check
        # of the first REPLICATE after a compaction (thesis 5.3, log matching).
        self._marker_index = 0
        self._marker_term = 0
        self._cache: deque[pb.Entry] = deque()
        self._cache_bytes = 0
        saved = logdb.read_state(shard_id, replica_id)
        if saved is not None:
            self._state.CopyFrom(saved.state)
            if saved.snapshot is not None:
                self._snapshot.CopyFrom(saved.snapshot)
            self._last = max(saved.last_index, self._snapshot.index)
            if saved.first_index - 1 >= self._snapshot.index:
                self._first = saved.first_index
                self._marker_index = self._snapshot.index
                self._marker_term = self._snapshot.term
            else:
                # Compaction keeps one entry below the first one served (see compact()).
                self._marker_index = saved.first_index
                self._marker_term = logdb.term(shard_id, replica_id, saved.first_index)
                self._first = saved.first_index + 1

    # ---------------------------------------------------------------- reads

    def state(self) -> pb.State:
        return self._state

    def snapshot(self) -> pb.Snapshot:
        return self._snapshot

    def first_index(self) -> int:
        return self._first

    def last_index(self) -> int:
        return self._last

    def term(self, index: int) -> int:
        if index == self._marker_index:
            return self._marker_term
        if index == self._snapshot.index:
            return self._snapshot.term
        if index < self._first:
            raise CompactedError(index)
        if index > self._last:
            raise UnavailableError(index)
        cache = self._cache
        if cache and index >= cache[0].index:
            return cache[index - cache[0].index].term
        return self._logdb.term(self._shard_id, self._replica_id, index)

    def entries(self, low: int, high: int, max_bytes: int) -> list[pb.Entry]:
        if low < self._first:
            raise CompactedError(low)
        if high > self._last + 1:
            raise UnavailableError(high)
        if low >= high:
            return []
        cache = self._cache
        start = cache[0].index if cache else self._last + 1
        result: list[pb.Entry] = []
        size = 0
        if low < start:
            result = self._logdb.entries(
                self._shard_id, self._replica_id, low, min(high, start), max_bytes
            )
            if not result or result[-1].index + 1 < min(high, start):
                return result
            size = sum(e.ByteSize() for e in result)
            low = start
        offset = low - start
        for i in range(offset, min(high - start, len(cache))):
            entry = cache[i]
            size += entry.ByteSize()
            if result and size > max_bytes:
                break
            result.append(entry)
        return result

    # ---------------------------------------------------------------- writes (engine)

    def append(self, entries: list[pb.Entry]) -> None:
        if not entries:
            return
        first = entries[0].index
        if first > self._last + 1:
            raise ValueError(f"gap in log: last {self._last}, appending from {first}")
        if first < self._first:
            raise ValueError(f"append at {first} below first index {self._first}")
        cache = self._cache
        if first <= self._last:
            # A conflicting suffix was overwritten in LogDB; drop it here too.
            while cache and cache[-1].index >= first:
                self._cache_bytes -= _cost(cache.pop())
        if cache and cache[-1].index + 1 != first:
            cache.clear()
            self._cache_bytes = 0
        for entry in entries:
            cache.append(entry)
            self._cache_bytes += _cost(entry)
        self._last = entries[-1].index
        while len(cache) > 1 and self._cache_bytes > self._cache_limit:
            self._cache_bytes -= _cost(cache.popleft())

    def set_state(self, state: pb.State) -> None:
        self._state.CopyFrom(state)

    def apply_snapshot(self, snapshot: pb.Snapshot) -> None:
        """An installed snapshot: the log restarts after it."""
        self._snapshot.CopyFrom(snapshot)
        self._first = snapshot.index + 1
        self._last = snapshot.index
        self._marker_index = snapshot.index
        self._marker_term = snapshot.term
        self._cache.clear()
        self._cache_bytes = 0

    def create_snapshot(self, snapshot: pb.Snapshot) -> None:
        """A local snapshot; older than the current one (raced an install) is ignored."""
        if snapshot.index > self._snapshot.index:
            self._snapshot.CopyFrom(snapshot)

    def compact(self, index: int) -> None:
        """Forget entries up to `index`. The engine removes entries below `index` from
        LogDB, keeping `index` itself so a restart can still tell its term."""
        index = min(index, self._last, self._snapshot.index)
        if index < self._first:
            return
        self._marker_term = self.term(index)
        self._marker_index = index
        self._first = index + 1
        cache = self._cache
        while cache and cache[0].index <= index:
            self._cache_bytes -= _cost(cache.popleft())


def _cost(entry: pb.Entry) -> int:
    return entry.ByteSize() + ENTRY_MEMORY_OVERHEAD
