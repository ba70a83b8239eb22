"""Known-bug switches that act outside the core, for the chaos suite only.

Rules:
- Reachable only through the test-only `Config._mutations` (see nodehost.raft.Mutation);
  a NodeHost whose replicas do not set one never creates anything here.
- Each models one real bug faithfully enough for a process crash to expose it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from nodehost.raft import Mutation, Update

if TYPE_CHECKING:
    from nodehost.node import Node

ACK_BEFORE_FSYNC = Mutation.ACK_BEFORE_FSYNC.value


class LazySaves:
    """MUTATION "ack-before-fsync": acknowledge now, write to the log store later.

    A missing fsync loses acknowledged data only when the OS loses its page cache, and
    SIGKILL leaves the page cache alone. So this holds the records of mutated replicas
    in the process and writes them every `interval` seconds: votes, acknowledgements
    and applies go ahead as if saved, and a SIGKILL loses up to `interval` of them,
    as a power cut would with a lazy fsync (NATS 2.12.1 synced every 2 minutes). Held
    records are written in their original order, so what reaches the disk is always a
    prefix of what was acknowledged.
    """

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._held: list[Update] = []
        self._since = 0.0

    def hold(self, work: Sequence[tuple[Node, Update]], records: list[Update]) -> list[Update]:
        """The records to write now: those of sound replicas, plus every held one once
        the oldest has waited `interval`."""
        lazy = {id(u) for node, u in work if ACK_BEFORE_FSYNC in node.config._mutations}
        if not lazy and not self._held:
            return records
        now = time.monotonic()
        if not self._held:
            self._since = now
        self._held.extend(u for u in records if id(u) in lazy)
        now_records = [u for u in records if id(u) not in lazy]
        if self._held and now - self._since >= self.interval:
            now_records = self._held + now_records
            self._held = []
        return now_records
