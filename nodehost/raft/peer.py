"""`Peer`: the core as the engine sees it. Inputs in, one `Update` at a time out.

Rules:
- One Update is outstanding at a time: `get_update` hands it out, `commit_update`
  takes it back after the caller acted on it in the order its docstring gives.
  Inputs may still be stepped in between; what they produce waits for the next Update.
- The hard state goes out only when it changed; `must_sync` only when term, vote,
  entries or a snapshot changed (a commit index alone may be lost in a crash: it is
  learned again from the leader).
- Entries passed to `propose` belong to the core from then on: it sets their term and
  index in place and keeps them in its in-memory log.
"""

from __future__ import annotations

import random

from protos import raft_pb2 as pb

from . import membership as members
from .admission import Refusal, check
from .config import RaftConfig
from .log import RaftLog
from .logreader import LogReader
from .messages import local_message
from .raft import MAX_APPLY_BYTES, ProposalResult, Raft, Role
from .update import LeaderInfo, ReadContext, Update


class Peer:
    __slots__ = ("_leader", "_outstanding", "_raft", "_saved_state")

    def __init__(
        self,
        config: RaftConfig,
        log: LogReader,
        rng: random.Random,
        initial_members: dict[int, str] | None = None,
        join: bool = False,
        applied: int = 0,
        *,
        protocol: type[Raft] = Raft,
    ) -> None:
        """Start a replica on `log`, running `protocol` (Raft; a test may hand in a
        subclass that breaks one rule on purpose, to prove its checks catch it).

        A new replica (empty log, not joining) starts the shard with `initial_members`:
        the bootstrap entries, committed at term 1, come out in the first Update. A
        joining replica starts empty and learns everything from the leader. A restart
        (the log has data) ignores both and resumes from the log; `applied` is what the
        state machine already holds (0 when it is rebuilt from the snapshot), so only
        later committed entries are handed out again.
        """
        state = log.state()
        fresh = (
            state.term == 0
            and state.vote == 0
            and log.last_index() == 0
            and log.snapshot().index == 0
        )
        raft_log = RaftLog(log)
        if fresh and not join:
            if not initial_members:
                raise ValueError(
                    f"replica {config.replica_id} of shard {config.shard_id} has no data: "
                    "start it with initial_members, or with join=True once it was added"
                )
            if config.replica_id not in initial_members:
                raise ValueError(
                    f"replica {config.replica_id} is not among the initial members "
                    f"{sorted(initial_members)}"
                )
            bootstrap = members.bootstrap_entries(initial_members)
            raft_log.append(bootstrap)
            raft_log.committed = len(bootstrap)
            hard = pb.State(term=1, vote=0, commit=len(bootstrap))
        else:
            if applied > raft_log.committed:
                # The state machine applied entries whose commit index was saved
                # without an fsync and lost: they were committed all the same.
                raft_log.committed = min(applied, raft_log.last_index())
            hard = pb.State(term=state.term, vote=state.vote, commit=raft_log.committed)
            raft_log.processed = max(raft_log.processed, min(applied, raft_log.committed))
            raft_log.applied = raft_log.processed
        membership = pb.Membership()
        membership.CopyFrom(log.snapshot().membership)
        self._raft = protocol(config, raft_log, rng, membership, hard)
        self._saved_state = (state.term, state.vote, state.commit)
        self._leader = (0, self._raft.term)
        self._outstanding: Update | None = None

    # ------------------------------------------------------------------ inputs

    def tick(self) -> bool:
        """Advance logical time one tick.

        Returns False when the tick surely made no work (a quiesced replica, a follower
        whose election timer has not fired): an engine may skip has_update then."""
        return self._raft.tick()

    def step(self, msg: pb.Message) -> None:
        self._raft.step(msg)

    def check(self, msg: pb.Message) -> Refusal | None:
        """Whether a message from the network may be stepped (None) or why not.

        Step only what passes: the core trusts what it is given (admission.py)."""
        return check(self._raft, msg)

    def propose(self, entries: list[pb.Entry]) -> ProposalResult:
        """Append on the leader, forward from a follower, or drop (Update.dropped_entries).

        A config change entry is dropped while another one is pending, or before this
        leader committed an entry of its term; a batch is dropped during a leader
        transfer or on a removed replica."""
        return self._raft.propose(entries)

    def propose_config_change(self, cc: pb.ConfigChange, key: int) -> ProposalResult:
        entry = pb.Entry(type=pb.CONFIG_CHANGE, key=key, cmd=cc.SerializeToString())
        return self._raft.propose([entry])

    def read_index(self, ctx: ReadContext) -> None:
        self._raft.read_index(ctx)

    def transfer_leader(self, target: int) -> None:
        self._raft.step(local_message(pb.LEADER_TRANSFER, hint=target))

    def report_unreachable(self, replica_id: int) -> None:
        self._raft.step(local_message(pb.UNREACHABLE, from_id=replica_id))

    def report_snapshot_status(self, replica_id: int, failed: bool) -> None:
        self._raft.step(pb.Message(type=pb.SNAPSHOT_STATUS, from_id=replica_id, reject=failed))

    def restore(self, snapshot: pb.Snapshot) -> bool:
        """Take a snapshot from the leader; False when the log already covers it."""
        return self._raft.restore(snapshot)

    def applied_to(self, index: int) -> None:
        """The state machine applied up to index: in-memory entries may be released."""
        self._raft.log.applied_to(index)

    # ------------------------------------------------------------------ output

    def has_update(self) -> bool:
        if self._outstanding is not None:
            return False
        r = self._raft
        if r.need_flush:
            r.flush()
        if r.msgs or r.replicate:
            return True
        log = r.log
        committed = log.committed
        saved = self._saved_state
        return bool(
            committed > log.processed
            or log.saved_to < log.mem_offset + len(log.mem) - 1
            or committed != saved[2]
            or r.term != saved[0]
            or r.vote != saved[1]
            or r.leader_id != self._leader[0]
            or r.term != self._leader[1]
            or r.ready_reads
            or r.dropped_entries
            or r.dropped_reads
            or log.snapshot is not None
        )

    def get_update(self) -> Update:
        if self._outstanding is not None:
            raise RuntimeError("the previous Update was not committed: call commit_update first")
        r = self._raft
        if r.need_flush:
            r.flush()
        log = r.log
        term, vote, commit = r.term, r.vote, log.committed
        saved = self._saved_state
        state = None
        if commit != saved[2] or term != saved[0] or vote != saved[1]:
            state = pb.State(term=term, vote=vote, commit=commit)
        k = log.saved_to + 1 - log.mem_offset
        entries = log.mem[k:] if k < len(log.mem) else []
        snapshot = log.snapshot
        # The Update takes the output lists; the core starts new ones.
        replicate, r.replicate = r.replicate, []
        messages, r.msgs = r.msgs, []
        ready, r.ready_reads = r.ready_reads, []
        dropped_entries, r.dropped_entries = r.dropped_entries, []
        dropped_reads, r.dropped_reads = r.dropped_reads, []
        leader = None
        if r.leader_id != self._leader[0] or term != self._leader[1]:
            leader = LeaderInfo(r.leader_id, term)
            self._leader = (r.leader_id, term)
        committed = log.committed_entries(MAX_APPLY_BYTES)
        # Committed entries this replica saved in an earlier pass may be applied while
        # this Update is being saved (a leader's always are: it counts its own match
        # only after its save); those that arrived in this very pass wait for it.
        saved_committed = 0
        if committed and snapshot is None:
            saved_committed = max(0, min(len(committed), log.saved_to - committed[0].index + 1))
        u = Update(
            r.shard_id,
            r.replica_id,
            state,
            entries,
            snapshot,
            replicate,
            messages,
            committed,
            ready,
            dropped_entries,
            dropped_reads,
            leader,
            bool(entries) or snapshot is not None or term != saved[0] or vote != saved[1],
            saved_committed,
        )
        self._outstanding = u
        return u

    def commit_update(self, update: Update) -> None:
        """The caller saved `update` and sent its messages."""
        if update is not self._outstanding:
            raise RuntimeError("commit_update got an Update that is not the outstanding one")
        self._outstanding = None
        r = self._raft
        log = r.log
        if update.state is not None:
            st = update.state
            self._saved_state = (st.term, st.vote, st.commit)
        if update.snapshot is not None:
            log.snapshot_saved(update.snapshot)
        if update.entries:
            saved_to = log.saved(update.entries)
            if r.role is Role.LEADER:
                r.self_saved(saved_to)

    def rate_limited(self) -> bool:
        """True while proposals must be refused (SystemBusy)."""
        return self._raft.rate_limited()

    # ------------------------------------------------------------------ views

    @property
    def raft(self) -> Raft:
        """The protocol state, for tests and debugging; not for driving the replica."""
        return self._raft

    @property
    def replica_id(self) -> int:
        return self._raft.replica_id

    @property
    def shard_id(self) -> int:
        return self._raft.shard_id

    @property
    def term(self) -> int:
        return self._raft.term

    @property
    def leader_id(self) -> int:
        return self._raft.leader_id

    @property
    def role(self) -> Role:
        return self._raft.role

    @property
    def committed(self) -> int:
        return self._raft.log.committed

    @property
    def membership(self) -> pb.Membership:
        copy = pb.Membership()
        copy.CopyFrom(self._raft.membership)
        return copy

    @property
    def membership_id(self) -> int:
        """The index of the last applied config change: cheap to poll, unlike a copy."""
        return self._raft.membership.config_change_id

    @property
    def quiesced(self) -> bool:
        return self._raft.quiesce.quiesced_since >= 0

    @property
    def removed(self) -> bool:
        return self._raft.removed

    def is_leader(self) -> bool:
        return self._raft.role is Role.LEADER
