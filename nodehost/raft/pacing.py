"""Pacing: rate limiting and quiesce, how much work a shard may take on or make.

Split out because neither is Raft proper (both are dragonboat's): rate limiting slows
proposals while this replica or a follower holds too much unapplied log in memory
(ratelimit.py),
and quiesce stops heartbeats and elections in an idle shard (quiesce.py). Both keep
their state in helper objects; the messages that carry it (RATE_LIMIT, QUIESCE) are
handled here, and `Raft.tick` / `Raft.step` call in.
"""

from __future__ import annotations

from protos import raft_pb2 as pb

from .core import RaftCore, Role
from .messages import ENTRY_MEMORY_OVERHEAD, ENTRY_OVERHEAD

# Kinds that do not count as activity for quiesce: a live idle shard makes them itself.
_QUIET_TYPES: frozenset[int] = frozenset({pb.LOCAL_TICK, pb.QUIESCE, pb.RATE_LIMIT})
# `in_mem_bytes` already counts ENTRY_OVERHEAD per entry.
_EXTRA_PER_ENTRY = ENTRY_MEMORY_OVERHEAD - ENTRY_OVERHEAD


class Pacing(RaftCore):
    # ------------------------------------------------------------------ rate limiting

    def rate_limited(self) -> bool:
        return self.limiter.limited(self._in_mem_size())

    def _in_mem_size(self) -> int:
        """The memory the in-memory log holds: commands plus each entry's own cost."""
        log = self.log
        return log.in_mem_bytes() + len(log.mem) * _EXTRA_PER_ENTRY

    def _report_rate(self) -> bool:
        if self.leader_id and self.leader_id != self.replica_id:
            size = self._in_mem_size()
            if size == 0 and self.limiter.last_report == 0:
                # Nothing to tell, again: an idle shard sends no reports (the limit is
                # on by default, and a host may run thousands of idle shards).
                return False
            self.limiter.last_report = size
            self._send(pb.RATE_LIMIT, self.leader_id, hint=size)
            return True
        return False

    def _handle_leader_rate_limit(self, m: pb.Message) -> None:
        self.limiter.follower_size(m.from_id, m.hint)
        limited = self.rate_limited()
        if limited != self.told_limited:
            # The verdict changed: everyone hears it now, not at their next report.
            self.told_limited = limited
            for rid in self.progress:
                self._send(pb.RATE_LIMIT, rid, reject=limited)
        else:
            self._send(pb.RATE_LIMIT, m.from_id, reject=limited)

    def _handle_follower_rate_limit(self, m: pb.Message) -> None:
        if m.from_id == self.leader_id:
            self.limiter.leader_verdict(m.reject)

    # ------------------------------------------------------------------ quiesce

    def _enter_quiesce(self) -> bool:
        if self.role is Role.LEADER and self.progress:
            for rid in self.progress:
                self._send(pb.QUIESCE, rid)
            return True
        return False

    def _handle_quiesce(self, m: pb.Message) -> None:
        if m.from_id == self.leader_id:
            self.quiesce.peer_quiesced()

    def _note_activity(self, mt: pb.MessageType) -> None:
        q = self.quiesce
        if mt == pb.HEARTBEAT or mt == pb.HEARTBEAT_RESP:
            woke = q.heartbeat()
        elif mt in _QUIET_TYPES:
            return
        else:
            woke = q.activity()
        if woke:
            self._woke()
