"""What a worker adds to its NodeHost for the suite: message-level faults, an event
log and a watch on quiesce.

Rules:
- All are test instruments: the send filter wraps the transport's `send` (as the
  FaultHook does), the quiesce watch reads the engine's per-replica `quiesced` flag,
  which no public API shows; these are the only private entry points the suite uses.
  The event log is an ordinary listener.
- Nothing here changes a message the core still holds: rewrites work on copies.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from nodehost import (
    IRaftEventListener,
    ISystemEventListener,
    LeaderInfo,
    NodeHost,
    SnapshotInfo,
)
from protos import raft_pb2 as pb
from tests.chaos.clients import HistoryLog


class SendFilter:
    """Message-level faults the address-level FaultHook cannot express, for scripted
    schedules (nemesis.py). A rule names a shard and the replica a message goes to or
    comes from (0: any), and then
    - `max_term`: REPLICATE messages lose their entries above that term, so a new
      leader's own entries are held back while older ones pass (figure 8);
    - `max_commit`: REPLICATE and HEARTBEAT tell at most that commit index, so the
      receiver learns of commits late (a lagging follower's view of the log).
    Installed around the transport's `send`; messages are copied, never changed in
    place (the core may still hold them).

    It also duplicates messages (`duplicate`, a probability), but never a forwarded
    proposal: the transport delivers at most once, and a duplicated proposal is two
    log entries, which a no-op session by contract does not deduplicate (a registered
    session does). Duplicates test the protocol, not that contract."""

    def __init__(self, send: Callable[[Iterable[pb.Message]], None], seed: int) -> None:
        self._send = send
        self.rules: list[dict[str, int]] = []
        self.duplicate = 0.0
        self._rng = random.Random(seed)

    def __call__(self, messages: Iterable[pb.Message]) -> None:
        rules = self.rules
        if rules:
            messages = [self._rewrite(m, rules) for m in messages]
        if self.duplicate:
            messages = list(messages)
            messages += [
                m
                for m in messages
                if m.type != pb.PROPOSE_FORWARD and self._rng.random() < self.duplicate
            ]
        self._send(messages)

    @staticmethod
    def _rewrite(m: pb.Message, rules: list[dict[str, int]]) -> pb.Message:
        if m.type != pb.REPLICATE and m.type != pb.HEARTBEAT:
            return m
        for rule in rules:
            if rule["shard"] != m.shard_id or rule.get("to", 0) not in (0, m.to):
                continue
            if rule.get("from", 0) not in (0, m.from_id):
                continue
            max_term = rule.get("max_term")
            if max_term is not None and any(e.term > max_term for e in m.entries):
                copy = pb.Message()
                copy.CopyFrom(m)
                del copy.entries[:]
                copy.entries.extend(e for e in m.entries if e.term <= max_term)
                m = copy
            max_commit = rule.get("max_commit")
            if max_commit is not None and m.commit > max_commit:
                copy = pb.Message()
                copy.CopyFrom(m)
                copy.commit = max_commit
                m = copy
        return m


class EventLog(ISystemEventListener, IRaftEventListener):
    """Writes the Raft events the run checks and counts into the history file (so they
    survive SIGKILL with everything else the host did). Every leader a replica learns
    of is written with its term: two leaders named for one term break Raft's Election
    Safety, whoever reported them."""

    def __init__(self) -> None:
        self.history: HistoryLog | None = None
        self.snapshots_received: Counter[int] = Counter()

    def write(self, name: str, shard: int, **fields: Any) -> None:
        if self.history is not None:
            self.history.write({"e": "ev", "name": name, "s": shard, **fields})

    def leader_updated(self, info: LeaderInfo) -> None:
        if info.leader_id:
            self.write(
                "leader", info.shard_id, rid=info.replica_id, term=info.term, leader=info.leader_id
            )

    def snapshot_received(self, info: SnapshotInfo) -> None:
        self.snapshots_received[info.shard_id] += 1
        self.write("snapshot_received", info.shard_id)

    def snapshot_created(self, info: SnapshotInfo) -> None:
        self.write("snapshot_created", info.shard_id)


class QuiesceWatch:
    """Samples which replicas are quiesced (every 50 ms) and writes each change to the
    event log, so a run shows that its shards did quiesce and woke up again."""

    PERIOD = 0.05

    def __init__(self, nh: NodeHost, events: EventLog) -> None:
        self._nh = nh
        self._events = events
        self._now: dict[int, bool] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="quiesce-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def quiesced(self, shard: int) -> bool:
        return self._now.get(shard, False)

    def _run(self) -> None:
        while not self._stop.wait(self.PERIOD):
            engine: Any = self._nh._engine
            if engine is None:
                continue
            try:
                nodes = list(engine.nodes.items())
            except RuntimeError:  # changed while copied: sample again next time
                continue
            for shard, node in nodes:
                now = bool(node.loop.quiesced)
                if now != self._now.get(shard, False):
                    self._events.write("quiesced" if now else "woke", shard)
                self._now[shard] = now
