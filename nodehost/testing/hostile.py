"""Field-level mutations of real Raft messages: what a broken or hostile peer sends.

    from nodehost.testing.hostile import Context, mutate
    bad = mutate(recorded_message, rng, Context(max_term=7))  # (copy, operator) or None

Used three ways: by the simulated network (tests/raft), against live NodeHosts fed
recorded traffic (tests/host/test_engine_fuzz.py), and by scripts/hostile_peer.py.

Rules:
- A mutation never changes the message it is given; it returns a changed copy and
  the name of the operator, so a run can be counted and replayed by operator.
- Every operator makes a message that admission must refuse (a kind never sent
  between replicas, a term or index out of range, a gap, a field its kind never
  carries, a sender that is nobody), or one Raft is built to survive (a stale term,
  a newer term than anyone has, entries cut short, an older acknowledgement, a
  rejection where there was none). Duplicates, replays and reordering come on top.
- Left out on purpose: lies in a member's own name that no receiver can tell from the
  truth without authentication. Another command at the same index and term, a vote or
  acknowledgement that was never given, a larger commit index, another member's id, a
  shard it was not sent to. Raft trusts its members; keeping everyone else out is
  mutual TLS's job. (For example: a rejection turned into a success acknowledges
  entries the follower may not hold, and the leader would commit on it.)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from nodehost.raft.messages import INDEX_LIMIT, TERM_LIMIT, TERM_STEP_LIMIT, MessageType
from protos import raft_pb2 as pb

MT = MessageType
MAX_UINT64 = 2**64 - 1
REMOTE_TYPES = (
    MT.REPLICATE,
    MT.REPLICATE_RESP,
    MT.REQUEST_VOTE,
    MT.REQUEST_VOTE_RESP,
    MT.REQUEST_PRE_VOTE,
    MT.REQUEST_PRE_VOTE_RESP,
    MT.INSTALL_SNAPSHOT,
    MT.HEARTBEAT,
    MT.HEARTBEAT_RESP,
    MT.READ_INDEX,
    MT.READ_INDEX_RESP,
    MT.TIMEOUT_NOW,
    MT.QUIESCE,
    MT.RATE_LIMIT,
    MT.PROPOSE_FORWARD,
    MT.LEADER_TRANSFER,
)
# Into a vote grant no type may turn: a pre-vote grant or a heartbeat answer would
# count as a vote never given (see the module rules).
_SWAP_TARGETS = tuple(t for t in REMOTE_TYPES if t != MT.REQUEST_VOTE_RESP)
_NOT_REMOTE = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 19, 35, 99, 2**31 - 1)
_FORWARDED = (pb.PROPOSE_FORWARD, pb.READ_INDEX, pb.LEADER_TRANSFER)
_ANSWERS = (pb.REPLICATE_RESP, pb.REQUEST_VOTE_RESP, pb.REQUEST_PRE_VOTE_RESP, pb.READ_INDEX_RESP)


@dataclass
class Context:
    """What a mutation may need to know about the cluster it is aimed at."""

    max_term: int  # the highest term any replica has now
    nobody: int = 1_000_003  # a replica id no shard has
    unhosted_shard: int = 2**40 + 17  # a shard id no host runs


Operator = Callable[[pb.Message, random.Random, Context], bool]


def mutate(
    m: pb.Message,
    rng: random.Random,
    ctx: Context,
    weights: Mapping[str, float] | None = None,
) -> tuple[pb.Message, str] | None:
    """A changed copy of `m` and the operator's name; None if no operator applies.

    Operators are tried in a random order, each as likely as its weight (1 unless
    `weights` says otherwise; 0 leaves it out)."""
    weights = weights or {}
    keyed = []
    for name in OPERATORS:
        weight = weights.get(name, 1.0)
        if weight > 0:
            keyed.append((rng.random() ** (1.0 / weight), name))
    keyed.sort(reverse=True)
    for _, name in keyed:
        copy = pb.Message()
        copy.CopyFrom(m)
        if OPERATORS[name](copy, rng, ctx):
            return copy, name
    return None


# ---------------------------------------------------------------------- operators


def _type_not_remote(m: pb.Message, rng: random.Random, ctx: Context) -> bool:
    m.type = rng.choice(_NOT_REMOTE)  # type: ignore[assignment]
    return True


def _type_swap(m: pb.Message, rng: random.Random, ctx: Context) -> bool:
    current = int(m.type)
    m.type = rng.choice([t for t in _SWAP_TARGETS if t != current])  # type: ignore[assignment]
    return True


def _sender_nobody(m: pb.Message, rng: random.Random, ctx: Context) -> bool:
    m.from_id = rng.choice((0, m.to, ctx.nobody, MAX_UINT64))
    return True


def _receiver_elsewhere(m: pb.Message, rng: random.Random, ctx: Context) -> bool:
    m.to = rng.choice((0, ctx.nobody, MAX_UINT64))
    return True


def _shard_unhosted(m: pb.Message, rng: random.Random, ctx: Context) -> bool:
    m.shard_id = rng.choice((ctx.unhosted_shard, MAX_UINT64))
    return True


def _term_out_of_range(m: pb.Message, rng: random.Random, ctx: Context) -> bool:
    m.term = rng.choice(
        (
            MAX_UINT64,
            MAX_UINT64 - 1,
            TERM_LIMIT,
            TERM_LIMIT + rng.randrange(1 << 20),
            # Beyond any replica's step, with room for terms that move while it travels.
            ctx.max_term + TERM_STEP_LIMIT + (1 << 24) + rng.randrange(1 << 20),
        )
    )
    return True


def _term_zero_or_set(m: pb.Message, rng: random.Random, ctx: Context) -> bool:
    """A forwarded request names no term; every other kind but a pre-vote answer does."""
    if m.type in _FORWARDED:
        m.term = rng.randint(1, ctx.max_term + 1)
        return True
    if m.type == pb.REQUEST_PRE_VOTE_RESP or not m.term:
        return False
    m.term = 0
    return True


def _term_stale(m: pb.Message, rng: random.Random, ctx: Context) -> bool:
    if m.term <= 1 or m.type in _FORWARDED:
        return False
    m.term = rng.randint(1, m.term - 1)
    return True


def _term_ahead(m: pb.Message, rng: random.Random, ctx: Context) -> bool:
    """A term newer than anyone's by far, so no replica is campaigning in it: the
    receiver moves on to it and the shard elects a leader there."""
    if m.type in _FORWARDED:
        return False
    m.term = ctx.max_term + 1000 + rng.randrange(100_000)
    return True


def _index_out_of_range(m: pb.Message, rng: random.Random, ctx: Context) -> bool:
    value = rng.choice((INDEX_LIMIT, MAX_UINT64, INDEX_LIMIT + rng.randrange(1 << 30)))
    field = rng.choice(("log_index", "commit"))
    if m.type == pb.REPLICATE and field == "commit":
        m.commit = value
    elif m.type in (pb.REPLICATE, pb.REPLICATE_RESP, pb.READ_INDEX_RESP, pb.REQUEST_VOTE):
        m.log_index = value
    elif m.type == pb.HEARTBEAT:
        m.commit = value
    else:
        return False
    return True


def _index_shifted(m: pb.Message, rng: random.Random, ctx: Context) -> bool:
    """Only where Raft tolerates it: a REPLICATE's entries then leave a gap, or (none)
    its prev entry is checked as usual; an older acknowledgement is stale; a vote
    request claims a shorter log; a read waits for a later index; a commit index is
    older."""
    t = m.type
    if t == pb.REPLICATE:
        delta = rng.choice((-3, -2, -1, 1, 2, 3))
        if m.log_index + delta < 0:
            return False
        m.log_index += delta
    elif t == pb.REPLICATE_RESP and not m.reject and m.log_index:
        m.log_index -= rng.randint(1, m.log_index)
    elif t == pb.REPLICATE_RESP and not m.reject:
        m.log_index = 1 << 40  # beyond anything the leader holds
    elif t in (pb.REQUEST_VOTE, pb.REQUEST_PRE_VOTE) and m.log_index:
        m.log_index -= rng.randint(1, m.log_index)
    elif t == pb.READ_INDEX_RESP and not m.reject:
        m.log_index += rng.randint(1, 1000)
    elif t in (pb.REPLICATE, pb.HEARTBEAT) and m.commit:
        m.commit -= rng.randint(1, m.commit)
    else:
        return False
    return True


def _log_term_bad(m: pb.Message, rng: random.Random, ctx: Context) -> bool:
    if m.type not in (pb.REPLICATE, pb.REQUEST_VOTE, pb.REQUEST_PRE_VOTE):
        return False
    if m.log_index and rng.random() < 0.5:
        m.log_term = 0  # only index 0 has term 0
    else:
        m.log_term = m.term + rng.randint(1, 5)  # newer than the sender
    return True


def _hint_bad(m: pb.Message, rng: random.Random, ctx: Context) -> bool:
    t = m.type
    if t == pb.REPLICATE:
        m.hint = rng.randint(2, 1 << 40)
    elif t in (pb.REQUEST_VOTE, pb.REQUEST_PRE_VOTE):
        m.hint = m.from_id + rng.randint(1, 5)
    elif t == pb.LEADER_TRANSFER:
        m.hint = 0
    elif t == pb.REPLICATE_RESP and m.reject:
        m.hint = m.log_index + rng.randint(1, 100)
    elif t in (pb.READ_INDEX, pb.READ_INDEX_RESP):
        m.hint = m.hint_high = 0
    elif t == pb.RATE_LIMIT:
        m.hint = INDEX_LIMIT + rng.randrange(1 << 20)
    else:
        return False
    return True


def _rejected(m: pb.Message, rng: random.Random, ctx: Context) -> bool:
    """An answer turned into a rejection (never the other way: see the rules)."""
    if m.type not in _ANSWERS or m.reject:
        return False
    m.reject = True
    if m.type == pb.REPLICATE_RESP:
        m.hint = rng.randint(0, m.log_index)
        m.log_term = rng.randint(0, m.term)
    return True


def _entries_gap(m: pb.Message, rng: random.Random, ctx: Context) -> bool:
    entries = m.entries
    if m.type != pb.REPLICATE or not entries:
        return False
    n = len(entries)
    choice = rng.randrange(4)
    if choice == 0 and n >= 3:
        del entries[rng.randrange(1, n - 1)]  # a hole in the middle
    elif choice == 1:
        extra = entries.add()
        extra.CopyFrom(entries[rng.randrange(n)])  # an entry twice
    elif choice == 2 and n >= 2:
        i = rng.randrange(n - 1)
        a, b = pb.Entry(), pb.Entry()
        a.CopyFrom(entries[i])
        b.CopyFrom(entries[i + 1])
        entries[i].CopyFrom(b)
        entries[i + 1].CopyFrom(a)
    else:
        entries[rng.randrange(n)].index += rng.choice((-2, -1, 1, 2, 1 << 40))
    return True


def _entries_term_bad(m: pb.Message, rng: random.Random, ctx: Context) -> bool:
    entries = m.entries
    if m.type != pb.REPLICATE or not entries:
        return False
    e = entries[rng.randrange(len(entries))]
    e.term = rng.choice((0, m.term + rng.randint(1, 3), TERM_LIMIT, MAX_UINT64))
    return True


def _entries_kind_bad(m: pb.Message, rng: random.Random, ctx: Context) -> bool:
    entries = m.entries
    if m.type not in (pb.REPLICATE, pb.PROPOSE_FORWARD) or not entries:
        return False
    e = entries[rng.randrange(len(entries))]
    choice = rng.randrange(4)
    if choice == 0:
        e.type = rng.choice((3, 7, 2**31 - 1))  # type: ignore[assignment]
    elif choice == 1 and m.type == pb.PROPOSE_FORWARD:
        e.type = pb.METADATA  # a forwarded proposal is never a witness's entry
    elif choice == 1:
        return False  # METADATA in a REPLICATE is right for a witness: not a mutation
    else:
        e.type = pb.CONFIG_CHANGE
        e.cmd = rng.choice(
            (
                b"\xff\xfe not a config change",
                pb.ConfigChange(
                    type=pb.ADD_NODE, replica_id=7, address="nowhere"
                ).SerializeToString(),
                pb.ConfigChange(type=pb.ADD_NODE, replica_id=0, address="h:1").SerializeToString(),
                pb.ConfigChange(type=9, replica_id=7, address="h:1").SerializeToString(),  # type: ignore[arg-type]
            )
        )
    return True


def _entries_cut(m: pb.Message, rng: random.Random, ctx: Context) -> bool:
    """Fewer entries than were sent: a prefix, which a leader may send any time."""
    entries = m.entries
    if m.type != pb.REPLICATE or not entries:
        return False
    del entries[rng.randrange(len(entries)) :]
    return True


def _forward_numbered(m: pb.Message, rng: random.Random, ctx: Context) -> bool:
    if m.type != pb.PROPOSE_FORWARD or not m.entries:
        return False
    e = m.entries[rng.randrange(len(m.entries))]
    e.index = rng.randint(1, 1 << 20)
    e.term = rng.randint(1, ctx.max_term + 1)
    return True


def _field_it_never_carries(m: pb.Message, rng: random.Random, ctx: Context) -> bool:
    t = m.type
    if t in (pb.HEARTBEAT, pb.HEARTBEAT_RESP, pb.TIMEOUT_NOW, pb.QUIESCE, pb.READ_INDEX):
        m.entries.add(term=m.term or 1, index=1, cmd=b"stowaway")
    elif t in (pb.REPLICATE_RESP, pb.REQUEST_VOTE_RESP, pb.REQUEST_PRE_VOTE_RESP):
        m.commit = rng.randint(1, 1 << 20)
    elif t == pb.REPLICATE:
        m.reject = True
    elif t in (pb.RATE_LIMIT, pb.LEADER_TRANSFER, pb.PROPOSE_FORWARD, pb.READ_INDEX_RESP):
        m.log_term = rng.randint(1, 5)
    elif t in (pb.REQUEST_VOTE, pb.REQUEST_PRE_VOTE):
        m.hint_high = rng.randint(1, 1 << 20)
    elif t == pb.INSTALL_SNAPSHOT:
        m.log_index = rng.randint(1, 1 << 20)
    else:
        return False
    return True


def _membership_bad(m: pb.Message, rng: random.Random, ctx: Context) -> bool:
    """A presented membership that cannot be one."""
    if m.type not in (pb.REPLICATE, pb.HEARTBEAT, pb.REQUEST_VOTE, pb.REQUEST_PRE_VOTE):
        return False
    mb = m.snapshot.membership
    mb.Clear()
    choice = rng.randrange(4)
    if choice == 0:
        mb.addresses[m.from_id] = "not an address"
    elif choice == 1:
        mb.addresses[ctx.nobody] = "127.0.0.1:1"  # without the sender
    elif choice == 2:
        mb.addresses[m.from_id] = "127.0.0.1:1"
        mb.witnesses[m.from_id] = "127.0.0.1:2"  # in two groups
    else:
        mb.non_votings[m.from_id] = "127.0.0.1:1"  # no voter at all
    return True


def _snapshot_forged(m: pb.Message, rng: random.Random, ctx: Context) -> bool:
    """An INSTALL_SNAPSHOT without data (one with a file never travels in a batch, and
    the transport refuses it) whose metadata cannot describe any log. A plausible one
    would be a lie in a member's name (see the rules): a state machine that keeps its
    own data would take it."""
    membership = m.snapshot.membership if m.HasField("snapshot") else pb.Membership()
    if not membership.addresses:
        membership = pb.Membership(addresses={m.from_id or 1: "127.0.0.1:1"})
    index = (m.log_index or m.commit or 1) + rng.randint(1, 1000)
    term = max(m.term, 1)
    snapshot = pb.Snapshot(shard_id=m.shard_id, index=index, term=term, dummy=True)
    snapshot.membership.CopyFrom(membership)
    choice = rng.randrange(4)
    if choice == 0:
        snapshot.index = 0
    elif choice == 1:
        snapshot.term = term + rng.randint(1, 5)  # newer than its sender
    elif choice == 2:
        snapshot.membership.Clear()
    else:
        snapshot.membership.config_change_id = index + rng.randint(1, 10)
    to, from_id, shard_id = m.to, m.from_id, m.shard_id
    m.Clear()
    m.type, m.to, m.from_id, m.shard_id, m.term = (
        pb.INSTALL_SNAPSHOT,
        to,
        from_id,
        shard_id,
        term,
    )
    m.snapshot.CopyFrom(snapshot)
    return True


OPERATORS: dict[str, Operator] = {
    "type-not-remote": _type_not_remote,
    "type-swap": _type_swap,
    "sender-nobody": _sender_nobody,
    "receiver-elsewhere": _receiver_elsewhere,
    "shard-unhosted": _shard_unhosted,
    "term-out-of-range": _term_out_of_range,
    "term-zero-or-set": _term_zero_or_set,
    "term-stale": _term_stale,
    "term-ahead": _term_ahead,
    "index-out-of-range": _index_out_of_range,
    "index-shifted": _index_shifted,
    "log-term-bad": _log_term_bad,
    "hint-bad": _hint_bad,
    "rejected": _rejected,
    "entries-gap": _entries_gap,
    "entries-term-bad": _entries_term_bad,
    "entries-kind-bad": _entries_kind_bad,
    "entries-cut": _entries_cut,
    "forward-numbered": _forward_numbered,
    "field-it-never-carries": _field_it_never_carries,
    "membership-bad": _membership_bad,
    "snapshot-forged": _snapshot_forged,
}
