"""Quiesce: an idle shard stops heartbeats and elections until something happens.

Rules (dragonboat's quiesce, in ticks):
- Enabled by `RaftConfig.quiesce`. After more than `10 * election_rtt` ticks with no
  activity the replica quiesces; a leader tells its peers with QUIESCE so the whole
  shard goes quiet together.
- Activity is anything but the heartbeat traffic a live shard makes by itself
  (HEARTBEAT, HEARTBEAT_RESP, QUIESCE, RATE_LIMIT) and ticks: a proposal, a read, a
  config change, a vote request, replication. Activity wakes a quiesced replica.
- Heartbeats that arrive within one election timeout of quiescing are stragglers from
  before and do not wake it; later ones mean the leader is awake, and do. So do more
  heartbeats than a leader sends in one election timeout, for an engine that stops
  ticking quiesced replicas (their clock stands still).
- A replica that knows no leader never quiesces: it must keep its election timer.
- A replica that just woke ignores QUIESCE from peers for the same idle threshold, so
  a shard does not fall asleep again in the middle of being woken.
"""

from __future__ import annotations

IDLE_ELECTIONS = 10


class Quiesce:
    __slots__ = (
        "election",
        "enabled",
        "heartbeats",
        "idle_since",
        "now",
        "quiesced_since",
        "stragglers",
        "woke_at",
    )

    def __init__(self, enabled: bool, election: int, heartbeat: int = 1) -> None:
        self.enabled = enabled
        self.election = election
        self.stragglers = election // max(heartbeat, 1) + 1
        self.heartbeats = 0
        self.now = 0
        self.idle_since = 0
        self.quiesced_since = -1
        self.woke_at = -(IDLE_ELECTIONS * election) - 1

    @property
    def quiesced(self) -> bool:
        return self.quiesced_since >= 0

    @property
    def threshold(self) -> int:
        return IDLE_ELECTIONS * self.election

    def tick(self) -> bool:
        """Advance one tick; True when the replica has just quiesced."""
        self.now += 1
        if self.enabled and self.quiesced_since < 0 and self.now - self.idle_since > self.threshold:
            self.quiesced_since = self.now
            self.heartbeats = 0
            return True
        return False

    def activity(self) -> bool:
        """Something happened; True when it woke a quiesced replica."""
        self.idle_since = self.now
        if self.quiesced_since >= 0:
            self.quiesced_since = -1
            self.woke_at = self.now
            return True
        return False

    def heartbeat(self) -> bool:
        """A heartbeat arrived; True when it woke a quiesced replica."""
        if self.quiesced_since < 0:
            return False
        self.heartbeats += 1
        if self.now - self.quiesced_since >= self.election or self.heartbeats > self.stragglers:
            return self.activity()
        return False

    def peer_quiesced(self) -> bool:
        """The leader asked us to quiesce; True when we did."""
        if not self.enabled or self.quiesced_since >= 0:
            return False
        if self.now - self.woke_at < self.threshold:
            return False
        self.quiesced_since = self.now
        self.heartbeats = 0
        return True
