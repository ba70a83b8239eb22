"""The narrow interface between a replica and its engine.

A replica never holds the engine: it holds an `EngineLink`, made by the engine for that
replica alone, and asks through it for the four things it may ask. Defined below both,
so neither imports the other.
"""

from __future__ import annotations

from typing import Protocol

from nodehost.replica.events import ReplicaEvent
from protos import raft_pb2 as pb


class EngineLink(Protocol):
    """What a replica may ask of the engine. Safe from any thread."""

    def wake(self) -> None:
        """Inputs are waiting for the replica's core: step it in a pass soon."""

    def schedule_apply(self) -> None:
        """Apply work is queued: run the replica's apply side on its worker."""

    def deliver(self, message: pb.Message) -> None:
        """A message for the replica's own core, from a thread other than the loop
        (a received snapshot, once its files are in place)."""

    def report(self, event: ReplicaEvent) -> None:
        """Something the host must hear of; the engine handles it on its loop."""
