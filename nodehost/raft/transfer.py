"""Leadership transfer (thesis 3.10), and the hand-over of a removed leader.

Split out because moving leadership is a small protocol beside elections: the leader
catches the target up, then sends TIMEOUT_NOW; the target campaigns at once
(elections.py). Proposals are refused meanwhile (replication.py), and the leader's
tick abandons a transfer that took longer than an election timeout (raft.py).
"""

from __future__ import annotations

from protos import raft_pb2 as pb

from .core import RaftCore


class LeaderTransfer(RaftCore):
    def _hand_over(self) -> None:
        """A removed leader keeps leading only to pass leadership on.

        Stepping down at once could strand the remaining voters: those that have not
        learned that our removal committed still count us, and our log may be longer
        than theirs, so they can neither win our vote nor do without it. So we keep
        replicating (without counting ourselves), refuse new work, and send TIMEOUT_NOW
        to the most caught-up voter (thesis 3.10 mechanics); retried every election
        timeout until someone takes over."""
        if self.transfer_target:
            return
        candidates = [
            (pr.match, -rid)
            for rid, pr in self.progress.items()
            if rid in self.membership.addresses
        ]
        if candidates:
            self._start_transfer(-max(candidates)[1])

    def _handle_leader_transfer(self, m: pb.Message) -> None:
        if self.quiesce_on and self.quiesce.activity():
            self._woke()
        if not self.removed:
            self._start_transfer(m.hint)

    def _start_transfer(self, target: int) -> None:
        if (
            target == self.replica_id
            or target not in self.membership.addresses
            or target not in self.progress
            or target == self.transfer_target
        ):
            return
        self.transfer_target = target
        # The transfer is abandoned if the target has not won within one election
        # timeout (thesis 3.10); the leader's election clock measures it.
        self.election_elapsed = 0
        pr = self.progress[target]
        if pr.match == self.log.last_index():
            self._send(pb.TIMEOUT_NOW, target)
        else:
            pr.probe_due = True  # catch it up now, not at the next heartbeat
            self.need_flush = True

    def _handle_forward_leader_transfer(self, m: pb.Message) -> None:
        if self.leader_id and m.term == 0 and not m.from_id:
            self.msgs.append(
                pb.Message(
                    type=pb.LEADER_TRANSFER,
                    to=self.leader_id,
                    from_id=self.replica_id,
                    shard_id=self.shard_id,
                    hint=m.hint,
                )
            )
