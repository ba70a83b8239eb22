"""Whether a replica still runs, and why not: read by every thread, each flag set once.

Rules:
- `stopped` is set by whoever takes the replica out of service (the loop, or a
  NodeHost call when the loop is stuck); `failed` by the apply worker or the loop when
  the replica fails on its own, with `failure_error` the error its callers get.
- `removed`: the replica was removed from its shard (the loop learns it from the core,
  the apply worker when the change is applied): requests fail with ReplicaRemoved.
- Those flags only go from unset to set. `rate_limited` is the core's rate limit as of
  the loop's last pass: set and cleared there, read by user and apply threads (the
  core's own answer walks its log, which only the loop may touch).
"""

from __future__ import annotations

from dataclasses import dataclass

from nodehost.errors import RaftError, ShardClosed


@dataclass(slots=True)
class Status:
    stopped: bool = False
    failed: str | None = None
    failure_error: type[RaftError] = ShardClosed
    removed: bool = False
    unload_reported: bool = False  # node_unloaded goes out once (reports.py's lock)
    rate_limited: bool = False
