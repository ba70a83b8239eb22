"""`recover`: force a new membership on one surviving member's log, after a shard lost
its quorum for good (dqlite's ReconfigureMembership, hashicorp/raft's RecoverCluster).

How: the chosen member's log gets config-change entries that turn its membership into
the given one (adds first, then removals), in a new term above every term it or an
inspected member has seen, and its commit index is moved to the end of its log. When
it starts, it applies its whole log, these entries included, and with the new
membership it can elect itself and lead; new members are then added as usual.

Rules, and why:
- Every entry of the chosen log is taken as committed. Entries it had that were not
  committed are applied too; committed entries it lacked are lost. That is why the
  member to choose is the one with the newest log: the highest term of its last
  entry, then the highest last index (`inspect` shows both).
- The host must be stopped (its directory is locked) and so must every other member:
  a member still running with the old membership could keep serving reads.
- Refused unless `force` (UnsafeOperation), when it can be told the choice is unsafe:
  - another member named in the new membership holds a log of its own that was not
    inspected: its log may be newer, and its committed entries would be overwritten;
  - an inspected member (named or not) has a newer log than the chosen one, or
    committed entries the chosen log lacks or holds differently.
- Refused outright (ToolError) when it cannot work: the chosen replica is not in the
  new membership, a removed id comes back, a member's address changes (a new replica
  id must be used), a witness becomes a voter, the directory holds no such replica.
- Members the old membership did not have start empty: start them with join=True.
  Members that had data and are named keep it; the new leader overwrites what they
  hold past the chosen log. The removed members must never be started again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logdb import ILogDB, LogDBError
from nodehost.admin.values import MembershipView
from nodehost.raft import membership as rules
from nodehost.tools import hostdir, logview
from nodehost.tools.errors import ToolError, UnsafeOperation
from nodehost.tools.inspection import ReplicaReport
from protos import raft_pb2 as pb


@dataclass
class RecoveryResult:
    shard_id: int
    replica_id: int
    changed: bool
    before: MembershipView
    after: MembershipView
    term: int  # the term of the new entries
    first_index: int  # of the new entries (0 when nothing changed)
    last_index: int  # the new end of the log, now committed
    forced_entries: int  # entries that were not known committed before, now are

    def as_json(self) -> dict[str, Any]:
        return {
            "shard_id": self.shard_id,
            "replica_id": self.replica_id,
            "changed": self.changed,
            "before": self.before.as_json(),
            "after": self.after.as_json(),
            "term": self.term,
            "first_index": self.first_index,
            "last_index": self.last_index,
            "forced_entries": self.forced_entries,
        }


def recover(
    directory: str | Path,
    shard_ids: list[int] | None,
    members: dict[int, str],
    *,
    inspected: list[ReplicaReport] | None = None,
    force: bool = False,
    wal_dir: str = "",
) -> list[RecoveryResult]:
    """Force `members` (replica id -> target, all voters) on the replica of each shard
    in `shard_ids` (None: every shard) held in the stopped host's `directory`.

    Every shard is checked before any is changed: one refusal changes nothing.
    """
    if not members:
        raise ToolError("the new membership is empty")
    reports = list(inspected or [])
    with hostdir.writable(directory, wal_dir) as (host, env, logdb):
        held = _replicas(logdb)
        if shard_ids is None:
            shard_ids = sorted(held)
            if not shard_ids:
                raise ToolError(f"{host.root} holds no replica to recover")
        plans = []
        for shard_id in shard_ids:
            replica_id = held.get(shard_id)
            if replica_id is None:
                raise ToolError(
                    f"shard {shard_id} has no replica in {host.root} (it holds {_listing(held)})"
                )
            if env.tombstone(shard_id, replica_id).exists():
                raise ToolError(f"shard {shard_id} replica {replica_id}: its data was removed")
            plans.append(_plan(logdb, shard_id, replica_id, members, reports, force))
        results: list[RecoveryResult] = []
        for plan in plans:
            try:
                if plan.record is not None:
                    logdb.save([plan.record])
            except LogDBError as exc:
                done = ", ".join(str(r.shard_id) for r in results) or "none"
                raise ToolError(
                    f"shard {plan.result.shard_id}: the log store refused the recovery: {exc} "
                    f"(shards recovered before it: {done})"
                ) from None
            results.append(plan.result)
        return results


def _replicas(logdb: ILogDB) -> dict[int, int]:
    held: dict[int, int] = {}
    for shard_id, replica_id in logdb.list_node_info():
        held[shard_id] = replica_id
    return held


def _listing(held: dict[int, int]) -> str:
    if not held:
        return "no replica"
    return "shards " + ", ".join(str(s) for s in sorted(held))


@dataclass
class _Plan:
    result: RecoveryResult
    record: logview.Record | None


def _plan(
    logdb: ILogDB,
    shard_id: int,
    replica_id: int,
    members: dict[int, str],
    reports: list[ReplicaReport],
    force: bool,
) -> _Plan:
    log = logview.load(logdb, shard_id, replica_id)
    name = f"shard {shard_id} replica {replica_id}"
    if log is None or log.is_empty:
        raise ToolError(f"{name} has no log to recover from (it never started)")
    # What the log leads to, with and without ordered_config_change (not on disk).
    found = logview.config_changes(logdb, log)
    befores = [
        logview.replay(log, found, log.last_index, ordered=ordered)[0] for ordered in (False, True)
    ]
    for before in befores:
        _check_members(name, replica_id, before, members)
    before = befores[0]
    peers = [r for r in reports if r.shard_id == shard_id and r.replica_id != replica_id]
    if not force:
        _check_safety(logdb, log, name, before, members, peers)
    if all(_same(b, members) for b in befores):
        return _Plan(
            RecoveryResult(
                shard_id=shard_id,
                replica_id=replica_id,
                changed=False,
                before=logview.view(before),
                after=logview.view(before),
                term=log.state.term,
                first_index=0,
                last_index=log.last_index,
                forced_entries=0,
            ),
            None,
        )
    term = max([log.state.term, log.last_term, *(p.term for p in peers)]) + 1
    changes = _changes(befores, members)
    entries = [
        pb.Entry(
            term=term,
            index=log.last_index + 1 + i,
            type=pb.CONFIG_CHANGE,
            cmd=cc.SerializeToString(),
        )
        for i, cc in enumerate(changes)
    ]
    last = log.last_index + len(entries)
    after = _replay_both_ways(log, found, entries, name)
    if dict(after.addresses) != members or after.non_votings or after.witnesses:
        raise ToolError(f"{name}: the new membership could not be built from the log (internal)")
    result = RecoveryResult(
        shard_id=shard_id,
        replica_id=replica_id,
        changed=True,
        before=logview.view(before),
        after=logview.view(after),
        term=term,
        first_index=log.last_index + 1,
        last_index=last,
        forced_entries=max(0, log.last_index - log.state.commit),
    )
    state = pb.State(term=term, vote=0, commit=last)
    return _Plan(result, logview.Record(shard_id, replica_id, state, entries))


def _leaving(before: pb.Membership, members: dict[int, str]) -> set[int]:
    current = {*before.addresses, *before.non_votings, *before.witnesses}
    return current - set(members)


def _same(before: pb.Membership, members: dict[int, str]) -> bool:
    return dict(before.addresses) == members and not before.non_votings and not before.witnesses


def _check_members(
    name: str, replica_id: int, before: pb.Membership, members: dict[int, str]
) -> None:
    if replica_id not in members:
        raise ToolError(
            f"{name} is not in the new membership ({', '.join(map(str, sorted(members)))}): "
            "recover the member that stays, with its own id among the members"
        )
    if replica_id in before.removed:
        raise ToolError(f"{name} was removed from the shard; its log cannot lead it again")
    for rid, target in sorted(members.items()):
        if rid in before.removed:
            raise ToolError(f"replica {rid} was removed from shard and can never be added back")
        if rid in before.witnesses:
            raise ToolError(f"replica {rid} is a witness; a witness cannot become a voter")
        current = before.addresses.get(rid) or before.non_votings.get(rid)
        if current is not None and current != target:
            raise ToolError(
                f"replica {rid} is at {current} in the membership, not {target}: a member's "
                "address cannot change in a recovery; give it a new replica id"
            )
        for other, address in [*before.addresses.items(), *before.non_votings.items()]:
            if address == target and other != rid:
                raise ToolError(f"{target} is the address of replica {other}, not of replica {rid}")


def _check_safety(
    logdb: ILogDB,
    log: logview.ReplicaLog,
    name: str,
    before: pb.Membership,
    members: dict[int, str],
    peers: list[ReplicaReport],
) -> None:
    by_id = {p.replica_id: p for p in peers}
    ours = (log.last_term, log.last_index)
    for rid in sorted(members):
        had_data = rid in before.addresses or rid in before.non_votings
        if rid != log.replica_id and had_data and rid not in by_id:
            raise UnsafeOperation(
                f"replica {rid} is in the new membership and holds a log of its own that was "
                "not inspected (its log may be newer than this one): run `nodehost inspect "
                "--format json` on its directory and pass the file with --inspected, or "
                "remove its data and add it back under a new id; --force skips this check"
            )
    for peer in sorted(peers, key=lambda p: p.replica_id):
        if peer.removed:
            continue
        theirs = peer.last_entry
        if theirs > ours:
            raise UnsafeOperation(
                f"replica {peer.replica_id} has a newer log (last entry term {theirs[0]}, "
                f"index {theirs[1]}) than {name} (term {ours[0]}, index {ours[1]}): recover "
                f"on replica {peer.replica_id} instead; --force skips this check"
            )
        if peer.commit > log.last_index:
            raise UnsafeOperation(
                f"replica {peer.replica_id} committed entries up to {peer.commit}, past the end "
                f"of {name}'s log ({log.last_index}); --force skips this check"
            )
        here = logview.term_at(logdb, log, peer.commit)
        if peer.commit_term is not None and here is not None and here != peer.commit_term:
            raise UnsafeOperation(
                f"replica {peer.replica_id} committed entry {peer.commit} in term "
                f"{peer.commit_term}, but {name} holds it in term {here}: the logs disagree on "
                "a committed entry; --force skips this check"
            )


def _changes(befores: list[pb.Membership], members: dict[int, str]) -> list[pb.ConfigChange]:
    """Adds first (the shard never drops to no voter), then removals, so that every
    membership in `befores` ends as `members`: re-adding a voter at its own address and
    removing an id that is gone are no-ops. Each is marked `initialize`, so a replica
    with ordered_config_change applies it whatever the membership's change id."""
    add = sorted(
        rid
        for rid, target in members.items()
        if any(b.addresses.get(rid) != target for b in befores)
    )
    leave = sorted(set().union(*(_leaving(b, members) for b in befores)))
    out = [
        pb.ConfigChange(type=pb.ADD_NODE, replica_id=rid, address=members[rid], initialize=True)
        for rid in add
    ]
    out += [pb.ConfigChange(type=pb.REMOVE_NODE, replica_id=rid, initialize=True) for rid in leave]
    return out


def _replay_both_ways(
    log: logview.ReplicaLog,
    found: list[tuple[int, pb.ConfigChange]],
    entries: list[pb.Entry],
    name: str,
) -> pb.Membership:
    """The membership the recovered log leads to; the same whether the replica runs
    with ordered_config_change or not, or ToolError."""
    outcomes = []
    for ordered in (False, True):
        m, _ = logview.replay(log, found, log.last_index, ordered=ordered)
        for entry in entries:
            cc = pb.ConfigChange.FromString(entry.cmd)
            refused = rules.check(m, cc, ordered)
            if refused is not None:
                raise ToolError(f"{name}: cannot apply {logview.describe_change(cc)}: {refused}")
            rules.apply(m, cc, entry.index)
        outcomes.append(m)
    plain, ordered_outcome = outcomes
    if dict(plain.addresses) != dict(ordered_outcome.addresses):
        raise ToolError(f"{name}: the recovered membership depends on ordered_config_change")
    return plain
