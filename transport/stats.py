"""Counters of what the transport did, and of every input it refused.

Rules:
- Every refusal has one `Reject` reason, is counted, and is logged; logs are throttled
  per reason (a flood of garbage costs a counter increment, not a log line each).
- Messages for a replica not hosted here are normal for a moment whenever membership
  moves (a replica added before its host starts it, one removed that peers still
  heartbeat): they are noted at INFO, and become a WARNING only when they keep coming
  for PERSISTS seconds (a peer with a wrong address, a replica never started).
- Counters only grow. They are plain ints bumped on the event loop; readers on other
  threads may see a slightly old value, never a torn one.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

log = logging.getLogger("transport")

LOG_EVERY = 1.0  # seconds between two log lines of the same reason
PERSISTS = 5.0  # seconds of refusals in a row before a transitional reason warns


class Reject(StrEnum):
    """Why an input from the wire was refused."""

    OVERSIZED = "oversized"  # a frame above max_message_size
    MALFORMED = "malformed"  # not a protobuf of the expected type
    WRONG_DEPLOYMENT = "wrong-deployment"
    WRONG_VERSION = "wrong-version"  # bin_ver differs from ours
    LOCAL_TYPE = "local-type"  # INVALID, LOCAL_TICK and the other local-only types
    BAD_FIELD = "bad-field"  # from_id 0, or a term that cannot grow (2**64-1)
    NOT_HOSTED = "not-hosted"  # unknown shard, or a replica not hosted here
    SNAPSHOT_IN_BATCH = "snapshot-in-batch"  # a file-backed INSTALL_SNAPSHOT outside a stream
    NO_PEER_CERT = "no-peer-cert"  # mTLS on, but the stream has no verified client cert
    # Snapshot streams.
    OUT_OF_ORDER = "out-of-order"  # chunk id, file or offset not the next expected
    BAD_CHECKSUM = "bad-checksum"  # a chunk's crc32 or a whole file's sha256
    BAD_PATH = "bad-path"  # a file name with path components, or names that clash
    INCOMPLETE = "incomplete"  # the stream ended or stalled before the last chunk
    BUSY = "busy"  # too many transfers at once
    STORAGE = "storage"  # the receiver could not write the snapshot


# Reasons that membership changes cause for a moment (see the rules).
TRANSITIONAL = frozenset({Reject.NOT_HOSTED})


@dataclass
class TransportStats:
    batches_sent: int = 0
    messages_sent: int = 0
    batches_received: int = 0
    messages_received: int = 0  # delivered to the engine
    dropped: int = 0  # send queue full (or one message above max_message_size)
    unroutable: int = 0  # no address known for the target replica
    unreachable: int = 0  # messages not sent because their target address is down
    fault_dropped: int = 0  # dropped by the test fault hook
    connects: int = 0
    connect_failures: int = 0  # connections that failed to open or broke
    snapshots_sent: int = 0
    snapshots_received: int = 0
    snapshots_failed: int = 0  # outgoing transfers that failed
    handler_errors: int = 0  # the engine's callback raised
    rejected: Counter[Reject] = field(default_factory=Counter)
    _last_log: dict[Reject, tuple[float, int]] = field(default_factory=dict, repr=False)
    _since: dict[Reject, tuple[float, float]] = field(default_factory=dict, repr=False)

    def reject(self, reason: Reject, detail: str, count: int = 1) -> None:
        """Count `count` refused inputs and log, at most once per LOG_EVERY per reason."""
        self.rejected[reason] += count
        now = time.monotonic()
        start, latest = self._since.get(reason, (now, now))
        if now - latest > 2 * LOG_EVERY:
            start = now  # a quiet spell ends a run of refusals
        self._since[reason] = (start, now)
        last, logged_total = self._last_log.get(reason, (-LOG_EVERY, 0))
        if now - last >= LOG_EVERY:
            total = self.rejected[reason]
            suppressed = total - logged_total - count
            more = f" ({suppressed} more since the last report)" if suppressed > 0 else ""
            level = logging.WARNING
            if reason in TRANSITIONAL and now - start < PERSISTS:
                level = logging.INFO
            log.log(level, "rejected (%s): %s%s", reason, detail, more)
            self._last_log[reason] = (now, total)

    def as_dict(self) -> dict[str, int]:
        """Flat counters, e.g. for Prometheus: rejected ones as `rejected_<reason>`."""
        out = {k: v for k, v in vars(self).items() if isinstance(v, int)}
        for reason in Reject:
            out[f"rejected_{reason.value.replace('-', '_')}"] = self.rejected[reason]
        return out
