"""Admission: whether a message from another replica may reach the core at all.

The core believes what it is told: a term near 2**64 is adopted and then overflows,
entries with a gap are appended as they come, a config change that does not decode
stops the replica when it commits. So every message from the network passes `check`
first, and one that fails is dropped, never stepped.

Rules:
- Pure and deterministic: a function of the message and the receiver's state. No IO,
  no clock; the caller counts and logs refusals.
- Shape per kind (see messages.py for what each field means): a kind carries only the
  fields it is sent with. Term 0 exactly where a follower forwards a request
  (PROPOSE_FORWARD, READ_INDEX, LEADER_TRANSFER) and where a fresh replica may answer a
  pre-vote; every other kind names a term. A kind replicas never send each other is
  refused whole.
- Ranges: terms and indexes stay below TERM_LIMIT and INDEX_LIMIT, and one message moves
  the receiver's term by at most TERM_STEP_LIMIT, so no arithmetic on them overflows
  and no single message can bring a shard to the end of its terms.
- Entries of a REPLICATE follow `log_index` without a gap, with terms that never
  decrease, from `log_term` up to the message's term; their types are the receiver's
  (a witness gets METADATA, any other replica never does); a CONFIG_CHANGE decodes
  into a change `membership.check` can judge, with a usable address. Forwarded
  proposals are not numbered yet.
- Snapshots and memberships are coherent: an index and a term, ids that are not 0 and
  in one group only, usable addresses, at least one voter.
- The sender is this shard's: a member, a replica being added (a config change in our
  log), a removed one (the core knows how to answer those), the leader or candidate we
  follow, or a voter of a newer membership the message presents (a replica that missed
  the change that added it, thesis 4.1). A replica that knows no membership yet (it is
  joining) cannot tell, and takes its first leader's word.
- An acknowledgement never names an entry this replica does not hold.
- What cannot be checked: whether a well-formed message from a member tells the
  truth. Raft trusts its members; keeping everyone else out is mutual TLS's job.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from enum import StrEnum
from operator import attrgetter

from google.protobuf.message import DecodeError

from protos import raft_pb2 as pb

from .core import RaftCore, Role
from .logreader import CompactedError, UnavailableError
from .messages import INDEX_LIMIT, TERM_LIMIT, TERM_STEP_LIMIT

_INDEX = attrgetter("index")
_TERM = attrgetter("term")
_TYPE = attrgetter("type")
_EVERYTHING = 1 << 62  # a byte budget that reads one whole entry

CONFIG_CHANGE = pb.CONFIG_CHANGE
_REPLICA_ENTRY_TYPES = frozenset({pb.APPLICATION, pb.CONFIG_CHANGE})
_WITNESS_ENTRY_TYPES = frozenset({pb.METADATA, pb.CONFIG_CHANGE})
_CHANGE_TYPES = frozenset({pb.ADD_NODE, pb.REMOVE_NODE, pb.ADD_NON_VOTING, pb.ADD_WITNESS})


class Refusal(StrEnum):
    """Why a message was not let in (also the label it is counted under)."""

    LOCAL_TYPE = "local-type"  # a kind replicas never send each other
    NOT_ADDRESSED = "not-addressed"  # `to` or `shard_id` is not this replica's
    BAD_SENDER = "bad-sender"  # from_id 0, or this replica's own id
    NOT_A_MEMBER = "not-a-member"  # the sender belongs to no membership we know of
    TERM_OUT_OF_RANGE = "term-out-of-range"  # at TERM_LIMIT, or too far above ours
    BAD_TERM = "bad-term"  # a term where none belongs, none where one does, log_term > term
    INDEX_OUT_OF_RANGE = "index-out-of-range"  # an index at INDEX_LIMIT
    UNEXPECTED_FIELD = "unexpected-field"  # a field this kind is never sent with
    BAD_HINT = "bad-hint"  # a hint or read context this kind cannot carry
    ENTRY_GAP = "entry-gap"  # entries that do not follow log_index one by one
    ENTRY_TERM = "entry-term"  # entry terms that decrease or leave [log_term, term]
    BAD_ENTRY = "bad-entry"  # an entry type the receiver never gets, a bad config change
    BAD_SNAPSHOT = "bad-snapshot"  # snapshot metadata that cannot describe a log
    BAD_MEMBERSHIP = "bad-membership"  # a membership with bad ids, addresses or no voter
    BAD_ACK = "bad-ack"  # acknowledges an entry this replica does not hold


def check(r: RaftCore, m: pb.Message) -> Refusal | None:
    """None if `m`, received from the network, may be stepped into `r`; else why not."""
    kind = _KINDS.get(m.type)
    if kind is None:
        return Refusal.LOCAL_TYPE
    if m.to != r.replica_id or m.shard_id != r.shard_id:
        return Refusal.NOT_ADDRESSED
    sender = m.from_id
    if not sender or sender == r.replica_id:
        return Refusal.BAD_SENDER
    term = m.term
    if kind is _FORWARDED:
        if term:
            return Refusal.BAD_TERM
    elif term >= TERM_LIMIT or term > r.term + TERM_STEP_LIMIT:
        return Refusal.TERM_OUT_OF_RANGE
    elif not term and kind is not _MAY_BE_TERMLESS:
        return Refusal.BAD_TERM
    refusal = _SHAPE[m.type](r, m)
    if refusal is not None:
        return refusal
    return _check_sender(r, m)


# ---------------------------------------------------------------------- kinds by term

_NAMES_A_TERM = 0
_FORWARDED = 1  # term 0: a follower passes a request on to its leader
_MAY_BE_TERMLESS = 2  # a replica that never heard of a term answers a pre-vote with 0

_KINDS: dict[int, int] = {
    pb.REPLICATE: _NAMES_A_TERM,
    pb.REPLICATE_RESP: _NAMES_A_TERM,
    pb.REQUEST_VOTE: _NAMES_A_TERM,
    pb.REQUEST_VOTE_RESP: _NAMES_A_TERM,
    pb.REQUEST_PRE_VOTE: _NAMES_A_TERM,
    pb.REQUEST_PRE_VOTE_RESP: _MAY_BE_TERMLESS,
    pb.INSTALL_SNAPSHOT: _NAMES_A_TERM,
    pb.HEARTBEAT: _NAMES_A_TERM,
    pb.HEARTBEAT_RESP: _NAMES_A_TERM,
    pb.READ_INDEX: _FORWARDED,
    pb.READ_INDEX_RESP: _NAMES_A_TERM,
    pb.TIMEOUT_NOW: _NAMES_A_TERM,
    pb.QUIESCE: _NAMES_A_TERM,
    pb.RATE_LIMIT: _NAMES_A_TERM,
    pb.PROPOSE_FORWARD: _FORWARDED,
    pb.LEADER_TRANSFER: _FORWARDED,
}


# ---------------------------------------------------------------------- shapes by kind


def _replicate(r: RaftCore, m: pb.Message) -> Refusal | None:
    if m.reject or m.hint_high or m.hint > 1:
        return Refusal.UNEXPECTED_FIELD
    log_index, log_term = m.log_index, m.log_term
    if log_index >= INDEX_LIMIT or m.commit >= INDEX_LIMIT:
        return Refusal.INDEX_OUT_OF_RANGE
    if log_term > m.term or (not log_term) != (not log_index):
        return Refusal.BAD_TERM  # only the entry at index 0 (none) has term 0
    if m.HasField("snapshot"):
        refusal = _presented(m)
        if refusal is not None:
            return refusal
    entries = m.entries
    if entries:
        return _check_entries(entries, log_index, log_term, m.term, _is_witness(r), m.hint == 1)
    return None


def _replicate_resp(r: RaftCore, m: pb.Message) -> Refusal | None:
    if m.commit or m.hint_high or m.entries or m.HasField("snapshot"):
        return Refusal.UNEXPECTED_FIELD
    index = m.log_index
    if index >= INDEX_LIMIT:
        return Refusal.INDEX_OUT_OF_RANGE
    if m.reject:
        # The follower lacks our entry at log_index and points below it.
        if m.hint > index or m.log_term > m.term:
            return Refusal.BAD_HINT
    elif m.hint or m.log_term:
        return Refusal.UNEXPECTED_FIELD
    # Only a leader acts on these. While it leads, its log holds every entry it sent
    # in its term, so a same-term answer naming one it does not hold is false. (One
    # that crashed before saving what it sent may hear of those entries later, but no
    # longer leads that term; an answer of another term is stale, and dropped.) A
    # follower also answers with its commit index when that is past what we sent, so
    # one that was told of a commit we lack (only a broken rule can do that: figure 8
    # of the thesis) names an entry past our log; taken, it made the leader's next
    # send look up a term it does not hold, and the leader's host stopped. Refused,
    # the leader goes on and the damage shows as what it is: replicas that differ.
    if m.term == r.term and r.role is Role.LEADER and index > r.log.last_index():
        return Refusal.BAD_ACK
    return None


def _vote_request(r: RaftCore, m: pb.Message) -> Refusal | None:
    if m.commit or m.reject or m.hint_high or m.entries:
        return Refusal.UNEXPECTED_FIELD
    if m.hint and m.hint != m.from_id:
        return Refusal.BAD_HINT  # the hint marks a leader transfer to the candidate itself
    if m.log_index >= INDEX_LIMIT:
        return Refusal.INDEX_OUT_OF_RANGE
    if m.log_term > m.term or (not m.log_term) != (not m.log_index):
        return Refusal.BAD_TERM
    if m.HasField("snapshot"):
        return _presented(m)
    return None


def _vote_response(r: RaftCore, m: pb.Message) -> Refusal | None:
    if (
        m.log_term
        or m.log_index
        or m.commit
        or m.hint
        or m.hint_high
        or m.entries
        or m.HasField("snapshot")
    ):
        return Refusal.UNEXPECTED_FIELD
    return None


def _install_snapshot(r: RaftCore, m: pb.Message) -> Refusal | None:
    if m.log_term or m.log_index or m.commit or m.reject or m.hint or m.hint_high or m.entries:
        return Refusal.UNEXPECTED_FIELD
    if not m.HasField("snapshot"):
        return Refusal.BAD_SNAPSHOT
    return snapshot_problem(m.snapshot, m.shard_id, m.term, _is_witness(r))


def _heartbeat(r: RaftCore, m: pb.Message) -> Refusal | None:
    if m.log_term or m.log_index or m.reject or m.entries:
        return Refusal.UNEXPECTED_FIELD
    if m.commit >= INDEX_LIMIT:
        return Refusal.INDEX_OUT_OF_RANGE
    if m.HasField("snapshot"):
        return _presented(m)
    return None


def _heartbeat_resp(r: RaftCore, m: pb.Message) -> Refusal | None:
    if m.log_term or m.log_index or m.commit or m.reject or m.entries or m.HasField("snapshot"):
        return Refusal.UNEXPECTED_FIELD
    return None


def _read_index(r: RaftCore, m: pb.Message) -> Refusal | None:
    if m.log_term or m.log_index or m.commit or m.reject or m.entries or m.HasField("snapshot"):
        return Refusal.UNEXPECTED_FIELD
    if not m.hint and not m.hint_high:
        return Refusal.BAD_HINT  # no read context: nobody waits for it
    return None


def _read_index_resp(r: RaftCore, m: pb.Message) -> Refusal | None:
    if m.log_term or m.commit or m.entries or m.HasField("snapshot"):
        return Refusal.UNEXPECTED_FIELD
    if not m.hint and not m.hint_high:
        return Refusal.BAD_HINT
    if m.log_index >= INDEX_LIMIT:
        return Refusal.INDEX_OUT_OF_RANGE
    if not m.reject and not m.log_index:
        return Refusal.BAD_ACK  # a confirmed read is at a commit index, never 0
    return None


def _bare(r: RaftCore, m: pb.Message) -> Refusal | None:
    """TIMEOUT_NOW and QUIESCE: a term and nothing else."""
    if (
        m.log_term
        or m.log_index
        or m.commit
        or m.reject
        or m.hint
        or m.hint_high
        or m.entries
        or m.HasField("snapshot")
    ):
        return Refusal.UNEXPECTED_FIELD
    return None


def _rate_limit(r: RaftCore, m: pb.Message) -> Refusal | None:
    if m.log_term or m.log_index or m.commit or m.hint_high or m.entries or m.HasField("snapshot"):
        return Refusal.UNEXPECTED_FIELD
    if m.hint >= INDEX_LIMIT:
        return Refusal.BAD_HINT  # bytes of log: no real log is that big
    return None


def _propose_forward(r: RaftCore, m: pb.Message) -> Refusal | None:
    if (
        m.log_term
        or m.log_index
        or m.commit
        or m.reject
        or m.hint
        or m.hint_high
        or m.HasField("snapshot")
        or not m.entries
    ):
        return Refusal.UNEXPECTED_FIELD
    entries = m.entries
    # Numbered only by the leader that appends them.
    if any(map(_INDEX, entries)) or any(map(_TERM, entries)):
        return Refusal.BAD_ENTRY
    types = set(map(_TYPE, entries))
    if not types <= _REPLICA_ENTRY_TYPES:
        return Refusal.BAD_ENTRY
    if CONFIG_CHANGE in types:
        for e in entries:
            if e.type == CONFIG_CHANGE and config_change_problem(e.cmd) is not None:
                return Refusal.BAD_ENTRY
    return None


def _leader_transfer(r: RaftCore, m: pb.Message) -> Refusal | None:
    if (
        m.log_term
        or m.log_index
        or m.commit
        or m.reject
        or m.hint_high
        or m.entries
        or m.HasField("snapshot")
    ):
        return Refusal.UNEXPECTED_FIELD
    if not m.hint:
        return Refusal.BAD_HINT  # the replica to transfer to
    return None


_SHAPE = {
    pb.REPLICATE: _replicate,
    pb.REPLICATE_RESP: _replicate_resp,
    pb.REQUEST_VOTE: _vote_request,
    pb.REQUEST_VOTE_RESP: _vote_response,
    pb.REQUEST_PRE_VOTE: _vote_request,
    pb.REQUEST_PRE_VOTE_RESP: _vote_response,
    pb.INSTALL_SNAPSHOT: _install_snapshot,
    pb.HEARTBEAT: _heartbeat,
    pb.HEARTBEAT_RESP: _heartbeat_resp,
    pb.READ_INDEX: _read_index,
    pb.READ_INDEX_RESP: _read_index_resp,
    pb.TIMEOUT_NOW: _bare,
    pb.QUIESCE: _bare,
    pb.RATE_LIMIT: _rate_limit,
    pb.PROPOSE_FORWARD: _propose_forward,
    pb.LEADER_TRANSFER: _leader_transfer,
}


# ---------------------------------------------------------------------- entries


def _check_entries(
    entries: Sequence[pb.Entry],
    log_index: int,
    log_term: int,
    term: int,
    witness: bool,
    changes_flagged: bool,
) -> Refusal | None:
    # One pass over the container makes its wrappers; the rest run in C over a list.
    # This is on the replication path.
    entries = list(entries)
    n = len(entries)
    first = log_index + 1
    if first + n > INDEX_LIMIT:
        return Refusal.INDEX_OUT_OF_RANGE
    if list(map(_INDEX, entries)) != list(range(first, first + n)):
        return Refusal.ENTRY_GAP
    terms = list(map(_TERM, entries))
    if terms[0] < max(log_term, 1) or terms[-1] > term or terms != sorted(terms):
        return Refusal.ENTRY_TERM
    types = set(map(_TYPE, entries))
    if not types <= (_WITNESS_ENTRY_TYPES if witness else _REPLICA_ENTRY_TYPES):
        return Refusal.BAD_ENTRY
    if CONFIG_CHANGE in types:
        if not changes_flagged:
            # The follower looks for config changes only when told (hint 1): one it
            # was not told of would never change its membership, only its state
            # machine's.
            return Refusal.BAD_HINT
        for e in entries:
            if e.type == CONFIG_CHANGE and config_change_problem(e.cmd) is not None:
                return Refusal.BAD_ENTRY
    return None


def config_change_problem(cmd: bytes) -> str | None:
    """Why `cmd` is no config change a replica could take, or None.

    Committed, a change that does not decode, names replica 0 or an address no host
    can have would stop every replica that applies it; so it is refused at the door,
    here for entries a leader sends and for proposals a follower forwards."""
    try:
        cc = pb.ConfigChange.FromString(cmd)
    except DecodeError:
        return "does not decode"
    if cc.type not in _CHANGE_TYPES:
        return f"unknown change type {cc.type}"
    if not cc.replica_id:
        return "replica id 0"
    if cc.type != pb.REMOVE_NODE and not valid_address(cc.address):
        return f"address {cc.address[:64]!r} is not host:port"
    return None


# ---------------------------------------------------------------------- snapshots, memberships


def snapshot_problem(s: pb.Snapshot, shard_id: int, term: int, witness: bool) -> Refusal | None:
    """Why a snapshot a leader of `term` sent cannot be installed, or None."""
    if s.shard_id and s.shard_id != shard_id:
        return Refusal.BAD_SNAPSHOT
    if not s.index or s.index >= INDEX_LIMIT or not s.term or s.term > term:
        return Refusal.BAD_SNAPSHOT
    if s.witness != witness:
        return Refusal.BAD_SNAPSHOT  # a witness gets metadata only, any other replica data
    if membership_problem(s.membership) is not None:
        return Refusal.BAD_MEMBERSHIP
    if s.membership.config_change_id > s.index:
        return Refusal.BAD_SNAPSHOT  # changed after the point it stands for
    return None


def membership_problem(mb: pb.Membership) -> str | None:
    """Why `mb` cannot be a shard's membership, or None."""
    if not mb.addresses:
        return "no voting member"
    if mb.config_change_id >= INDEX_LIMIT:
        return "config change id out of range"
    seen: set[int] = set()
    for group in (mb.addresses, mb.non_votings, mb.witnesses):
        for rid, address in group.items():
            if not rid or rid in seen:
                return f"replica {rid} is 0 or in two groups"
            if not valid_address(address):
                return f"replica {rid} has address {address[:64]!r}"
            seen.add(rid)
    for rid in mb.removed:
        if not rid or rid in seen:
            return f"replica {rid} is 0 or both removed and a member"
    return None


def _presented(m: pb.Message) -> Refusal | None:
    """A leader or candidate may present its membership (and nothing else of a snapshot)
    so that a replica that missed the change adding it can take its message and learn
    its address. It must list the sender as a voter."""
    s = m.snapshot
    if len(s.ListFields()) != 1 or not s.HasField("membership"):
        return Refusal.UNEXPECTED_FIELD
    if membership_problem(s.membership) is not None or m.from_id not in s.membership.addresses:
        return Refusal.BAD_MEMBERSHIP
    return None


def valid_address(address: str) -> bool:
    """Exactly the transport's rule for what a membership names a host by (tests check
    the two agree): "host:port" ("[v6]:port"), or a NodeHost id (a UUID in its canonical
    text) where hosts are addressed by id. An address let in here can be routed, and
    every address a NodeHost accepts from its user (a stricter rule) is let in, so a
    change the local API took is never refused by the other replicas. Either kind is let
    in whatever this host's mode: the registry refuses a target of the other kind when
    the membership is applied, and a replica with no route is only unreachable."""
    host, sep, port = address.rpartition(":")
    if sep:
        return (
            bool(host)
            and port.isdigit()
            and int(port) <= 65535
            and host.startswith("[") == host.endswith("]")
        )
    return _is_node_host_id(address)


def _is_node_host_id(text: str) -> bool:
    if len(text) != 36:  # the canonical form's length: no parsing of longer junk
        return False
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


# ---------------------------------------------------------------------- the sender


def _check_sender(r: RaftCore, m: pb.Message) -> Refusal | None:
    sender = m.from_id
    mb = r.membership
    if (
        sender in mb.addresses
        or sender in mb.non_votings
        or sender in mb.witnesses
        or sender in mb.removed
        or sender == r.leader_id
        or sender == r.vote
    ):
        return None
    if not mb.addresses and not mb.non_votings and not mb.witnesses:
        return None  # joining: no membership to judge by yet
    if m.HasField("snapshot"):
        presented = m.snapshot.membership
        if presented.config_change_id > mb.config_change_id and sender in presented.addresses:
            return None
    if sender in pending_members(r):
        return None
    return Refusal.NOT_A_MEMBER


def pending_members(r: RaftCore) -> set[int]:
    """Replicas that config changes in our log add once they commit."""
    log = r.log
    added: set[int] = set()
    for index in log.config_changes:
        try:
            entry = log.entries(index, index + 1, _EVERYTHING)[0]
            cc = pb.ConfigChange.FromString(entry.cmd)
        except (CompactedError, UnavailableError, DecodeError):
            continue
        if cc.type != pb.REMOVE_NODE:
            added.add(cc.replica_id)
    return added


def _is_witness(r: RaftCore) -> bool:
    return r.config.is_witness or r.replica_id in r.membership.witnesses
