"""The receive queue: messages from peers that wait for the engine, bounded in bytes.

Rules:
- One per NodeHost, for all its replicas (NodeHostConfig.max_receive_queue_size). The
  router admits each message as it arrives; the engine releases a replica's bytes when
  its pass takes the replica's inbox. Both run on the engine loop: plain ints, no lock.
- A message that carries entries (REPLICATE, PROPOSE_FORWARD) counts its encoded size,
  which protobuf computes in C; any other counts a flat SMALL_MESSAGE bytes.
- Past `limit` queued bytes a message carrying entries is dropped; past a quarter more,
  every message. Heartbeats, votes and acknowledgements keep that reserve, so leaders
  hold on while bulk data waits. Raft sends again what was dropped (a follower that
  missed a REPLICATE rejects the next one and the leader probes back; a lost vote is
  asked for in the next election); a dropped PROPOSE_FORWARD is not sent again: its
  proposals time out on the follower that forwarded them.
- Every drop is counted (messages and bytes) and logged at most once per LOG_EVERY.
"""

from __future__ import annotations

import logging
import time

from protos import raft_pb2 as pb

log = logging.getLogger("nodehost")

SMALL_MESSAGE = 128  # what a message without entries costs in memory, about
LOG_EVERY = 1.0  # seconds between two log lines about drops
_WITH_ENTRIES = frozenset({pb.REPLICATE, pb.PROPOSE_FORWARD})


class ReceiveQueue:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the receive queue needs a positive bound, got {limit}")
        self.limit = limit
        self.hard_limit = limit + limit // 4
        self.queued = 0
        self.peak = 0
        self.dropped = 0
        self.dropped_bytes = 0
        self._logged_at = -LOG_EVERY
        self._logged_dropped = 0

    def admit(self, message: pb.Message) -> int:
        """The bytes `message` holds once queued, or 0 when it must be dropped."""
        if message.type in _WITH_ENTRIES:
            size = message.ByteSize() or SMALL_MESSAGE
            if self.queued >= self.limit:
                self._drop(message, size)
                return 0
        else:
            size = SMALL_MESSAGE
            if self.queued >= self.hard_limit:
                self._drop(message, size)
                return 0
        queued = self.queued + size
        self.queued = queued
        if queued > self.peak:
            self.peak = queued
        return size

    def release(self, size: int) -> None:
        """The engine took messages of `size` bytes off the queue."""
        self.queued -= size

    def _drop(self, message: pb.Message, size: int) -> None:
        self.dropped += 1
        self.dropped_bytes += size
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY:
            log.warning(
                "receive queue full (%d of %d bytes): dropped %d message(s) since the last "
                "report, the latest a %s of %d bytes for shard %d; Raft sends them again",
                self.queued,
                self.limit,
                self.dropped - self._logged_dropped,
                pb.MessageType.Name(message.type),
                size,
                message.shard_id,
            )
            self._logged_at = now
            self._logged_dropped = self.dropped

    def as_dict(self) -> dict[str, int]:
        """Counters and gauges for metrics."""
        return {
            "dropped": self.dropped,
            "dropped_bytes": self.dropped_bytes,
            "bytes": self.queued,
            "peak_bytes": self.peak,
            "limit_bytes": self.limit,
        }
