"""One-line descriptions of entries, messages and updates, for logs and golden tests.

Rules: stable output (golden transcripts depend on it); only fields that are set are
shown; a message reads `from->to TYPE t=term ...`.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from protos import raft_pb2 as pb

from .messages import MessageType
from .update import Update

_CC_TYPES = {
    pb.ADD_NODE: "add",
    pb.REMOVE_NODE: "remove",
    pb.ADD_NON_VOTING: "add-non-voting",
    pb.ADD_WITNESS: "add-witness",
}


def describe_entry(e: pb.Entry) -> str:
    head = f"{e.term}/{e.index}"
    if e.type == pb.CONFIG_CHANGE:
        try:
            cc = pb.ConfigChange.FromString(e.cmd)
        except DecodeError:
            return f"{head} cc:malformed"
        return f"{head} cc:{_CC_TYPES.get(cc.type, cc.type)}({cc.replica_id})"
    if e.type == pb.METADATA:
        return f"{head} meta"
    if not e.cmd:
        return f"{head} noop" if not e.key else head
    cmd = e.cmd if len(e.cmd) <= 16 else e.cmd[:13] + b"..."
    return f"{head} {cmd.decode('utf-8', 'backslashreplace')!r}"


def describe_entries(entries: list[pb.Entry]) -> str:
    return "[" + ", ".join(describe_entry(e) for e in entries) + "]"


def describe_snapshot(ss: pb.Snapshot) -> str:
    voters = ",".join(str(r) for r in sorted(ss.membership.addresses))
    extra = " witness" if ss.witness else ""
    return f"snapshot {ss.term}/{ss.index} voters={voters}{extra}"


def describe_message(m: pb.Message) -> str:
    try:
        name = MessageType(m.type).name
    except ValueError:
        name = f"type{m.type}"
    parts = [f"{m.from_id}->{m.to} {name} t={m.term}"]
    if m.type == pb.REPLICATE_RESP and m.reject:
        # A rejection names the entry it lacks and where the leader should look.
        parts.append(f"index={m.log_index} reject hint={m.log_term}/{m.hint}")
        return " ".join(parts)
    if m.log_term:
        parts.append(f"log={m.log_term}/{m.log_index}")
    elif m.log_index:
        parts.append(f"index={m.log_index}")
    if m.commit:
        parts.append(f"commit={m.commit}")
    if m.reject:
        parts.append("reject")
    if m.type == pb.REPLICATE:
        if m.hint:
            parts.append("may-cc")  # it may carry config changes: the follower looks
    elif m.hint or m.hint_high:
        parts.append(f"hint={m.hint}" + (f"/{m.hint_high}" if m.hint_high else ""))
    if m.entries:
        parts.append(describe_entries(list(m.entries)))
    if m.HasField("snapshot") and (m.snapshot.index or m.type == pb.INSTALL_SNAPSHOT):
        # Not a membership a leader or candidate presents to a replica that may not
        # know it yet: that is for admission and addresses, not the protocol.
        parts.append(describe_snapshot(m.snapshot))
    return " ".join(parts)


def describe_update(u: Update) -> str:
    lines = [f"update {u.shard_id}/{u.replica_id}" + (" sync" if u.must_sync else "")]
    if u.state is not None:
        lines.append(f"  state term={u.state.term} vote={u.state.vote} commit={u.state.commit}")
    if u.leader is not None:
        lines.append(f"  leader {u.leader.leader_id} term={u.leader.term}")
    if u.snapshot is not None:
        lines.append(f"  save {describe_snapshot(u.snapshot)}")
    if u.entries:
        lines.append(f"  save {describe_entries(u.entries)}")
    lines.extend(f"  send {describe_message(m)}" for m in u.replicate)
    lines.extend(f"  send after save {describe_message(m)}" for m in u.messages)
    if u.committed:
        lines.append(f"  apply {describe_entries(u.committed)}")
    lines.extend(
        f"  read ready {r.context.low}/{r.context.high} at {r.index}" for r in u.ready_to_reads
    )
    if u.dropped_entries:
        lines.append(f"  dropped {describe_entries(u.dropped_entries)}")
    lines.extend(f"  read dropped {c.low}/{c.high}" for c in u.dropped_reads)
    return "\n".join(lines)
