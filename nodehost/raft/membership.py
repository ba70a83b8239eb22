"""Membership rules, shared by the core and the state machine layer.

Rules:
- Both sides apply the same CONFIG_CHANGE entries in log order, starting from the same
  membership (a snapshot's, or the empty one before the bootstrap entries), through
  `check` and `apply` below; so they always agree on whether a change took effect.
- A removed replica id is never a member again (ids are never reused).
- `config_change_id` is the index of the last config change applied; with
  `ordered_config_change` a proposal must name it, like an optimistic lock.
"""

from __future__ import annotations

from collections.abc import Iterable

from protos import raft_pb2 as pb


def check(m: pb.Membership, cc: pb.ConfigChange, ordered: bool) -> str | None:
    """Why `cc` cannot be applied to `m`, or None when it can."""
    rid = cc.replica_id
    if rid == 0:
        return "replica id 0 is reserved"
    if ordered and not cc.initialize and cc.config_change_id != m.config_change_id:
        return (
            f"config change id {cc.config_change_id} is stale, "
            f"the membership is at {m.config_change_id}"
        )
    if rid in m.removed:
        return f"replica {rid} was removed and can never be added back"
    if cc.type == pb.REMOVE_NODE:
        if rid in m.addresses and len(m.addresses) == 1:
            return f"replica {rid} is the last voting member"
        return None
    if not cc.address:
        return "an added replica needs an address"
    for other, address in _all_members(m):
        if address == cc.address and other != rid:
            return f"address {cc.address} is already used by replica {other}"
    if cc.type == pb.ADD_NODE:
        if rid in m.witnesses:
            return f"replica {rid} is a witness and cannot become a voting member"
        if rid in m.addresses and m.addresses[rid] != cc.address:
            return f"replica {rid} is already a member at {m.addresses[rid]}"
        if rid in m.non_votings and m.non_votings[rid] != cc.address:
            return f"non-voting replica {rid} is at {m.non_votings[rid]}"
        return None
    if cc.type == pb.ADD_NON_VOTING:
        if rid in m.addresses or rid in m.witnesses:
            return f"replica {rid} is already a voting member or a witness"
        return None
    if cc.type == pb.ADD_WITNESS:
        if rid in m.addresses or rid in m.non_votings:
            return f"replica {rid} is already a member"
        return None
    return f"unknown config change type {cc.type}"


def apply(m: pb.Membership, cc: pb.ConfigChange, index: int) -> None:
    """Apply a change that `check` accepted; `index` is its entry's log index."""
    rid = cc.replica_id
    if cc.type == pb.REMOVE_NODE:
        for group in (m.addresses, m.non_votings, m.witnesses):
            group.pop(rid, None)
        m.removed[rid] = True
    elif cc.type == pb.ADD_NODE:
        m.non_votings.pop(rid, None)
        m.addresses[rid] = cc.address
    elif cc.type == pb.ADD_NON_VOTING:
        m.non_votings[rid] = cc.address
    elif cc.type == pb.ADD_WITNESS:
        m.witnesses[rid] = cc.address
    m.config_change_id = index


def bootstrap_entries(addresses: dict[int, str]) -> list[pb.Entry]:
    """The log every initial member starts with: one committed ADD_NODE per member.

    Identical on every initial member (sorted by id, term 1), so the logs match, and a
    replica that joins later learns the initial membership by replicating them.
    """
    entries = []
    for i, (rid, address) in enumerate(sorted(addresses.items()), start=1):
        cc = pb.ConfigChange(type=pb.ADD_NODE, replica_id=rid, address=address, initialize=True)
        entries.append(pb.Entry(term=1, index=i, type=pb.CONFIG_CHANGE, cmd=cc.SerializeToString()))
    return entries


def _all_members(m: pb.Membership) -> Iterable[tuple[int, str]]:
    yield from m.addresses.items()
    yield from m.non_votings.items()
    yield from m.witnesses.items()
