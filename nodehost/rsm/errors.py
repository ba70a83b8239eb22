"""Errors of the apply layer. The engine maps them to what the public API raises."""

from __future__ import annotations


class StateMachineError(Exception):
    """The user's state machine raised (or broke its contract); the replica must stop.

    An entry that failed is never skipped: applying the rest would make this replica
    differ from the others. The user's exception is the `__cause__`.
    """


class SnapshotError(Exception):
    """A snapshot could not be saved, installed or recovered."""


class SnapshotCorrupt(SnapshotError):
    """A snapshot file failed a check; the message names the file and the check."""


class SnapshotOutOfDate(SnapshotError):
    """The snapshot is not newer than what the replica already has."""
