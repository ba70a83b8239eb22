"""Every error the public API raises; one base class so callers can catch them all.

Errors from grpc, rocksdict and user code are translated where they enter, so a caller
never has to know which layer failed.
"""

from __future__ import annotations


class RaftError(Exception):
    """Base of every error raised by the public API."""

    #: True when retrying the same call later may succeed (dragonboat's IsTempError).
    temporary = False


class Timeout(RaftError):
    """The request did not complete in time. A proposal may still be applied later."""

    temporary = True


class Rejected(RaftError):
    """The shard refused the request for good (a removed id, a stale config change id,
    an expired session, a snapshot that already exists)."""


class ShardNotReady(RaftError):
    """No leader is known yet, or leadership is moving. Retrying later is safe."""

    temporary = True


class SystemBusy(RaftError):
    """A bound on pending work was reached (pending proposals or reads, how long a new
    one would wait, or the unapplied log in memory); nothing was done: retry later."""

    temporary = True


class Aborted(RaftError):
    """The request was cancelled before it took effect."""

    temporary = True


class ShardClosed(RaftError):
    """The replica was stopped while the request was pending."""

    temporary = True


class ShardNotFound(RaftError):
    """No replica of this shard runs on this NodeHost."""


class ShardAlreadyExists(RaftError):
    """A replica of this shard already runs on this NodeHost."""


class ShardNotStopped(RaftError):
    """The operation needs the replica to be stopped first."""


class InvalidConfig(RaftError):
    """A configuration value is out of range; the message names the field."""


class InvalidShardSettings(RaftError):
    """start_* arguments contradict what was recorded when the replica first started."""


class InvalidSession(RaftError):
    """The session belongs to another shard, or cannot be used for this call."""


class PayloadTooBig(RaftError):
    """The command is larger than the shard accepts in one entry."""


class ReplicaRemoved(RaftError):
    """This replica was removed from its shard; its id can never be used again.

    Raised at once by requests made through a removed replica, by requests that were
    still pending on it when it learnt of its removal (a proposal among them may still
    be applied by the remaining members), and by a start of a removed replica."""


class Closed(RaftError):
    """The NodeHost was closed."""


class InvalidOperation(RaftError):
    """The call is not valid for this replica (e.g. a stale read on a witness)."""


class StateMachineFailed(ShardClosed):
    """The user's state machine raised; the replica stopped rather than skip an entry.

    Every request pending on the replica and every later one gets this error; the cause
    is in the message (and in the log). Like a Timeout, it leaves a proposal's fate open:
    one applied in the same batch just before the entry that raised gets it too. A kind of ShardClosed, so code that handles a
    stopped replica handles this one too; unlike a plain stop, waiting does not help:
    the state machine must be fixed and the replica restarted."""

    temporary = False


class DirectoryLocked(RaftError):
    """Another NodeHost is using this directory."""


__all__ = [
    "Aborted",
    "Closed",
    "DirectoryLocked",
    "InvalidConfig",
    "InvalidOperation",
    "InvalidSession",
    "InvalidShardSettings",
    "PayloadTooBig",
    "RaftError",
    "Rejected",
    "ReplicaRemoved",
    "ShardAlreadyExists",
    "ShardClosed",
    "ShardNotFound",
    "ShardNotReady",
    "ShardNotStopped",
    "StateMachineFailed",
    "SystemBusy",
    "Timeout",
]
