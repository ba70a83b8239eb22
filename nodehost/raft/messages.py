"""Message kinds, and the few facts about them the core and its callers share.

Rules:
- `MessageType` mirrors `pb.MessageType` value for value (a test checks it), so a
  message's `type` field can be used as a `MessageType` key without conversion.
- Local kinds are inputs a replica gives itself; the engine must drop any that
  arrive from the network (`is_local`).
- A message with term 0 carries no claim about terms: local inputs and the requests a
  follower forwards to its leader (proposals, reads, leader transfers). Only these
  skip the term rules in `Raft.step`.

What the generic fields mean, by kind (fields not listed are unset):

    REPLICATE            log_term/log_index: the entry before `entries`; commit;
                         hint=1: the entries may include CONFIG_CHANGE ones
    REPLICATE_RESP       log_index: the follower holds our log up to here; or, with
                         reject: log_index was not matched, hint/log_term: the last
                         entry the follower has whose term is <= the leader's there
    REQUEST_(PRE_)VOTE   log_term/log_index: the candidate's last entry;
                         hint == from_id: leader transfer (ignore the lease)
    *_VOTE_RESP          reject: not granted
    HEARTBEAT            commit (never past what the follower is known to hold);
                         hint/hint_high: the latest pending ReadIndex context
    HEARTBEAT_RESP       hint/hint_high: echoed
    READ_INDEX           hint/hint_high: the read context (term 0: forwarded)
    READ_INDEX_RESP      hint/hint_high: the context; log_index: the read index;
                         reject: dropped, retry
    INSTALL_SNAPSHOT     snapshot: metadata (the transport streams the data)
    RATE_LIMIT           to the leader: hint = bytes of unapplied in-memory log;
                         to a follower: reject = the shard is rate limited
    PROPOSE_FORWARD      entries (term 0), at most max_replicate_bytes of them
                         per message, as in REPLICATE
    LEADER_TRANSFER      hint: the target (term 0 when forwarded by a follower)
    SNAPSHOT_STATUS      from_id: the follower; reject: the transfer failed
    UNREACHABLE          from_id: the replica that could not be reached

A REPLICATE or HEARTBEAT to a follower that may lack the latest membership change, and
every REQUEST_(PRE_)VOTE, may carry the sender's membership in `snapshot.membership`
(nothing else of the snapshot): a receiver that does not know the sender yet takes its
message and learns where to answer (admission.py). Every message from the network
passes admission before `step`.
"""

from __future__ import annotations

from enum import IntEnum

from protos import raft_pb2 as pb


class MessageType(IntEnum):
    INVALID = 0
    LOCAL_TICK = 1
    ELECTION = 2
    LEADER_HEARTBEAT = 3
    CHECK_QUORUM = 4
    PROPOSE = 5
    CONFIG_CHANGE_EVENT = 6
    SNAPSHOT_STATUS = 7
    UNREACHABLE = 8
    LEADER_TRANSFER = 9
    BATCHED_READ_INDEX = 10
    SNAPSHOT_RECEIVED = 11
    REPLICATE = 20
    REPLICATE_RESP = 21
    REQUEST_VOTE = 22
    REQUEST_VOTE_RESP = 23
    REQUEST_PRE_VOTE = 24
    REQUEST_PRE_VOTE_RESP = 25
    INSTALL_SNAPSHOT = 26
    HEARTBEAT = 27
    HEARTBEAT_RESP = 28
    READ_INDEX = 29
    READ_INDEX_RESP = 30
    TIMEOUT_NOW = 31
    QUIESCE = 32
    RATE_LIMIT = 33
    PROPOSE_FORWARD = 34


# Never accepted from the network. LEADER_TRANSFER is the exception the core itself
# makes: a follower forwards a transfer request to its leader (term 0), as dragonboat
# does, so an operator may ask any replica.
LOCAL_TYPES: frozenset[int] = frozenset(
    {
        MessageType.INVALID,
        MessageType.LOCAL_TICK,
        MessageType.ELECTION,
        MessageType.LEADER_HEARTBEAT,
        MessageType.CHECK_QUORUM,
        MessageType.PROPOSE,
        MessageType.CONFIG_CHANGE_EVENT,
        MessageType.SNAPSHOT_STATUS,
        MessageType.UNREACHABLE,
        MessageType.BATCHED_READ_INDEX,
        MessageType.SNAPSHOT_RECEIVED,
    }
)

# Only a leader sends these, so a receiver that sees a newer term in one of them
# learns who leads that term.
FROM_LEADER_TYPES: frozenset[int] = frozenset(
    {
        MessageType.REPLICATE,
        MessageType.HEARTBEAT,
        MessageType.INSTALL_SNAPSHOT,
        MessageType.TIMEOUT_NOW,
        MessageType.QUIESCE,
    }
)

# Every term and index a replica accepts or reaches stays below these, so that no
# arithmetic on them (a campaign's term + 1, an index + a count) can overflow the wire's
# uint64 fields. Honest values never come near: a term grows by one per election.
TERM_LIMIT = 1 << 63
INDEX_LIMIT = 1 << 63
# How far one message may move a replica's term. A replica cut off for a long time can
# be many elections behind, but not four billion: a larger jump is a forged or corrupt
# term, and refusing it keeps one message from bringing a shard near TERM_LIMIT, where
# it could no longer elect a leader.
TERM_STEP_LIMIT = 1 << 32

# Bytes counted per entry on top of its command, for batching and rate limiting. The
# exact encoded size costs a C call per entry on the hot path; the header of an entry
# (term, index, type, key, session fields) is rarely more than this.
ENTRY_OVERHEAD = 24

# Memory an entry held in the log costs beyond its command, for the in-memory log
# limit: a protobuf Entry made in Python takes about 590 bytes with a 16-byte command,
# one decoded from a peer's message about 200. Counting the header bytes alone would
# let a log of small entries hold twenty times the memory its limit names.
ENTRY_MEMORY_OVERHEAD = 512


def is_local(message_type: int) -> bool:
    """True for inputs a replica gives itself: drop them if they arrive from a peer."""
    return message_type in LOCAL_TYPES


def local_message(message_type: pb.MessageType, from_id: int = 0, hint: int = 0) -> pb.Message:
    return pb.Message(type=message_type, from_id=from_id, hint=hint)
