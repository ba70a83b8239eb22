"""Reads: ReadIndex (thesis 6.4), linearizable reads without writing to the log.

Split out because reads never change the log or the term: they only ask the leader
for its commit index and wait until a heartbeat round proves it still leads. The
queue itself is readindex.py; this is the protocol around it: a follower forwards,
the leader records, heartbeat answers release (replication.py calls
`_release_read`), and a leader stepping down rejects what it held.

Rules: a leader serves no read before an entry of its own term has committed (its
commit index may be behind the cluster's until then); the caller retries.
"""

from __future__ import annotations

from protos import raft_pb2 as pb

from .core import RaftCore, Role
from .readindex import PendingRead
from .update import ReadContext, ReadyToRead


class Reads(RaftCore):
    def read_index(self, ctx: ReadContext) -> None:
        if self.removed:
            self.dropped_reads.append(ctx)
            return
        if self.quiesce_on and self.quiesce.activity():
            self._woke()
        role = self.role
        if role is Role.LEADER:
            self._leader_read(ctx, self.replica_id)
        elif self.leader_id and role is not Role.CANDIDATE and role is not Role.PRE_CANDIDATE:
            self.replicate.append(  # it carries no state of ours: it may leave before the save
                pb.Message(
                    type=pb.READ_INDEX,
                    to=self.leader_id,
                    from_id=self.replica_id,
                    shard_id=self.shard_id,
                    hint=ctx.low,
                    hint_high=ctx.high,
                )
            )
        else:
            self.dropped_reads.append(ctx)

    def _handle_batched_read_index(self, m: pb.Message) -> None:
        self.read_index(ReadContext(m.hint, m.hint_high))

    def _handle_read_index(self, m: pb.Message) -> None:
        self._leader_read(ReadContext(m.hint, m.hint_high), m.from_id)

    def _leader_read(self, ctx: ReadContext, from_id: int) -> None:
        read = PendingRead(ctx, self.log.committed, from_id, self.tick_count)
        if self.removed:
            self._reject_read(read)
            return
        # Our commit index may be behind the cluster's until an entry of our term
        # commits (thesis 6.4, etcd #7331): the caller retries (ShardNotReady).
        if not self.term_committed:
            self._reject_read(read)
            return
        if self.voters == {self.replica_id}:
            self._release_read(read)
            return
        self.reads.add(ctx, read.index, from_id, self.tick_count)
        self.need_flush = True

    def _release_read(self, read: PendingRead) -> None:
        if read.from_id == self.replica_id:
            self.ready_reads.append(ReadyToRead(read.context, read.index))
        else:
            ctx = read.context
            self._send(
                pb.READ_INDEX_RESP,
                read.from_id,
                log_index=read.index,
                hint=ctx.low,
                hint_high=ctx.high,
            )

    def _reject_read(self, read: PendingRead) -> None:
        if read.from_id == self.replica_id:
            self.dropped_reads.append(read.context)
        else:
            ctx = read.context
            self._send(
                pb.READ_INDEX_RESP, read.from_id, reject=True, hint=ctx.low, hint_high=ctx.high
            )

    def _abandon_reads(self) -> None:
        for read in self.reads.drain():
            self._reject_read(read)

    def _handle_not_leader_read_index(self, m: pb.Message) -> None:
        self._send(pb.READ_INDEX_RESP, m.from_id, reject=True, hint=m.hint, hint_high=m.hint_high)

    def _handle_read_index_resp(self, m: pb.Message) -> None:
        ctx = ReadContext(m.hint, m.hint_high)
        if m.reject:
            self.dropped_reads.append(ctx)
        else:
            self.ready_reads.append(ReadyToRead(ctx, m.log_index))
