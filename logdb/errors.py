"""Errors of the log store: one base class, one subclass per thing a caller can do about it.

Rules:
- rocksdict raises a bare `Exception` carrying RocksDB's status text; it is translated
  here, where it enters, and never escapes as is.
- A damaged store is reported, never repaired behind the caller's back: a replica whose
  log is corrupt must not vote or lead with it, it rejoins through its peers.
"""

from __future__ import annotations

from collections.abc import Sequence


class LogDBError(Exception):
    """Base of every error the log store raises."""


class FormatError(LogDBError):
    """The directory holds a store of another format version, or not a log store at all."""


class DeploymentMismatchError(LogDBError):
    """The store was created for another deployment ID.

    Opening it anyway would let a NodeHost of one deployment vote with another's log.
    """


class CorruptionError(LogDBError):
    """The store's files are damaged; nothing was read from them as if they were whole.

    `replicas` names the (shard_id, replica_id) pairs whose data is affected, when the
    damage can be placed; it is empty when it cannot (a damaged write-ahead log record
    or manifest does not say whose data it held).
    """

    def __init__(self, message: str, replicas: Sequence[tuple[int, int]] = ()) -> None:
        self.replicas: tuple[tuple[int, int], ...] = tuple(replicas)
        if self.replicas:
            names = ", ".join(f"shard {s} replica {r}" for s, r in self.replicas)
            message = f"{message} (affects {names})"
        super().__init__(message)


class WriteError(LogDBError):
    """A write failed (disk full, IO error); nothing of it is acknowledged.

    The store then refuses every further write: after a failed sync the state of the
    files is unknown, so the only safe continuation is to close and reopen it, which
    replays exactly what reached the disk.
    """


class StoreClosedError(LogDBError):
    """The store was closed."""


class InvalidRequestError(LogDBError, ValueError):
    """The call asked for something that would break the log's invariants.

    Nothing was written. The message says which rule and which replica.
    """


class CompactedError(LogDBError):
    """The requested index is below the first available entry (compacted away)."""


class UnavailableError(LogDBError):
    """The requested index is above the last saved entry."""
