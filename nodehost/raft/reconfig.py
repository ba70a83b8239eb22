"""Membership as of the commit index: changes take effect when their entry commits.

Split out because a membership change reaches into every other concern at once (the
voters an election counts, the followers a leader streams to, the replica's own role)
yet happens in one place: here, at start, when the commit index passes a
config-change entry (replication.py), or when a snapshot replaces the log.

Rules: the same `membership.check` and `membership.apply` as the state machine layer
uses when it applies the entry later, so both always agree (etcd, dragonboat). A
leader that finds itself removed hands over (transfer.py).
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from protos import raft_pb2 as pb

from . import membership as members
from .core import RaftCore, Role
from .progress import Progress

# Byte budget that means "everything", for reads that must not be cut short.
UNBOUNDED = 1 << 62


class Reconfiguration(RaftCore):
    def _apply_committed_config_changes(self) -> None:
        log = self.log
        pending = log.config_changes
        ordered = self.config.ordered_config_change
        while pending and pending[0] <= log.committed:
            index = pending.pop(0)
            entry = log.entries(index, index + 1, UNBOUNDED)[0]
            try:
                cc = pb.ConfigChange.FromString(entry.cmd)
            except DecodeError:
                # Admission keeps these out; one saved before it did is ignored, as the
                # state machine layer ignores it ("malformed config change").
                continue
            if members.check(self.membership, cc, ordered) is None:
                members.apply(self.membership, cc, index)

    def _membership_changed(self) -> None:
        m = self.membership
        self.voters = frozenset([*m.addresses, *m.witnesses])
        self.witnesses = frozenset(m.witnesses)
        if self.replica_id in m.removed:
            self.removed = True
        if self.role is Role.LEADER:
            members_now = set(self._members())
            members_now.discard(self.replica_id)
            committed = self.log.committed
            for rid in list(self.progress):
                if rid not in members_now:
                    # A last word, so that it usually learns it was removed and stays
                    # quiet: an empty REPLICATE that commits, if its log matches ours
                    # at our commit index. We will not talk to it again.
                    del self.progress[rid]
                    term = self.log.term(committed)
                    self._send(
                        pb.REPLICATE, rid, log_index=committed, log_term=term, commit=committed
                    )
            last = self.log.last_index()
            for rid in members_now:
                if rid not in self.progress:
                    self.progress[rid] = Progress(last + 1, self.config.max_inflight)
            if self.transfer_target and self.transfer_target not in m.addresses:
                self.transfer_target = 0
            self.need_flush = True
            if self.removed:
                self._hand_over()
        elif self.role is not Role.CANDIDATE and self.role is not Role.PRE_CANDIDATE:
            self._set_role(self._base_role())
